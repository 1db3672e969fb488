using System.Globalization;
using Npgsql;
using PgProxy.Core.Auth;
using PgProxy.Core.Configuration;

namespace PgProxy.Tools;

/// <summary>What <c>pgproxy budget</c> is asked: PgProxy replicas, and optionally the application side of the seeds' formula.</summary>
/// <param name="Replicas">PgProxy processes with this config (a sidecar: one per application pod).</param>
/// <param name="AppWorkers">Application worker processes per replica (null: the application side is not computed).</param>
/// <param name="AppPoolSize">Each worker's pool_size.</param>
/// <param name="AppMaxOverflow">Each worker's max_overflow.</param>
/// <param name="User">The role to connect as (default: the database's forced user, else the first user with a plaintext password in the auth file).</param>
internal sealed record BudgetOptions(int Replicas = 1, int? AppWorkers = null, int AppPoolSize = 5, int AppMaxOverflow = 10, string? User = null);

/// <summary>
/// <c>pgproxy budget</c>: the connection budget, checked against each server's real limits. For every server the
/// config names it reads max_connections, the reserved connections and the connections roles other than PgProxy's
/// hold now, and sets them against the worst case PgProxy can open there: replicas × the sum over pools of pool_size +
/// reserve_pool_size, capped by max_db_connections and max_user_connections. When asked, it also works the seeds'
/// application-side formula (replicas × workers × (pool_size + max_overflow)) against PgProxy's max_client_conn, and
/// says what the application would need from PostgreSQL without a pooler. Exit 0: within budget; 1: exceeded; 2: the
/// config or a server could not be read.
/// </summary>
internal static class Budget
{
    /// <summary>One configured database on one server: what PgProxy may open there.</summary>
    private sealed record PoolLine(DatabaseConfig Database, IReadOnlyList<string> Users, int Worst, string How);

    public static async Task<int> RunAsync(ProxyConfig config, UserList users, BudgetOptions options, TextWriter output, CancellationToken ct)
    {
        ProxySection p = config.Proxy;
        int exit = 0;
        var servers = config.Databases.Values.GroupBy(d => (d.Host, d.Port)).OrderBy(g => g.Key.Host, StringComparer.Ordinal).ThenBy(g => g.Key.Port);
        output.WriteLine($"PgProxy replicas: {options.Replicas}");
        output.WriteLine();
        output.WriteLine(Row("server", "max_connections", "reserved", "other roles now", "available", "PgProxy worst case", "verdict"));
        var notes = new List<string>();
        foreach (IGrouping<(string Host, int Port), DatabaseConfig> server in servers)
        {
            List<PoolLine> lines = [.. server.Select(d => Line(config, users, d))];
            int perReplica = lines.Sum(l => l.Worst);
            int[] userCaps = [.. lines.SelectMany(l => l.Users).Distinct(StringComparer.Ordinal)
                .Select(u => config.Users.TryGetValue(u, out UserConfig? uc) ? uc.MaxUserConnections : 0)];
            if (userCaps.Length > 0 && userCaps.All(c => c > 0) && userCaps.Sum() < perReplica)
            {
                perReplica = userCaps.Sum();
                notes.Add($"{server.Key.Host}:{server.Key.Port}: capped at {perReplica} per replica by max_user_connections");
            }

            int worst = perReplica * options.Replicas;
            string name = $"{server.Key.Host}:{server.Key.Port}";
            ServerFigures? figures;
            try
            {
                figures = await ReadAsync(config, users, server.ToList(), lines, options.User, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException or ArgumentException)
            {
                output.WriteLine(Row(name, "?", "?", "?", "?", I(worst), "UNKNOWN"));
                lines.ForEach(line => output.WriteLine($"    [databases.{line.Database.Name}] {line.How}"));
                notes.Add($"{name}: could not read its limits: {ex.Message}");
                exit = Math.Max(exit, 2);
                continue;
            }

            int available = figures.MaxConnections - figures.Reserved - figures.Others;
            bool fits = worst <= available;
            output.WriteLine(Row(name, I(figures.MaxConnections), I(figures.Reserved), I(figures.Others), I(available),
                $"{I(worst)} ({I(options.Replicas)} x {I(perReplica)})", fits ? "OK" : "EXCEEDED"));
            foreach (PoolLine line in lines)
            {
                output.WriteLine($"    [databases.{line.Database.Name}] {line.How}");
            }

            if (!fits)
            {
                exit = Math.Max(exit, 1);
                notes.Add($"{name}: PgProxy may open {worst} connections but only {available} are free: lower pool_size / " +
                          "reserve_pool_size or the replica count, set max_db_connections, or raise max_connections");
            }

            if (options.AppWorkers is { } workers)
            {
                int direct = options.Replicas * workers * (options.AppPoolSize + options.AppMaxOverflow);
                notes.Add($"{name}: without a pooler the application would need up to {direct} connections here " +
                          $"({options.Replicas} x {workers} x ({options.AppPoolSize} + {options.AppMaxOverflow})); {available} are free");
            }
        }

        if (options.AppWorkers is { } w)
        {
            int app = options.Replicas * w * (options.AppPoolSize + options.AppMaxOverflow);
            int capacity = options.Replicas * p.MaxClientConn;
            bool fits = app <= capacity;
            output.WriteLine();
            output.WriteLine($"application side: {options.Replicas} replicas x {w} workers x ({options.AppPoolSize} pool_size + {options.AppMaxOverflow} max_overflow) = {app} " +
                             $"client connections; PgProxy takes {capacity} ({options.Replicas} x max_client_conn {p.MaxClientConn}): {(fits ? "OK" : "EXCEEDED")}");
            if (!fits)
            {
                exit = Math.Max(exit, 1);
                notes.Add("application side: raise max_client_conn, or lower the workers' pool_size + max_overflow");
            }
        }

        if (notes.Count > 0)
        {
            output.WriteLine();
            foreach (string note in notes)
            {
                output.WriteLine("note: " + note);
            }
        }

        return exit;
    }

    private static PoolLine Line(ProxyConfig config, UserList users, DatabaseConfig d)
    {
        ProxySection p = config.Proxy;
        int perUser = (d.PoolSize ?? p.DefaultPoolSize) + (d.ReservePoolSize ?? p.ReservePoolSize);
        // A pool per client user, unless the database logs every client in as one forced user.
        IReadOnlyList<string> who = d.User is { } forced ? [forced]
            : [.. users.Names.Concat(config.Users.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        int count = Math.Max(1, who.Count);
        int worst = count * perUser;
        string how = $"{count} {(d.User is not null ? "forced user" : who.Count == 0 ? "user (none listed: each client user makes a pool)" : "users")} x " +
                     $"({d.PoolSize ?? p.DefaultPoolSize} pool_size + {d.ReservePoolSize ?? p.ReservePoolSize} reserve_pool_size) = {worst}";
        int cap = d.MaxDbConnections ?? p.MaxDbConnections;
        if (cap > 0 && cap < worst)
        {
            worst = cap;
            how += $", capped at {cap} by max_db_connections";
        }

        if (d.Name == "*")
        {
            how += "; \"*\" makes a pool per database name clients ask for: count it once per name";
        }

        return new PoolLine(d, who, worst, how);
    }

    private sealed record ServerFigures(int MaxConnections, int Reserved, int Others);

    /// <summary>
    /// Reads the server's limits, connected as <paramref name="asUser"/>, else as the first that works of the forced
    /// users of its databases and the auth file's users with a plaintext password.
    /// </summary>
    private static async Task<ServerFigures> ReadAsync(ProxyConfig config, UserList users, List<DatabaseConfig> databases, List<PoolLine> lines,
        string? asUser, CancellationToken ct)
    {
        var candidates = new List<(DatabaseConfig Database, string User, string? Password)>();
        foreach (DatabaseConfig d in databases.OrderBy(x => x.User is null).ThenBy(x => x.Name == "*"))
        {
            if (asUser is not null)
            {
                candidates.Add((d, asUser, Password(users, asUser, d)));
            }
            else if (d.User is { } forced)
            {
                candidates.Add((d, forced, Password(users, forced, d)));
            }
            else
            {
                candidates.AddRange(users.Names.Order(StringComparer.Ordinal).Where(u => users.Find(u)?.Kind == SecretKind.Plain)
                    .Select(u => (d, u, Password(users, u, d))));
            }
        }

        if (candidates.Count == 0)
        {
            throw new InvalidOperationException("no role to connect as: give --user (with PGPASSWORD), or a plaintext password in the auth file");
        }

        Exception? last = null;
        foreach ((DatabaseConfig d, string user, string? password) in candidates.Take(6))
        {
            try
            {
                return await ReadAsAsync(config, d, user, password, lines, ct).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ex.SqlState is "28000" or "28P01" or "3D000" or "42501")
            {
                last = ex; // that role or database does not work here: try the next
            }
        }

        throw last!;
    }

    private static string? Password(UserList users, string user, DatabaseConfig d) =>
        (user == d.User ? d.Password : null)
        ?? (users.Find(user) is { Kind: SecretKind.Plain } secret ? secret.Secret : null)
        ?? Environment.GetEnvironmentVariable("PGPASSWORD");

    private static async Task<ServerFigures> ReadAsAsync(ProxyConfig config, DatabaseConfig d, string user, string? password, List<PoolLine> lines,
        CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = d.Host,
            Port = d.Port,
            Database = d.BackendDbName(d.Name == "*" ? "postgres" : d.Name),
            Username = user,
            Password = password,
            Timeout = 10,
            Pooling = false,
            SslMode = d.ServerTls.Over(config.Proxy.ServerTls).Mode switch
            {
                TlsMode.Disable => SslMode.Disable,
                TlsMode.Allow or TlsMode.Prefer => SslMode.Prefer,
                _ => SslMode.Require,
            },
            ApplicationName = "pgproxy budget",
        };
        await using var conn = new NpgsqlConnection(builder.ConnectionString);
        await conn.OpenAsync(ct).ConfigureAwait(false);
        string[] ours = [.. lines.SelectMany(l => l.Users).Append(user).Distinct(StringComparer.Ordinal)];
        await using var cmd = new NpgsqlCommand(
            "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, " +
            "coalesce(current_setting('reserved_connections', true), '0')::int, " +
            "(SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() " +
            "AND NOT (coalesce(usename::text, '') = ANY(@ours)))::int", conn);
        cmd.Parameters.AddWithValue("ours", ours);
        await using NpgsqlDataReader reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await reader.ReadAsync(ct).ConfigureAwait(false);
        return new ServerFigures(reader.GetInt32(0), reader.GetInt32(1) + reader.GetInt32(2), reader.GetInt32(3));
    }

    private static string Row(params string[] cells)
    {
        int[] widths = [22, 16, 9, 16, 10, 22, 8];
        return string.Join("  ", cells.Select((c, i) => c.PadRight(widths[Math.Min(i, widths.Length - 1)]))).TrimEnd();
    }

    private static string I(int value) => value.ToString(CultureInfo.InvariantCulture);
}
