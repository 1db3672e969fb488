using System.Collections.Frozen;
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
        var peers = new Dictionary<int, PeerConfig>();
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
                case "peers" when Table(value, key, at) is { } t:
                    foreach (string name in t.Keys)
                    {
                        if (!int.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) ||
                            id is < 1 or > MaxPeerId)
                        {
                            Error(t.PositionOf(name), $"[peers.{name}]: the section's name is a peer_id, 1 to {MaxPeerId}");
                        }
                        else if (Table(t[name], $"peers.{name}", t.PositionOf(name)) is { } peer)
                        {
                            peers[id] = BindPeer(id, peer);
                        }
                    }

                    break;
                case "proxy" or "auth" or "log" or "http" or "admin" or "otel" or "databases" or "users" or "peers":
                    break;
                default:
                    Error(at, $"unknown section or key '{key}' (expected [proxy], [auth], [log], [http], [admin], [otel], [databases.NAME], [users.NAME] or [peers.N])");
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
            Peers = peers.ToFrozenDictionary(),
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
    /// TOML value: 30, "30s", true), validated as a loaded file is. Keys only a restart applies (the listen addresses,
    /// the I/O threads) cannot be set live.
    /// </summary>
    public static ConfigResult Set(ProxyConfig running, string key, string tomlValue)
    {
        string name = $"SET {key}";
        if (ConfigDiff.NeedsRestart("proxy." + key))
        {
            return new ConfigResult(null, [$"{name}: {key} changes only with a restart"]);
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
            "io_threads" => s with { IoThreads = Int(v, key, at, 0, MaxIoThreads) ?? s.IoThreads },
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
            "max_pinned_clients_per_pool" => s with { MaxPinnedClientsPerPool = Int(v, key, at, 0, 100_000) ?? s.MaxPinnedClientsPerPool },
            "pin_timeout" => s with { PinTimeout = Duration(v, key, at) ?? s.PinTimeout },
            "peer_id" => s with { PeerId = Int(v, key, at, 0, MaxPeerId) ?? s.PeerId },
            "peer_dns" => s with { PeerDns = Str(v, key, at) ?? s.PeerDns },
            "shutdown_delay" => s with { ShutdownDelay = Duration(v, key, at) ?? s.ShutdownDelay },
            "shutdown_timeout" => s with { ShutdownTimeout = Duration(v, key, at) ?? s.ShutdownTimeout },
            "stats_period" => s with { StatsPeriod = PositiveDuration(v, key, at) ?? s.StatsPeriod },
            "memory_trim_delay" => s with { MemoryTrimDelay = Duration(v, key, at) ?? s.MemoryTrimDelay },
            "client_tls_sslmode" => s with { ClientTlsSslMode = SslMode(v, key, at) ?? s.ClientTlsSslMode },
            "client_tls_cert_file" => s with { ClientTlsCertFile = OptionalPath(v, key, at, s.ClientTlsCertFile) },
            "client_tls_key_file" => s with { ClientTlsKeyFile = OptionalPath(v, key, at, s.ClientTlsKeyFile) },
            "client_tls_ca_file" => s with { ClientTlsCaFile = OptionalPath(v, key, at, s.ClientTlsCaFile) },
            "client_tls_protocols" => s with { ClientTlsProtocols = TlsProtocols(v, key, at) ?? s.ClientTlsProtocols },
            "client_tls_ciphers" => s with { ClientTlsCiphers = Ciphers(v, key, at) ?? s.ClientTlsCiphers },
            _ when key.StartsWith("server_tls_", StringComparison.Ordinal) && BindServerTls(s.ServerTls, key, v, at) is { } tls =>
                s with { ServerTls = tls },
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
            _ when key.StartsWith("server_tls_", StringComparison.Ordinal) && BindServerTlsOverride(s.ServerTls, key, v, at) is { } tls =>
                s with { ServerTls = tls },
            _ => null,
        });

    /// <summary>One server_tls_* key of a database; null for a key that does not exist.</summary>
    private ServerTlsOverride? BindServerTlsOverride(ServerTlsOverride s, string key, object v, TomlPosition at) => key switch
    {
        "server_tls_sslmode" => s with { Mode = SslMode(v, key, at) ?? s.Mode },
        "server_tls_ca_file" => s with { CaFile = OptionalPath(v, key, at, s.CaFile) ?? "" },
        "server_tls_cert_file" => s with { CertFile = OptionalPath(v, key, at, s.CertFile) ?? "" },
        "server_tls_key_file" => s with { KeyFile = OptionalPath(v, key, at, s.KeyFile) ?? "" },
        "server_tls_protocols" => s with { Protocols = TlsProtocols(v, key, at) ?? s.Protocols },
        "server_tls_direct" => s with { Direct = Bool(v, key, at) ?? s.Direct },
        _ => null,
    };

    /// <summary>One server_tls_* key, in [proxy] or a database; null for a key that does not exist.</summary>
    private ServerTlsSettings? BindServerTls(ServerTlsSettings s, string key, object v, TomlPosition at) => key switch
    {
        "server_tls_sslmode" => s with { Mode = SslMode(v, key, at) ?? s.Mode },
        "server_tls_ca_file" => s with { CaFile = OptionalPath(v, key, at, s.CaFile) },
        "server_tls_cert_file" => s with { CertFile = OptionalPath(v, key, at, s.CertFile) },
        "server_tls_key_file" => s with { KeyFile = OptionalPath(v, key, at, s.KeyFile) },
        "server_tls_protocols" => s with { Protocols = TlsProtocols(v, key, at) ?? s.Protocols },
        "server_tls_direct" => s with { Direct = Bool(v, key, at) ?? s.Direct },
        _ => null,
    };

    /// <summary>peer_dns as (name, port); null when it is not "NAME:PORT".</summary>
    public static (string Name, int Port)? PeerDnsTarget(string value)
    {
        int colon = value.LastIndexOf(':');
        return colon > 0 && int.TryParse(value.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port) &&
               port is > 0 and <= 65535
            ? (value[..colon], port)
            : null;
    }

    /// <summary>The largest peer_id: the id takes the top 14 bits of a 31-bit cancel key's process id.</summary>
    public const int MaxPeerId = 16383;

    /// <summary>The most I/O threads io_threads may ask for.</summary>
    public const int MaxIoThreads = 1024;

    private PeerConfig BindPeer(int id, TomlTable t) =>
        Section(t, $"peers.{id}", new PeerConfig { Id = id }, (s, key, v, at) => key switch
        {
            "host" => s with { Host = Str(v, key, at) ?? s.Host },
            "port" => s with { Port = Int(v, key, at, 1, 65535) ?? s.Port },
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

    private void ValidateServerTls(string where, ServerTlsSettings tls)
    {
        TomlPosition top = new(1, 1);
        if ((tls.CertFile is null) != (tls.KeyFile is null))
        {
            Error(top, $"{where} server_tls_cert_file and server_tls_key_file go together: set both or neither");
        }

        if (tls.Direct && tls.Mode < TlsMode.Require)
        {
            Error(top, $"{where} server_tls_direct needs server_tls_sslmode require, verify-ca or verify-full (a direct TLS connection cannot fall back to plaintext)");
        }

        foreach ((string name, string? path) in new[] { ("server_tls_ca_file", tls.CaFile), ("server_tls_cert_file", tls.CertFile), ("server_tls_key_file", tls.KeyFile) })
        {
            if (path is not null && !File.Exists(path))
            {
                Error(top, $"{where} {name} '{path}' does not exist");
            }
        }
    }

    private void Validate(ProxyConfig c)
    {
        TomlPosition top = new(1, 1);
        if (c.Databases.Count == 0)
        {
            Error(top, "no databases configured: add at least one [databases.NAME] section (\"*\" matches any name)");
        }

        if (c.Auth.Type is not (AuthType.Trust or AuthType.Cert) && string.IsNullOrEmpty(c.Auth.File))
        {
            Error(top, "[auth] file is required when [auth] type is not \"trust\" or \"cert\"");
        }

        if (c.Auth.Type == AuthType.Cert && c.Proxy.ClientTlsSslMode is not (TlsMode.VerifyCa or TlsMode.VerifyFull))
        {
            Error(top, "[auth] type \"cert\" needs [proxy] client_tls_sslmode = \"verify-ca\" or \"verify-full\" (the client certificate names the user)");
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

            if ((p.ClientTlsProtocols & System.Security.Authentication.SslProtocols.Tls12) != 0 &&
                Tls.TlsCiphers.TryParse(p.ClientTlsCiphers, out var suites, out _) && !Tls.TlsCiphers.OffersTls12(suites))
            {
                Error(top, "[proxy] client_tls_ciphers names no TLS 1.2 suite while client_tls_protocols offers TLS 1.2: add one, or set client_tls_protocols = \"tlsv1.3\"");
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

        ValidateServerTls("[proxy]", p.ServerTls);
        foreach (DatabaseConfig db in c.Databases.Values)
        {
            if (db.ServerTls != new ServerTlsOverride())
            {
                ValidateServerTls($"[databases.{db.Name}]", db.ServerTls.Over(p.ServerTls));
            }
        }

        if ((c.Peers.Count > 0 || c.Proxy.PeerDns.Length > 0) && c.Proxy.PeerId == 0)
        {
            Error(top, "[peers.N] sections and peer_dns need [proxy] peer_id (this process's own number among them)");
        }

        if (c.Proxy.PeerDns.Length > 0 && PeerDnsTarget(c.Proxy.PeerDns) is null)
        {
            Error(top, $"[proxy] peer_dns: expected \"NAME:PORT\", got \"{c.Proxy.PeerDns}\"");
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
}

/// <summary>The outcome of loading a config: a snapshot, or every error found.</summary>
public sealed record ConfigResult(ProxyConfig? Config, IReadOnlyList<string> Errors);
