using System.Globalization;
using System.Text;

namespace PgProxy.Core.Configuration;

/// <summary>Prints the effective configuration as TOML (every key, defaults included) with secrets masked.</summary>
public static class ConfigPrinter
{
    private const string Masked = "\"********\"";

    /// <summary>Renders <paramref name="config"/>.</summary>
    public static string Print(ProxyConfig config)
    {
        var sb = new StringBuilder();
        ProxySection p = config.Proxy;
        sb.AppendLine("[proxy]");
        sb.AppendLine($"listen = [{string.Join(", ", p.Listen.Select(Quote))}]");
        sb.AppendLine($"pool_mode = {Quote(Mode(p.PoolMode))}");
        sb.AppendLine($"default_pool_size = {p.DefaultPoolSize}");
        sb.AppendLine($"min_pool_size = {p.MinPoolSize}");
        sb.AppendLine($"reserve_pool_size = {p.ReservePoolSize}");
        sb.AppendLine($"reserve_pool_timeout = {Duration(p.ReservePoolTimeout)}");
        sb.AppendLine($"max_db_connections = {p.MaxDbConnections}");
        sb.AppendLine($"max_client_conn = {p.MaxClientConn}");
        sb.AppendLine($"io_threads = {p.IoThreads}");
        sb.AppendLine($"query_wait_timeout = {Duration(p.QueryWaitTimeout)}");
        sb.AppendLine($"client_login_timeout = {Duration(p.ClientLoginTimeout)}");
        sb.AppendLine($"client_idle_timeout = {Duration(p.ClientIdleTimeout)}");
        sb.AppendLine($"idle_transaction_timeout = {Duration(p.IdleTransactionTimeout)}");
        sb.AppendLine($"query_timeout = {Duration(p.QueryTimeout)}");
        sb.AppendLine($"server_connect_timeout = {Duration(p.ServerConnectTimeout)}");
        sb.AppendLine($"server_login_retry = {Duration(p.ServerLoginRetry)}");
        sb.AppendLine($"server_reset_query = {Quote(p.ServerResetQuery)}");
        sb.AppendLine($"server_lifetime = {Duration(p.ServerLifetime)}");
        sb.AppendLine($"server_idle_timeout = {Duration(p.ServerIdleTimeout)}");
        sb.AppendLine($"server_check_delay = {Duration(p.ServerCheckDelay)}");
        sb.AppendLine($"server_check_query = {Quote(p.ServerCheckQuery)}");
        sb.AppendLine($"server_round_robin = {(p.ServerRoundRobin ? "true" : "false")}");
        sb.AppendLine($"max_prepared_statements = {p.MaxPreparedStatements}");
        sb.AppendLine(p.MaxPinnedClientsPerPool is { } pinned
            ? $"max_pinned_clients_per_pool = {pinned}"
            : "# max_pinned_clients_per_pool = (unset: half of each pool's pool_size, rounded down)");

        sb.AppendLine($"pin_timeout = {Duration(p.PinTimeout)}");
        sb.AppendLine($"peer_id = {p.PeerId}");
        sb.AppendLine($"peer_dns = {Quote(p.PeerDns)}");
        sb.AppendLine($"shutdown_delay = {Duration(p.ShutdownDelay)}");
        sb.AppendLine($"shutdown_timeout = {Duration(p.ShutdownTimeout)}");
        sb.AppendLine($"stats_period = {Duration(p.StatsPeriod)}");
        sb.AppendLine($"memory_trim_delay = {Duration(p.MemoryTrimDelay)}");
        sb.AppendLine($"client_tls_sslmode = {Quote(SslMode(p.ClientTlsSslMode))}");
        sb.AppendLine($"client_tls_cert_file = {Quote(p.ClientTlsCertFile ?? "")}");
        sb.AppendLine($"client_tls_key_file = {Quote(p.ClientTlsKeyFile ?? "")}");
        sb.AppendLine($"client_tls_ca_file = {Quote(p.ClientTlsCaFile ?? "")}");
        sb.AppendLine($"client_tls_protocols = {Quote(Protocols(p.ClientTlsProtocols))}");
        sb.AppendLine($"client_tls_ciphers = {Quote(p.ClientTlsCiphers)}");
        PrintServerTls(sb, p.ServerTls);
        sb.AppendLine();
        sb.AppendLine("[auth]");
        sb.AppendLine($"type = {Quote(config.Auth.Type switch { AuthType.Trust => "trust", AuthType.Md5 => "md5", AuthType.Cert => "cert", _ => "scram-sha-256" })}");
        if (config.Auth.File is { } file)
        {
            sb.AppendLine($"file = {Quote(file)}");
        }

        sb.AppendLine();
        sb.AppendLine("[log]");
        sb.AppendLine($"level = {Quote(config.Log.Level)}");
        sb.AppendLine($"format = {Quote(config.Log.Format == LogFormat.Json ? "json" : "text")}");
        sb.AppendLine();
        sb.AppendLine("[http]");
        sb.AppendLine($"listen = {Quote(config.Http.Listen)}");
        sb.AppendLine($"readyz_requires_server = {(config.Http.ReadyzRequiresServer ? "true" : "false")}");
        sb.AppendLine();
        sb.AppendLine("[admin]");
        sb.AppendLine($"admin_users = [{string.Join(", ", config.Admin.AdminUsers.Select(Quote))}]");
        sb.AppendLine($"stats_users = [{string.Join(", ", config.Admin.StatsUsers.Select(Quote))}]");
        sb.AppendLine();
        sb.AppendLine("[otel]");
        sb.AppendLine($"endpoint = {Quote(config.Otel.Endpoint)}");
        sb.AppendLine($"protocol = {Quote(config.Otel.Protocol)}");
        sb.AppendLine($"interval = {Duration(config.Otel.Interval)}");
        foreach (DatabaseConfig db in config.Databases.Values.OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            sb.AppendLine();
            sb.AppendLine($"[databases.{Key(db.Name)}]");
            sb.AppendLine($"host = {Quote(db.Host)}");
            sb.AppendLine($"port = {db.Port}");
            sb.AppendLine(db.DbName is null ? $"# dbname = (the name the client asked for)" : $"dbname = {Quote(db.DbName)}");
            if (db.User is not null)
            {
                sb.AppendLine($"user = {Quote(db.User)}");
            }

            if (db.Password is not null)
            {
                sb.AppendLine($"password = {Masked}");
            }

            sb.AppendLine($"pool_size = {db.PoolSize ?? p.DefaultPoolSize}");
            sb.AppendLine($"min_pool_size = {db.MinPoolSize ?? p.MinPoolSize}");
            sb.AppendLine($"reserve_pool_size = {db.ReservePoolSize ?? p.ReservePoolSize}");
            sb.AppendLine($"max_db_connections = {db.MaxDbConnections ?? p.MaxDbConnections}");
            sb.AppendLine($"pool_mode = {Quote(Mode(db.PoolMode ?? p.PoolMode))}");
            PrintServerTls(sb, db.ServerTls.Over(p.ServerTls));
        }

        foreach (UserConfig user in config.Users.Values.OrderBy(u => u.Name, StringComparer.Ordinal))
        {
            sb.AppendLine();
            sb.AppendLine($"[users.{Key(user.Name)}]");
            if (user.PoolMode is { } mode)
            {
                sb.AppendLine($"pool_mode = {Quote(Mode(mode))}");
            }

            sb.AppendLine($"max_user_connections = {user.MaxUserConnections}");
        }

        foreach (PeerConfig peer in config.Peers.Values.OrderBy(x => x.Id))
        {
            sb.AppendLine();
            sb.AppendLine($"[peers.{peer.Id}]");
            sb.AppendLine($"host = {Quote(peer.Host)}");
            sb.AppendLine($"port = {peer.Port}");
        }

        return sb.ToString();
    }

    private static void PrintServerTls(StringBuilder sb, ServerTlsSettings tls)
    {
        sb.AppendLine($"server_tls_sslmode = {Quote(SslMode(tls.Mode))}");
        sb.AppendLine($"server_tls_ca_file = {Quote(tls.CaFile ?? "")}");
        sb.AppendLine($"server_tls_cert_file = {Quote(tls.CertFile ?? "")}");
        sb.AppendLine($"server_tls_key_file = {Quote(tls.KeyFile ?? "")}");
        sb.AppendLine($"server_tls_protocols = {Quote(Protocols(tls.Protocols))}");
        sb.AppendLine($"server_tls_direct = {(tls.Direct ? "true" : "false")}");
    }

    /// <summary>
    /// The printed config as (<c>section.key</c>, value) pairs in print order, values as printed (strings unquoted,
    /// secrets masked): what SHOW CONFIG lists and what a reload's diff compares.
    /// </summary>
    public static List<KeyValuePair<string, string>> Entries(ProxyConfig config)
    {
        var result = new List<KeyValuePair<string, string>>();
        string? section = null;
        foreach (string raw in Print(config).Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith('['))
            {
                section = line[1..^1];
                continue;
            }

            int eq = line.IndexOf(" = ", StringComparison.Ordinal);
            if (section is null || line.StartsWith('#') || eq < 0)
            {
                continue;
            }

            string value = line[(eq + 3)..];
            result.Add(new($"{section}.{line[..eq]}", value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value));
        }

        return result;
    }

    /// <summary>An sslmode as the config spells it.</summary>
    internal static string SslMode(TlsMode mode) => mode switch
    {
        TlsMode.VerifyCa => "verify-ca",
        TlsMode.VerifyFull => "verify-full",
        _ => mode.ToString().ToLowerInvariant(),
    };

    private static string Protocols(System.Security.Authentication.SslProtocols protocols) => protocols switch
    {
        System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13 => "secure",
        System.Security.Authentication.SslProtocols.Tls12 => "tlsv1.2",
        _ => "tlsv1.3",
    };

    /// <summary>A pool mode as the config spells it (also the admin console's pool_mode column).</summary>
    internal static string Mode(PoolMode mode) => mode.ToString().ToLowerInvariant();

    private static string Duration(TimeSpan t)
    {
        if (t == TimeSpan.Zero)
        {
            return "\"0\"";
        }

        if (t.TotalMilliseconds % 1000 != 0)
        {
            return Quote(t.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + "ms");
        }

        return Quote(t.TotalSeconds.ToString(CultureInfo.InvariantCulture) + "s");
    }

    private static string Key(string name) =>
        name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-') ? name : Quote(name);

    /// <summary>A TOML basic string (quotes, backslashes and control characters escaped).</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || c == 0x7F)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append('"').ToString();
    }
}
