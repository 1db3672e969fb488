using System.Globalization;
using System.Text;
using PgProxy.Core.Configuration;

namespace PgProxy.Tools;

/// <summary>
/// <c>pgproxy convert pgbouncer.ini</c>: a PgBouncer config (with its <c>%include</c>s) as a proxy.toml. Every key
/// PgProxy has is carried over under the same name (PgProxy kept PgBouncer's names); every other key is listed with
/// the reason it is not, never dropped silently. Times, which PgBouncer gives in seconds, get units.
/// </summary>
internal static class PgBouncerIni
{
    /// <summary>[pgbouncer] keys PgProxy has under the same name in [proxy], by kind of value.</summary>
    private static readonly Dictionary<string, Kind> s_proxyKeys = new(StringComparer.Ordinal)
    {
        ["pool_mode"] = Kind.String, ["default_pool_size"] = Kind.Int, ["min_pool_size"] = Kind.Int, ["reserve_pool_size"] = Kind.Int,
        ["reserve_pool_timeout"] = Kind.Seconds, ["max_db_connections"] = Kind.Int, ["max_client_conn"] = Kind.Int,
        ["query_wait_timeout"] = Kind.Seconds, ["client_login_timeout"] = Kind.Seconds, ["client_idle_timeout"] = Kind.Seconds,
        ["idle_transaction_timeout"] = Kind.Seconds, ["query_timeout"] = Kind.Seconds, ["server_login_retry"] = Kind.Seconds,
        ["server_connect_timeout"] = Kind.Seconds, ["server_reset_query"] = Kind.String, ["server_lifetime"] = Kind.Seconds,
        ["server_idle_timeout"] = Kind.Seconds, ["server_check_delay"] = Kind.Seconds, ["server_check_query"] = Kind.String,
        ["server_round_robin"] = Kind.Bool, ["max_prepared_statements"] = Kind.Int, ["stats_period"] = Kind.Seconds,
        ["client_tls_sslmode"] = Kind.String, ["client_tls_cert_file"] = Kind.Path, ["client_tls_key_file"] = Kind.Path,
        ["client_tls_ca_file"] = Kind.Path, ["client_tls_protocols"] = Kind.String, ["client_tls_ciphers"] = Kind.String,
        ["server_tls_sslmode"] = Kind.String, ["server_tls_ca_file"] = Kind.Path, ["server_tls_cert_file"] = Kind.Path,
        ["server_tls_key_file"] = Kind.Path, ["server_tls_protocols"] = Kind.String, ["peer_id"] = Kind.Int,
    };

    /// <summary>[pgbouncer] keys PgProxy does not take, each with why.</summary>
    private static readonly Dictionary<string, string> s_unsupported = new(StringComparer.Ordinal)
    {
        ["logfile"] = "PgProxy logs to stderr (the container's or systemd's log)",
        ["pidfile"] = "PgProxy does not daemonize or write a pid file",
        ["syslog"] = "PgProxy logs to stderr; [log] format = \"json\" for a log shipper",
        ["syslog_facility"] = "PgProxy logs to stderr",
        ["syslog_ident"] = "PgProxy logs to stderr",
        ["log_connections"] = "PgProxy always logs logins and logouts at info",
        ["log_disconnections"] = "PgProxy always logs logins and logouts at info",
        ["log_pooler_errors"] = "PgProxy always logs the errors it sends",
        ["log_stats"] = "the figures are on /metrics and SHOW STATS",
        ["unix_socket_dir"] = "PgProxy listens on TCP only",
        ["unix_socket_mode"] = "PgProxy listens on TCP only",
        ["unix_socket_group"] = "PgProxy listens on TCP only",
        ["auth_hba_file"] = "auth_type = hba is not supported",
        ["auth_query"] = "auth_query is not supported: list the users in the auth file",
        ["auth_user"] = "auth_query is not supported: list the users in the auth file",
        ["auth_dbname"] = "auth_query is not supported",
        ["server_reset_query_always"] = "PgProxy resets a server whenever a client may have left session state on it",
        ["ignore_startup_parameters"] = "not needed: PgProxy accepts startup parameters and applies them on every server",
        ["application_name_add_host"] = "not supported",
        ["server_fast_close"] = "not supported",
        ["suspend_timeout"] = "SUSPEND / online restart is not supported",
        ["client_tls_dheparams"] = "the TLS library chooses the key exchange",
        ["client_tls_ecdhcurve"] = "the TLS library chooses the key exchange",
        ["server_tls_ciphers"] = "the TLS library's defaults are used toward servers",
        ["max_user_connections"] = "PgProxy sets max_user_connections per user ([users.NAME]); give each user its limit",
        ["user"] = "run PgProxy as that user instead (systemd User=, or the container's USER)",
        ["pkt_buf"] = "buffers are sized by the proxy",
        ["listen_backlog"] = "not supported",
        ["sbuf_loopcnt"] = "not needed",
        ["max_packet_size"] = "PgProxy's limits are fixed (see the README)",
        ["so_reuseport"] = "not supported: run one PgProxy per port",
        ["tcp_defer_accept"] = "not supported",
        ["tcp_socket_buffer"] = "not supported",
        ["tcp_keepalive"] = "the OS defaults apply",
        ["tcp_keepcnt"] = "the OS defaults apply",
        ["tcp_keepidle"] = "the OS defaults apply",
        ["tcp_keepintvl"] = "the OS defaults apply",
        ["tcp_user_timeout"] = "the OS defaults apply",
        ["dns_max_ttl"] = "names are resolved by the OS at each connect",
        ["dns_zone_check_period"] = "names are resolved by the OS at each connect",
        ["dns_nxdomain_ttl"] = "names are resolved by the OS at each connect",
        ["resolv_conf"] = "names are resolved by the OS",
        ["disable_pqexec"] = "not supported",
        ["service_name"] = "Windows only",
        ["job_name"] = "Windows only",
        ["track_extra_parameters"] = "PgProxy tracks every reported parameter",
        ["verbose"] = "mapped to [log] level = \"debug\" when above 0",
    };

    /// <summary>Database connection-string keys PgProxy has under the same name in [databases.NAME].</summary>
    private static readonly Dictionary<string, Kind> s_databaseKeys = new(StringComparer.Ordinal)
    {
        ["host"] = Kind.String, ["port"] = Kind.Int, ["dbname"] = Kind.String, ["user"] = Kind.String, ["password"] = Kind.String,
        ["pool_size"] = Kind.Int, ["min_pool_size"] = Kind.Int, ["max_db_connections"] = Kind.Int, ["pool_mode"] = Kind.String,
    };

    private enum Kind
    {
        String,
        Int,
        Bool,
        Seconds,
        Path,
    }

    /// <summary>The result: the TOML text, and one line per key not carried over.</summary>
    public sealed record Result(string Toml, IReadOnlyList<string> Warnings);

    /// <summary>Converts the file at <paramref name="path"/>; throws <see cref="IOException"/> for an unreadable file or include.</summary>
    public static Result Convert(string path)
    {
        var sections = new Dictionary<string, List<(string Key, string Value, string Where)>>(StringComparer.OrdinalIgnoreCase);
        Read(Path.GetFullPath(path), sections, depth: 0);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var warnings = new List<string>();
        var proxy = new StringBuilder();
        var auth = new StringBuilder();
        var admin = new StringBuilder();
        var log = new StringBuilder();
        string listenAddr = "127.0.0.1";
        string listenPort = "6432";
        foreach ((string key, string value, string where) in Section(sections, "pgbouncer"))
        {
            if (s_proxyKeys.TryGetValue(key, out Kind kind))
            {
                proxy.AppendLine($"{key} = {Value(kind, value, dir, key, where, warnings)}");
                continue;
            }

            switch (key)
            {
                case "listen_addr":
                    listenAddr = value;
                    continue;
                case "listen_port":
                    listenPort = value;
                    continue;
                case "auth_type":
                    string type = value switch
                    {
                        "trust" or "any" => "trust",
                        "md5" or "plain" or "password" => "md5",
                        "scram-sha-256" => "scram-sha-256",
                        "cert" => "cert",
                        _ => "",
                    };
                    if (type.Length == 0)
                    {
                        warnings.Add($"{where}: auth_type = {value}: not supported (trust, md5, scram-sha-256 and cert are); set [auth] type by hand");
                    }
                    else
                    {
                        if (value is "any" or "plain" or "password")
                        {
                            warnings.Add($"{where}: auth_type = {value} became \"{type}\"");
                        }

                        auth.AppendLine($"type = {Quote(type)}");
                    }

                    continue;
                case "auth_file":
                    auth.AppendLine($"file = {Quote(Absolute(value, dir))}");
                    continue;
                case "admin_users" or "stats_users":
                    admin.AppendLine($"{key} = [{string.Join(", ", List(value).Select(Quote))}]");
                    continue;
                case "verbose":
                    if (int.TryParse(value, CultureInfo.InvariantCulture, out int verbose) && verbose > 0)
                    {
                        log.AppendLine("level = \"debug\"");
                    }
                    else
                    {
                        warnings.Add($"{where}: verbose = {value} is not carried over: PgProxy's default [log] level, info, is the same");
                    }

                    continue;
            }

            warnings.Add(s_unsupported.TryGetValue(key, out string? why)
                ? $"{where}: {key} is not carried over: {why}"
                : $"{where}: {key} is not a key PgProxy knows; not carried over");
        }

        var toml = new StringBuilder();
        toml.AppendLine($"# Converted from {Path.GetFullPath(path)} by pgproxy convert.");
        toml.AppendLine("# Keys PgProxy does not take are listed by the command, with the reason for each.");
        toml.AppendLine();
        toml.AppendLine("[proxy]");
        toml.AppendLine($"listen = [{string.Join(", ", List(listenAddr).Select(a => Quote(Address(a) + ":" + listenPort)))}]");
        toml.Append(proxy);
        if (auth.Length > 0)
        {
            toml.AppendLine().AppendLine("[auth]").Append(auth);
        }

        if (admin.Length > 0)
        {
            toml.AppendLine().AppendLine("[admin]").Append(admin);
        }

        if (log.Length > 0)
        {
            toml.AppendLine().AppendLine("[log]").Append(log);
        }

        foreach ((string name, string value, string where) in Section(sections, "databases"))
        {
            toml.AppendLine().AppendLine($"[databases.{Quote(name)}]");
            foreach ((string key, string v) in ConnectionString(value))
            {
                string dbKey = key == "reserve_pool" ? "reserve_pool_size" : key;
                if (s_databaseKeys.TryGetValue(dbKey, out Kind kind) || dbKey == "reserve_pool_size")
                {
                    toml.AppendLine($"{dbKey} = {Value(dbKey == "reserve_pool_size" ? Kind.Int : kind, v, dir, dbKey, where, warnings)}");
                }
                else
                {
                    warnings.Add($"{where}: database {name}: {key} is not carried over" + key switch
                    {
                        "client_encoding" or "datestyle" or "timezone" or "application_name" =>
                            ": clients set it in their startup packet (or options=-c), and PgProxy applies it on every server",
                        "auth_user" or "auth_query" => ": auth_query is not supported",
                        "connect_query" => ": not supported",
                        _ => "",
                    });
                }
            }
        }

        foreach ((string name, string value, string where) in Section(sections, "users"))
        {
            toml.AppendLine().AppendLine($"[users.{Quote(name)}]");
            foreach ((string key, string v) in ConnectionString(value))
            {
                if (key is "pool_mode" or "max_user_connections")
                {
                    toml.AppendLine($"{key} = {Value(key == "pool_mode" ? Kind.String : Kind.Int, v, dir, key, where, warnings)}");
                }
                else
                {
                    warnings.Add($"{where}: user {name}: {key} is not carried over");
                }
            }
        }

        foreach ((string name, string value, string where) in Section(sections, "peers"))
        {
            toml.AppendLine().AppendLine($"[peers.{name}]");
            foreach ((string key, string v) in ConnectionString(value))
            {
                if (key is "host" or "port")
                {
                    toml.AppendLine($"{key} = {Value(key == "port" ? Kind.Int : Kind.String, v, dir, key, where, warnings)}");
                }
                else
                {
                    warnings.Add($"{where}: peer {name}: {key} is not carried over");
                }
            }
        }

        if (Section(sections, "databases").Count == 0)
        {
            warnings.Add("[databases] is empty: PgProxy needs at least one database; add a [databases.\"*\"] section (host, port)");
        }

        foreach (string other in sections.Keys.Where(s => s is not ("pgbouncer" or "databases" or "users" or "peers")))
        {
            warnings.Add($"[{other}] is not carried over");
        }

        return new Result(toml.ToString(), warnings);
    }

    private static List<(string Key, string Value, string Where)> Section(Dictionary<string, List<(string, string, string)>> sections, string name) =>
        sections.TryGetValue(name, out List<(string, string, string)>? list) ? list : [];

    /// <summary>Reads an ini file into <paramref name="sections"/>, following %include (relative to the file that includes).</summary>
    private static void Read(string path, Dictionary<string, List<(string, string, string)>> sections, int depth)
    {
        if (depth > 10)
        {
            throw new IOException($"{path}: %include nested too deep");
        }

        string section = "";
        int number = 0;
        foreach (string raw in File.ReadAllLines(path))
        {
            number++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] is ';' or '#')
            {
                continue;
            }

            string where = $"{Path.GetFileName(path)}:{number}";
            if (line.StartsWith("%include", StringComparison.Ordinal))
            {
                string included = line["%include".Length..].Trim();
                Read(Absolute(included, Path.GetDirectoryName(path)!), sections, depth + 1);
                continue;
            }

            if (line[0] == '[' && line[^1] == ']')
            {
                section = line[1..^1].Trim().ToLowerInvariant();
                if (!sections.ContainsKey(section))
                {
                    sections[section] = [];
                }

                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new IOException($"{where}: expected key = value, got \"{line}\"");
            }

            string key = line[..eq].Trim();
            string value = line[(eq + 1)..].Trim();
            if (!sections.TryGetValue(section, out List<(string, string, string)>? entries))
            {
                throw new IOException($"{where}: \"{key}\" is outside any section");
            }

            // PgBouncer's keys are case-insensitive; database and user names are not.
            entries.Add((section is "databases" or "users" or "peers" ? Unquote(key) : key.ToLowerInvariant(), value, where));
        }
    }

    /// <summary>A libpq-style "key=value key='quoted value'" string.</summary>
    private static List<(string Key, string Value)> ConnectionString(string text)
    {
        var pairs = new List<(string, string)>();
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            int eq = text.IndexOf('=', i);
            if (eq < 0)
            {
                break;
            }

            string key = text[i..eq].Trim().ToLowerInvariant();
            i = eq + 1;
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            var value = new StringBuilder();
            if (i < text.Length && text[i] == '\'')
            {
                for (i++; i < text.Length && text[i] != '\''; i++)
                {
                    if (text[i] == '\\' && i + 1 < text.Length)
                    {
                        i++;
                    }

                    value.Append(text[i]);
                }

                i++;
            }
            else
            {
                for (; i < text.Length && !char.IsWhiteSpace(text[i]); i++)
                {
                    value.Append(text[i]);
                }
            }

            pairs.Add((key, value.ToString()));
        }

        return pairs;
    }

    private static string Value(Kind kind, string value, string dir, string key, string where, List<string> warnings)
    {
        if (value.Contains("${", StringComparison.Ordinal))
        {
            warnings.Add($"{where}: {key} holds \"${{\", which PgProxy reads as an environment variable reference");
        }

        switch (kind)
        {
            case Kind.Int:
                if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n))
                {
                    return n.ToString(CultureInfo.InvariantCulture);
                }

                break;
            case Kind.Bool:
                if (value is "1" or "0" or "true" or "false" or "yes" or "no" or "on" or "off")
                {
                    return value is "1" or "true" or "yes" or "on" ? "true" : "false";
                }

                break;
            case Kind.Seconds:
                if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds >= 0)
                {
                    return Quote(seconds == 0 ? "0"
                        : seconds == Math.Floor(seconds) ? ((long)seconds).ToString(CultureInfo.InvariantCulture) + "s"
                        : ((long)Math.Round(seconds * 1000)).ToString(CultureInfo.InvariantCulture) + "ms");
                }

                return Quote(value); // already with a unit ("30s", "1min"): PgProxy's check judges it
            case Kind.Path:
                return Quote(Absolute(value, dir));
            default:
                return Quote(value);
        }

        warnings.Add($"{where}: {key} = {value}: not a valid value; carried over as text for pgproxy check to point at");
        return Quote(value);
    }

    private static string Quote(string value) => ConfigPrinter.Quote(value);

    private static string Address(string address) => address switch
    {
        "*" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        _ => address,
    };

    private static IEnumerable<string> List(string value) =>
        value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    private static string Absolute(string path, string dir) =>
        path.Length == 0 || Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(dir, path));

    private static string Unquote(string name) => name.Length >= 2 && name[0] == '"' && name[^1] == '"' ? name[1..^1] : name;
}
