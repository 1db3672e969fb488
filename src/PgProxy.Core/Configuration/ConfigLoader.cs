using System.Collections.Frozen;
using System.Globalization;
using System.Text.RegularExpressions;
using PgProxy.Core.Configuration.Toml;

namespace PgProxy.Core.Configuration;

/// <summary>
/// Turns a TOML file into a validated <see cref="ProxyConfig"/>. Every problem is collected with file:line:column
/// and what was expected; the caller refuses to start (or to reload) while any remain.
/// </summary>
public sealed partial class ConfigLoader
{
    private readonly string _file;
    private readonly Func<string, string?> _env;
    private readonly List<string> _errors = [];

    private ConfigLoader(string file, Func<string, string?> env)
    {
        _file = file;
        _env = env;
    }

    /// <summary>Loads and validates <paramref name="path"/>.</summary>
    public static ConfigResult LoadFile(string path, Func<string, string?>? env = null)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new ConfigResult(null, [$"{path}: cannot read the config file: {ex.Message}"]);
        }

        return Load(bytes, path, env);
    }

    /// <summary>Loads and validates TOML bytes; <paramref name="path"/> names them in errors and anchors relative paths.</summary>
    public static ConfigResult Load(byte[] toml, string path, Func<string, string?>? env = null)
    {
        var loader = new ConfigLoader(path, env ?? Environment.GetEnvironmentVariable);
        TomlTable root;
        try
        {
            root = TomlReader.Parse(toml);
        }
        catch (TomlException ex)
        {
            return new ConfigResult(null, [$"{path}:{ex.Position}: {ex.Reason}"]);
        }

        ProxyConfig config = loader.Bind(root);
        loader.Validate(config);
        return loader._errors.Count == 0 ? new ConfigResult(config, []) : new ConfigResult(null, loader._errors);
    }

    private void Error(TomlPosition at, string message) => _errors.Add($"{_file}:{at}: {message}");

    private ProxyConfig Bind(TomlTable root)
    {
        ProxySection proxy = new();
        AuthSection auth = new();
        LogSection log = new();
        HttpSection http = new();
        AdminSection admin = new();
        OtelSection otel = new();
        var databases = new Dictionary<string, DatabaseConfig>(StringComparer.Ordinal);
        var users = new Dictionary<string, UserConfig>(StringComparer.Ordinal);
        foreach (string key in root.Keys)
        {
            TomlPosition at = root.PositionOf(key);
            object value = root[key];
            switch (key)
            {
                case "proxy" when Table(value, key, at) is { } t: proxy = BindProxy(t); break;
                case "auth" when Table(value, key, at) is { } t: auth = BindAuth(t); break;
                case "log" when Table(value, key, at) is { } t: log = BindLog(t); break;
                case "http" when Table(value, key, at) is { } t: http = BindHttp(t); break;
                case "admin" when Table(value, key, at) is { } t: admin = BindAdmin(t); break;
                case "otel" when Table(value, key, at) is { } t: otel = BindOtel(t); break;
                case "databases" when Table(value, key, at) is { } t:
                    foreach (string name in t.Keys)
                    {
                        if (Table(t[name], $"databases.{name}", t.PositionOf(name)) is { } db)
                        {
                            databases[name] = BindDatabase(name, db);
                        }
                    }

                    break;
                case "users" when Table(value, key, at) is { } t:
                    foreach (string name in t.Keys)
                    {
                        if (Table(t[name], $"users.{name}", t.PositionOf(name)) is { } u)
                        {
                            users[name] = BindUser(name, u);
                        }
                    }

                    break;
                case "proxy" or "auth" or "log" or "http" or "admin" or "otel" or "databases" or "users":
                    break;
                default:
                    Error(at, $"unknown section or key '{key}' (expected [proxy], [auth], [log], [http], [admin], [otel], [databases.NAME] or [users.NAME])");
                    break;
            }
        }

        return new ProxyConfig
        {
            Proxy = proxy,
            Auth = auth,
            Log = log,
            Http = http,
            Admin = admin,
            Otel = otel,
            Databases = databases.ToFrozenDictionary(StringComparer.Ordinal),
            Users = users.ToFrozenDictionary(StringComparer.Ordinal),
            SourcePath = _file,
        };
    }

    private TomlTable? Table(object value, string name, TomlPosition at)
    {
        if (value is TomlTable t)
        {
            return t;
        }

        Error(at, $"'{name}' must be a table");
        return null;
    }

    /// <summary>
    /// The admin console's SET: <paramref name="running"/> with one [proxy] key set to <paramref name="tomlValue"/> (a
    /// TOML value: 30, "30s", true), validated as a loaded file is. The listen addresses cannot be set live.
    /// </summary>
    public static ConfigResult Set(ProxyConfig running, string key, string tomlValue)
    {
        string name = $"SET {key}";
        if (key == "listen")
        {
            return new ConfigResult(null, [$"{name}: the listen addresses change only with a restart"]);
        }

        var loader = new ConfigLoader(name, _ => null);
        TomlTable root;
        try
        {
            root = TomlReader.Parse(System.Text.Encoding.UTF8.GetBytes($"{key} = {tomlValue}\n"));
        }
        catch (TomlException ex)
        {
            return new ConfigResult(null, [$"{name}: {ex.Reason}"]);
        }

        ProxyConfig config = running with { Proxy = loader.BindProxy(root, running.Proxy) };
        loader.Validate(config);
        return loader._errors.Count == 0 ? new ConfigResult(config, []) : new ConfigResult(null, loader._errors);
    }

    private ProxySection BindProxy(TomlTable t, ProxySection? seed = null) =>
        Section(t, "proxy", seed ?? new ProxySection(), (s, key, v, at) => key switch
        {
            "listen" => s with { Listen = StringList(v, key, at) ?? s.Listen },
            "pool_mode" => s with { PoolMode = Mode(v, key, at) ?? s.PoolMode },
            "default_pool_size" => s with { DefaultPoolSize = Int(v, key, at, 1, 100_000) ?? s.DefaultPoolSize },
            "min_pool_size" => s with { MinPoolSize = Int(v, key, at, 0, 100_000) ?? s.MinPoolSize },
            "reserve_pool_size" => s with { ReservePoolSize = Int(v, key, at, 0, 100_000) ?? s.ReservePoolSize },
            "reserve_pool_timeout" => s with { ReservePoolTimeout = Duration(v, key, at) ?? s.ReservePoolTimeout },
            "max_db_connections" => s with { MaxDbConnections = Int(v, key, at, 0, 1_000_000) ?? s.MaxDbConnections },
            "max_client_conn" => s with { MaxClientConn = Int(v, key, at, 1, 1_000_000) ?? s.MaxClientConn },
            "query_wait_timeout" => s with { QueryWaitTimeout = Duration(v, key, at) ?? s.QueryWaitTimeout },
            "client_login_timeout" => s with { ClientLoginTimeout = Duration(v, key, at) ?? s.ClientLoginTimeout },
            "client_idle_timeout" => s with { ClientIdleTimeout = Duration(v, key, at) ?? s.ClientIdleTimeout },
            "idle_transaction_timeout" => s with { IdleTransactionTimeout = Duration(v, key, at) ?? s.IdleTransactionTimeout },
            "query_timeout" => s with { QueryTimeout = Duration(v, key, at) ?? s.QueryTimeout },
            "server_login_retry" => s with { ServerLoginRetry = Duration(v, key, at) ?? s.ServerLoginRetry },
            "server_connect_timeout" => s with { ServerConnectTimeout = Duration(v, key, at) ?? s.ServerConnectTimeout },
            "server_reset_query" => s with { ServerResetQuery = Str(v, key, at) ?? s.ServerResetQuery },
            "server_lifetime" => s with { ServerLifetime = Duration(v, key, at) ?? s.ServerLifetime },
            "server_idle_timeout" => s with { ServerIdleTimeout = Duration(v, key, at) ?? s.ServerIdleTimeout },
            "server_check_delay" => s with { ServerCheckDelay = Duration(v, key, at) ?? s.ServerCheckDelay },
            "server_check_query" => s with { ServerCheckQuery = Str(v, key, at) ?? s.ServerCheckQuery },
            "server_round_robin" => s with { ServerRoundRobin = Bool(v, key, at) ?? s.ServerRoundRobin },
            "max_prepared_statements" => s with { MaxPreparedStatements = Int(v, key, at, 0, 100_000) ?? s.MaxPreparedStatements },
            "shutdown_delay" => s with { ShutdownDelay = Duration(v, key, at) ?? s.ShutdownDelay },
            "shutdown_timeout" => s with { ShutdownTimeout = Duration(v, key, at) ?? s.ShutdownTimeout },
            "stats_period" => s with { StatsPeriod = PositiveDuration(v, key, at) ?? s.StatsPeriod },
            "client_tls_sslmode" => s with { ClientTlsSslMode = SslMode(v, key, at) ?? s.ClientTlsSslMode },
            "client_tls_cert_file" => s with { ClientTlsCertFile = OptionalPath(v, key, at, s.ClientTlsCertFile) },
            "client_tls_key_file" => s with { ClientTlsKeyFile = OptionalPath(v, key, at, s.ClientTlsKeyFile) },
            "client_tls_ca_file" => s with { ClientTlsCaFile = OptionalPath(v, key, at, s.ClientTlsCaFile) },
            "client_tls_protocols" => s with { ClientTlsProtocols = TlsProtocols(v, key, at) ?? s.ClientTlsProtocols },
            _ => null,
        });

    private AuthSection BindAuth(TomlTable t) =>
        Section(t, "auth", new AuthSection(), (s, key, v, at) => key switch
        {
            "type" => s with { Type = Enum(v, key, at, s_authTypes) ?? s.Type },
            "file" => s with { File = Str(v, key, at) is { } f ? ResolvePath(f) : s.File },
            _ => null,
        });

    private LogSection BindLog(TomlTable t) =>
        Section(t, "log", new LogSection(), (s, key, v, at) => key switch
        {
            "level" => s with { Level = Level(v, key, at) ?? s.Level },
            "format" => s with { Format = Enum(v, key, at, s_formats) ?? s.Format },
            _ => null,
        });

    private HttpSection BindHttp(TomlTable t) =>
        Section(t, "http", new HttpSection(), (s, key, v, at) => key switch
        {
            "listen" when Str(v, key, at) is { } listen => Listen(s, listen, at),
            "listen" => s,
            "readyz_requires_server" => s with { ReadyzRequiresServer = Bool(v, key, at) ?? s.ReadyzRequiresServer },
            _ => null,
        });

    private OtelSection BindOtel(TomlTable t) =>
        Section(t, "otel", new OtelSection(), (s, key, v, at) => key switch
        {
            "endpoint" when Str(v, key, at) is { } endpoint => OtelEndpoint(s, endpoint, at),
            "endpoint" => s,
            "protocol" when Str(v, key, at) is { } protocol => protocol is "grpc" or "http/protobuf"
                ? s with { Protocol = protocol }
                : Invalid(s, at, $"protocol: expected \"grpc\" or \"http/protobuf\", got \"{protocol}\""),
            "protocol" => s,
            "interval" => s with { Interval = PositiveDuration(v, key, at) ?? s.Interval },
            _ => null,
        });

    private OtelSection OtelEndpoint(OtelSection s, string endpoint, TomlPosition at) =>
        endpoint.Length == 0 || (Uri.TryCreate(endpoint, UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https")
            ? s with { Endpoint = endpoint }
            : Invalid(s, at, $"endpoint: expected an http:// or https:// URL (or \"\" for no export), got \"{endpoint}\"");

    private T Invalid<T>(T section, TomlPosition at, string message)
    {
        Error(at, "[otel] " + message);
        return section;
    }

    private AdminSection BindAdmin(TomlTable t) =>
        Section(t, "admin", new AdminSection(), (s, key, v, at) => key switch
        {
            "admin_users" => s with { AdminUsers = StringList(v, key, at, allowEmpty: true) ?? s.AdminUsers },
            "stats_users" => s with { StatsUsers = StringList(v, key, at, allowEmpty: true) ?? s.StatsUsers },
            _ => null,
        });

    private HttpSection Listen(HttpSection s, string listen, TomlPosition at)
    {
        if (listen.Length > 0 && !ListenAddress.TryParse(listen, out _))
        {
            Error(at, $"[http] listen: '{listen}' is not host:port (or \"\" to disable the port)");
            return s;
        }

        return s with { Listen = listen };
    }

    private DatabaseConfig BindDatabase(string name, TomlTable t) =>
        Section(t, $"databases.{name}", new DatabaseConfig { Name = name }, (s, key, v, at) => key switch
        {
            "host" => s with { Host = Str(v, key, at) ?? s.Host },
            "port" => s with { Port = Int(v, key, at, 1, 65535) ?? s.Port },
            "dbname" => s with { DbName = Str(v, key, at) ?? s.DbName },
            "user" => s with { User = Str(v, key, at) ?? s.User },
            "password" => s with { Password = Str(v, key, at) ?? s.Password },
            "pool_size" => s with { PoolSize = Int(v, key, at, 1, 100_000) ?? s.PoolSize },
            "min_pool_size" => s with { MinPoolSize = Int(v, key, at, 0, 100_000) ?? s.MinPoolSize },
            "reserve_pool_size" => s with { ReservePoolSize = Int(v, key, at, 0, 100_000) ?? s.ReservePoolSize },
            "max_db_connections" => s with { MaxDbConnections = Int(v, key, at, 0, 1_000_000) ?? s.MaxDbConnections },
            "pool_mode" => s with { PoolMode = Mode(v, key, at) ?? s.PoolMode },
            _ => null,
        });

    private UserConfig BindUser(string name, TomlTable t) =>
        Section(t, $"users.{name}", new UserConfig { Name = name }, (s, key, v, at) => key switch
        {
            "pool_mode" => s with { PoolMode = Mode(v, key, at) ?? s.PoolMode },
            "max_user_connections" => s with { MaxUserConnections = Int(v, key, at, 0, 1_000_000) ?? s.MaxUserConnections },
            _ => null,
        });

    /// <summary>
    /// Binds a table key by key: <paramref name="bind"/> returns the section with that key applied, or null for a key the
    /// table does not have, which is an error naming it (file:line:column) and leaves the section as it was.
    /// </summary>
    private T Section<T>(TomlTable t, string table, T initial, Func<T, string, object, TomlPosition, T?> bind)
        where T : class
    {
        T s = initial;
        foreach (string key in t.Keys)
        {
            TomlPosition at = t.PositionOf(key);
            s = bind(s, key, t[key], at) ?? Unknown(s, table, key, at);
        }

        return s;
    }

    private T Unknown<T>(T section, string table, string key, TomlPosition at)
    {
        Error(at, $"unknown key '{key}' in [{table}]");
        return section;
    }

    private void Validate(ProxyConfig c)
    {
        TomlPosition top = new(1, 1);
        if (c.Databases.Count == 0)
        {
            Error(top, "no databases configured: add at least one [databases.NAME] section (\"*\" matches any name)");
        }

        if (c.Auth.Type != AuthType.Trust && string.IsNullOrEmpty(c.Auth.File))
        {
            Error(top, "[auth] file is required when [auth] type is not \"trust\"");
        }

        if (c.Auth.File is { } file && !File.Exists(file))
        {
            Error(top, $"[auth] file '{file}' does not exist");
        }

        ProxySection p = c.Proxy;
        if (p.ClientTlsSslMode != TlsMode.Disable)
        {
            if (p.ClientTlsCertFile is null || p.ClientTlsKeyFile is null)
            {
                Error(top, $"[proxy] client_tls_cert_file and client_tls_key_file are required when client_tls_sslmode is not \"disable\"");
            }

            if (p.ClientTlsSslMode is TlsMode.VerifyCa or TlsMode.VerifyFull && p.ClientTlsCaFile is null)
            {
                Error(top, "[proxy] client_tls_ca_file is required when client_tls_sslmode is verify-ca or verify-full (it signs the client certificates)");
            }
        }

        foreach ((string name, string? path) in new[] { ("client_tls_cert_file", p.ClientTlsCertFile), ("client_tls_key_file", p.ClientTlsKeyFile), ("client_tls_ca_file", p.ClientTlsCaFile) })
        {
            if (path is not null && !File.Exists(path))
            {
                Error(top, $"[proxy] {name} '{path}' does not exist");
            }
        }

        if (c.Proxy.MinPoolSize > c.Proxy.DefaultPoolSize)
        {
            Error(top, "[proxy] min_pool_size must not exceed default_pool_size");
        }

        foreach (DatabaseConfig db in c.Databases.Values)
        {
            int size = db.PoolSize ?? c.Proxy.DefaultPoolSize;
            if ((db.MinPoolSize ?? c.Proxy.MinPoolSize) > size)
            {
                Error(top, $"[databases.{db.Name}] min_pool_size must not exceed pool_size ({size})");
            }

            if (db.User is not null && db.Password is null && c.Auth.File is null)
            {
                Error(top, $"[databases.{db.Name}] user is set without password and there is no [auth] file to find one");
            }
        }

        foreach (string address in c.Proxy.Listen)
        {
            if (!ListenAddress.TryParse(address, out _))
            {
                Error(top, $"[proxy] listen: '{address}' is not host:port");
            }
        }
    }

    // ---- scalar helpers ---------------------------------------------------------------------------------

    private static readonly Dictionary<string, AuthType> s_authTypes = new(StringComparer.Ordinal)
    {
        ["trust"] = AuthType.Trust,
        ["md5"] = AuthType.Md5,
        ["scram-sha-256"] = AuthType.ScramSha256,
    };

    private static readonly string[] s_levels = ["trace", "debug", "info", "warning", "error"];

    private static readonly Dictionary<string, LogFormat> s_formats = new(StringComparer.Ordinal)
    {
        ["text"] = LogFormat.Text,
        ["json"] = LogFormat.Json,
    };

    private static readonly Dictionary<string, PoolMode> s_modes = new(StringComparer.Ordinal)
    {
        ["session"] = PoolMode.Session,
        ["transaction"] = PoolMode.Transaction,
        ["statement"] = PoolMode.Statement,
    };

    private PoolMode? Mode(object v, string key, TomlPosition at) => Enum(v, key, at, s_modes);

    private T? Enum<T>(object v, string key, TomlPosition at, Dictionary<string, T> names)
        where T : struct
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (names.TryGetValue(s, out T value))
        {
            return value;
        }

        Error(at, $"{key}: expected one of {string.Join(", ", names.Keys.Select(n => $"\"{n}\""))}, got \"{s}\"");
        return null;
    }

    private string? Level(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (s_levels.Contains(s))
        {
            return s;
        }

        Error(at, $"{key}: expected one of {string.Join(", ", s_levels.Select(n => $"\"{n}\""))}, got \"{s}\"");
        return null;
    }

    private string? Str(object v, string key, TomlPosition at)
    {
        if (v is not string s)
        {
            Error(at, $"{key}: expected a string, got {Describe(v)}");
            return null;
        }

        return ExpandEnvironment(s, key, at);
    }

    private string ExpandEnvironment(string s, string key, TomlPosition at) =>
        EnvReference().Replace(s, m =>
        {
            string name = m.Groups[1].Value;
            string? value = _env(name);
            if (value is null)
            {
                Error(at, $"{key}: environment variable '{name}' is not set");
                return "";
            }

            return value;
        });

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex EnvReference();

    private List<string>? StringList(object v, string key, TomlPosition at, bool allowEmpty = false)
    {
        if (v is string)
        {
            return Str(v, key, at) is { } one ? [one] : null;
        }

        if (v is TomlArray array && (array.Count > 0 || allowEmpty))
        {
            var list = new List<string>();
            foreach (object item in array)
            {
                if (Str(item, key, at) is { } s)
                {
                    list.Add(s);
                }
            }

            return list;
        }

        Error(at, $"{key}: expected a string or {(allowEmpty ? "an" : "a non-empty")} array of strings, got {Describe(v)}");
        return null;
    }

    private int? Int(object v, string key, TomlPosition at, int min, int max)
    {
        if (v is not long l)
        {
            Error(at, $"{key}: expected an integer, got {Describe(v)}");
            return null;
        }

        if (l < min || l > max)
        {
            Error(at, $"{key}: expected an integer from {min} to {max}, got {l}");
            return null;
        }

        return (int)l;
    }

    private bool? Bool(object v, string key, TomlPosition at)
    {
        if (v is bool b)
        {
            return b;
        }

        Error(at, $"{key}: expected true or false, got {Describe(v)}");
        return null;
    }

    private TimeSpan? Duration(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (TryParseDuration(s, out TimeSpan d))
        {
            return d;
        }

        Error(at, $"{key}: expected a duration with a unit such as \"250ms\", \"30s\", \"5m\" or \"1h\" (\"0\" disables), got \"{s}\"");
        return null;
    }

    private TlsMode? SslMode(object v, string key, TomlPosition at)
    {
        switch (Str(v, key, at))
        {
            case null: return null;
            case "disable": return TlsMode.Disable;
            case "allow": return TlsMode.Allow;
            case "prefer": return TlsMode.Prefer;
            case "require": return TlsMode.Require;
            case "verify-ca": return TlsMode.VerifyCa;
            case "verify-full": return TlsMode.VerifyFull;
            case var other:
                Error(at, $"{key}: expected disable, allow, prefer, require, verify-ca or verify-full, got \"{other}\"");
                return null;
        }
    }

    /// <summary>A file path (relative to the config file); "" unsets it.</summary>
    private string? OptionalPath(object v, string key, TomlPosition at, string? current) =>
        Str(v, key, at) is { } path ? (path.Length == 0 ? null : ResolvePath(path)) : current;

    /// <summary>PgBouncer's tls_protocols: "secure" (TLS 1.2 and 1.3), "all" (the same: older versions are not offered), or a comma list.</summary>
    private System.Security.Authentication.SslProtocols? TlsProtocols(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } text)
        {
            return null;
        }

        var protocols = System.Security.Authentication.SslProtocols.None;
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (part.ToLowerInvariant())
            {
                case "secure" or "all" or "default":
                    protocols |= System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;
                    break;
                case "tlsv1.2":
                    protocols |= System.Security.Authentication.SslProtocols.Tls12;
                    break;
                case "tlsv1.3":
                    protocols |= System.Security.Authentication.SslProtocols.Tls13;
                    break;
                default:
                    Error(at, $"{key}: expected secure, all, tlsv1.2 or tlsv1.3 (comma-separated), got \"{part}\" (TLS 1.0 and 1.1 are not offered)");
                    return null;
            }
        }

        if (protocols == System.Security.Authentication.SslProtocols.None)
        {
            Error(at, $"{key}: no protocol given");
            return null;
        }

        return protocols;
    }

    private TimeSpan? PositiveDuration(object v, string key, TomlPosition at)
    {
        TimeSpan? d = Duration(v, key, at);
        if (d == TimeSpan.Zero)
        {
            Error(at, $"{key}: must be longer than 0");
            return null;
        }

        return d;
    }

    /// <summary>Parses "250ms", "30s", "5m", "1h", "1d" or "0".</summary>
    public static bool TryParseDuration(string s, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (s == "0")
        {
            return true;
        }

        Match m = DurationPattern().Match(s);
        if (!m.Success || !double.TryParse(m.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n))
        {
            return false;
        }

        double ms = m.Groups[2].Value switch
        {
            "ms" => n,
            "s" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            _ => n * 86_400_000,
        };
        if (ms > TimeSpan.FromDays(365).TotalMilliseconds)
        {
            return false;
        }

        duration = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")]
    private static partial Regex DurationPattern();

    private string ResolvePath(string path) =>
        Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(_file)) ?? ".", path));

    private static string Describe(object v) => v switch
    {
        string => "a string",
        long l => $"integer {l}",
        double d => $"float {d.ToString(CultureInfo.InvariantCulture)}",
        bool b => b ? "true" : "false",
        TomlArray => "an array",
        TomlTable => "a table",
        _ => "a date/time",
    };
}

/// <summary>The outcome of loading a config: a snapshot, or every error found.</summary>
public sealed record ConfigResult(ProxyConfig? Config, IReadOnlyList<string> Errors);
