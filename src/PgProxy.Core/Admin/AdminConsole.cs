using System.IO.Pipelines;
using System.Reflection;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Admin;

/// <summary>
/// The admin console: the virtual databases <c>pgproxy</c> and <c>pgbouncer</c> (so PgBouncer's scripts and
/// exporters work), simple query protocol only, one command per query. Results have PgBouncer's column names, order and
/// types (its <c>src/admin.c</c>); an unknown command, like PgBouncer's, gets <c>ERROR 08P01 invalid command '…', use
/// SHOW HELP;</c> and the console stays usable; an extended-protocol message gets an error and the connection closes.
/// Runs in the client's session after login; nothing here is on the data path.
/// </summary>
internal sealed class AdminConsole
{
    /// <summary>The console's database names.</summary>
    public static bool IsConsoleDatabase(string database) => database is "pgproxy" or "pgbouncer";

    private const int MaxQueryBytes = 64 * 1024;
    private const string ShowTag = "SHOW";
    private const int Text = BackendMessages.TextOid;
    private const int Int4 = BackendMessages.Int4Oid;
    private const int Numeric = 1700;

    private static readonly string s_version = "PgProxy " +
        (typeof(AdminConsole).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0");

    private readonly ProxyServices _services;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly PgMessageBuilder _out = new();

    public AdminConsole(ProxyServices services, PipeReader input, PipeWriter output)
    {
        _services = services;
        _input = input;
        _output = output;
    }

    /// <summary>
    /// Whether <paramref name="user"/> may use the console: an admin or a stats user. Every command here is a SHOW, which
    /// both may run; the commands only admins may run (PAUSE, RELOAD, ...) are not built yet.
    /// </summary>
    public static bool MayUse(AdminSection admin, string user) =>
        admin.AdminUsers.Contains(user, StringComparer.Ordinal) || admin.StatsUsers.Contains(user, StringComparer.Ordinal);

    /// <summary>The welcome (after AuthenticationOk, which the caller has written into <paramref name="welcome"/>).</summary>
    public async Task WelcomeAsync(PgMessageBuilder welcome)
    {
        foreach ((string name, string value) in new[]
                 {
                     ("server_version", s_version), ("server_encoding", "UTF8"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                     ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on"), ("application_name", ""),
                 })
        {
            BackendMessages.ParameterStatus(welcome, name, value);
        }

        BackendMessages.BackendKeyData(welcome, 0, 0); // nothing here to cancel
        BackendMessages.ReadyForQuery(welcome, TransactionStatus.Idle);
        await PgMessageIO.WriteAsync(_output, welcome, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Serves queries until the client leaves (or sends what the console does not speak, or the proxy shuts down).</summary>
    public async Task RunAsync()
    {
        CancellationToken drain = _services.DrainToken;
        while (true)
        {
            PgMessage? message;
            try
            {
                message = await PgMessageIO.ReadAsync(_input, MaxQueryBytes, drain).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (drain.IsCancellationRequested)
            {
                throw new ProxyException(SqlState.AdminShutdown, ClientSession.ShuttingDownMessage);
            }

            if (message is not { } m || m.Type == FrontendCode.Terminate)
            {
                return;
            }

            if (m.Type != FrontendCode.Query)
            {
                string what = m.Type is FrontendCode.Parse or FrontendCode.Bind or FrontendCode.Execute or FrontendCode.Describe or FrontendCode.Sync
                    ? "extended query protocol not supported by admin console"
                    : $"unsupported packet type for admin console: '{(char)m.Type}'";
                throw new ProxyException(SqlState.ProtocolViolation, what);
            }

            string query = System.Text.Encoding.UTF8.GetString(m.Body.AsSpan(0, Math.Max(0, m.Body.Length - 1)));
            Execute(query);
            BackendMessages.ReadyForQuery(_out, TransactionStatus.Idle);
            await PgMessageIO.WriteAsync(_output, _out, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private void Execute(string query)
    {
        string[] words = query.Trim().TrimEnd(';').Trim().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 2 && words[0].Equals("show", StringComparison.OrdinalIgnoreCase))
        {
            switch (words[1].ToLowerInvariant())
            {
                case "help": ShowHelp(); return;
                case "version": Rows([("version", Text)], [[s_version]]); return;
                case "pools": ShowPools(); return;
                case "databases": ShowDatabases(); return;
                case "users": ShowUsers(); return;
                case "lists": ShowLists(); return;
                case "state": ShowState(); return;
                case "config": ShowConfig(); return;
                case "stats_totals": ShowStatsTotals(); return;
            }
        }

        // PgBouncer's wording and code (admin_error: ERROR 08P01), so its scripts recognise it.
        Error($"invalid command '{query}', use SHOW HELP;");
    }

    private void ShowHelp()
    {
        new ErrorResponse("NOTICE", "00000", "Console usage",
            "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|USERS|VERSION\n\tSHOW LISTS|STATE\n\tSHOW STATS_TOTALS").Write(_out, notice: true);
        BackendMessages.CommandComplete(_out, ShowTag);
    }

    /// <summary>PgBouncer's SHOW POOLS: "ssiiiiiiiiiiiiiss".</summary>
    private void ShowPools()
    {
        var rows = new List<string?[]>();
        foreach (Pool pool in SortedPools())
        {
            PoolCounts c = pool.Counts;
            TimeSpan wait = pool.MaxWait;
            long micros = (long)(wait.TotalMicroseconds % 1_000_000);
            rows.Add([
                pool.Key.Database, pool.Key.User,
                I(pool.ClientCount(ClientState.Active) + pool.ClientCount(ClientState.Idle)), I(c.Waiting), "0", "0",
                I(c.Active), "0", "0", I(c.Idle), I(c.Used), I(c.Testing), I(c.Connecting),
                I((long)wait.TotalSeconds), I(micros), Mode(pool.Settings.Mode), null,
            ]);
        }

        Rows([("database", Text), ("user", Text), ("cl_active", Int4), ("cl_waiting", Int4), ("cl_active_cancel_req", Int4),
            ("cl_waiting_cancel_req", Int4), ("sv_active", Int4), ("sv_active_cancel", Int4), ("sv_being_canceled", Int4),
            ("sv_idle", Int4), ("sv_used", Int4), ("sv_tested", Int4), ("sv_login", Int4), ("maxwait", Int4), ("maxwait_us", Int4),
            ("pool_mode", Text), ("load_balance_hosts", Text)], rows);
    }

    /// <summary>PgBouncer's SHOW DATABASES: "ssissiiiissiiiiii".</summary>
    private void ShowDatabases()
    {
        ProxyConfig config = _services.Config;
        ProxySection p = config.Proxy;
        var rows = new List<string?[]>();
        foreach (DatabaseConfig db in config.Databases.Values.OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            Pool[] pools = _services.Pools.Pools.Where(x => ReferenceEquals(_services.Config.FindDatabase(x.Key.Database), db)).ToArray();
            int servers = pools.Sum(x => x.Counts.Total);
            int clients = pools.Sum(x => x.LoggedInClients);
            rows.Add([
                db.Name, db.Host, I(db.Port), db.DbName ?? (db.Name == "*" ? null : db.Name), db.User,
                I(db.PoolSize ?? p.DefaultPoolSize), I(db.MinPoolSize ?? p.MinPoolSize), I(db.ReservePoolSize ?? p.ReservePoolSize),
                I((long)p.ServerLifetime.TotalSeconds), db.PoolMode is { } mode ? Mode(mode) : null, null,
                I(db.MaxDbConnections ?? p.MaxDbConnections), I(servers), "0", I(clients), "0", "0",
            ]);
        }

        // The console itself, as PgBouncer lists its own.
        rows.Add(["pgbouncer", null, I(0), "pgbouncer", "pgbouncer", "2", "0", "0", I((long)p.ServerLifetime.TotalSeconds), "statement", null,
            "0", "0", "0", "0", "0", "0"]);
        Rows([("name", Text), ("host", Text), ("port", Int4), ("database", Text), ("force_user", Text), ("pool_size", Int4),
            ("min_pool_size", Int4), ("reserve_pool_size", Int4), ("server_lifetime", Int4), ("pool_mode", Text),
            ("load_balance_hosts", Text), ("max_connections", Int4), ("current_connections", Int4), ("max_client_connections", Int4),
            ("current_client_connections", Int4), ("paused", Int4), ("disabled", Int4)], rows);
    }

    /// <summary>PgBouncer's SHOW USERS: "ssssiiii" (pool sizes are text, empty when the user sets none).</summary>
    private void ShowUsers()
    {
        ProxyConfig config = _services.Config;
        var names = new SortedSet<string>(_services.Users.Names, StringComparer.Ordinal);
        names.UnionWith(config.Users.Keys);
        foreach (Pool pool in _services.Pools.Pools)
        {
            names.Add(pool.Key.User);
        }

        var rows = new List<string?[]>();
        foreach (string name in names)
        {
            config.Users.TryGetValue(name, out UserConfig? user);
            Pool[] pools = _services.Pools.Pools.Where(x => x.Key.User == name).ToArray();
            int servers = pools.Sum(x => x.Counts.Total);
            int clients = pools.Sum(x => x.LoggedInClients);
            rows.Add([name, "", "", user?.PoolMode is { } mode ? Mode(mode) : null, I(user?.MaxUserConnections ?? 0), I(servers), "0", I(clients)]);
        }

        Rows([("name", Text), ("pool_size", Text), ("reserve_pool_size", Text), ("pool_mode", Text), ("max_user_connections", Int4),
            ("current_connections", Int4), ("max_user_client_connections", Int4), ("current_client_connections", Int4)], rows);
    }

    /// <summary>PgBouncer's SHOW LISTS: "si". PgProxy keeps no free lists (the GC does) and resolves names once per connect.</summary>
    private void ShowLists()
    {
        Pool[] pools = _services.Pools.Pools.ToArray();
        int loggedIn = pools.Sum(x => x.LoggedInClients);
        int clients = _services.ClientCount;
        var users = new HashSet<string>(_services.Users.Names, StringComparer.Ordinal);
        users.UnionWith(pools.Select(x => x.Key.User));
        Rows([("list", Text), ("items", Int4)],
        [
            ["databases", I(_services.Config.Databases.Count)], ["users", I(users.Count)], ["peers", "0"], ["pools", I(pools.Length)],
            ["peer_pools", "0"], ["free_clients", "0"], ["used_clients", I(clients)], ["login_clients", I(Math.Max(0, clients - loggedIn))],
            ["free_servers", "0"], ["used_servers", I(pools.Sum(x => x.Counts.Total))], ["dns_names", "0"], ["dns_zones", "0"],
            ["dns_queries", "0"], ["dns_pending", "0"],
        ]);
    }

    /// <summary>
    /// PgBouncer's SHOW STATS_TOTALS: "sNNNNNNNNNNNN", one row per database (its pools summed), times in microseconds.
    /// Parse, bind and login counts are not kept yet: 0.
    /// </summary>
    private void ShowStatsTotals()
    {
        var rows = new List<string?[]>();
        foreach (IGrouping<string, Pool> db in SortedPools().GroupBy(p => p.Key.Database, StringComparer.Ordinal))
        {
            PoolTotals t = db.Aggregate(default(PoolTotals), (sum, p) => sum + p.Stats.Read(_services.Time));
            rows.Add([db.Key, I(t.ServerAssignments), I(t.Transactions), I(t.Queries), I(t.Received), I(t.Sent), I(t.TransactionMicros),
                I(t.QueryMicros), I(t.WaitMicros), "0", "0", "0", "0"]);
        }

        Rows([("database", Text), ("server_assignment_count", Numeric), ("xact_count", Numeric), ("query_count", Numeric),
            ("bytes_received", Numeric), ("bytes_sent", Numeric), ("xact_time", Numeric), ("query_time", Numeric), ("wait_time", Numeric),
            ("client_parse_count", Numeric), ("server_parse_count", Numeric), ("bind_count", Numeric), ("client_login_count", Numeric)], rows);
    }

    /// <summary>PgBouncer's SHOW STATE: "ss".</summary>
    private void ShowState() =>
        Rows([("key", Text), ("value", Text)], [["active", _services.Draining ? "no" : "yes"], ["paused", "no"], ["suspended", "no"]]);

    /// <summary>
    /// PgBouncer's SHOW CONFIG: "ssss" (key, value, default, changeable), every key `pgproxy check` prints; keys outside
    /// [proxy] are named section.key. Nothing can be changed live yet, so changeable is "no" throughout.
    /// </summary>
    private void ShowConfig()
    {
        Dictionary<string, string> values = Flatten(ConfigPrinter.Print(_services.Config));
        Dictionary<string, string> defaults = Flatten(ConfigPrinter.Print(new ProxyConfig()));
        var rows = new List<string?[]>();
        foreach ((string key, string value) in values)
        {
            rows.Add([key, value, defaults.GetValueOrDefault(key, ""), "no"]);
        }

        Rows([("key", Text), ("value", Text), ("default", Text), ("changeable", Text)], rows);
    }

    /// <summary>The printed config's [proxy], [auth], [log], [http] and [admin] keys (secrets are masked by the printer).</summary>
    private static Dictionary<string, string> Flatten(string printed)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        string? section = null;
        foreach (string raw in printed.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith('['))
            {
                string name = line.Trim('[', ']');
                section = name is "proxy" or "auth" or "log" or "http" or "admin" ? name : null;
                continue;
            }

            int eq = line.IndexOf(" = ", StringComparison.Ordinal);
            if (section is null || line.StartsWith('#') || eq < 0)
            {
                continue;
            }

            string key = section == "proxy" ? line[..eq] : $"{section}.{line[..eq]}";
            string value = line[(eq + 3)..];
            result[key] = value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value;
        }

        return result;
    }

    private IEnumerable<Pool> SortedPools() =>
        _services.Pools.Pools.OrderBy(p => p.Key.Database, StringComparer.Ordinal).ThenBy(p => p.Key.User, StringComparer.Ordinal);

    private void Rows(IReadOnlyList<(string Name, int TypeOid)> columns, IReadOnlyList<string?[]> rows)
    {
        BackendMessages.RowDescription(_out, columns);
        foreach (string?[] row in rows)
        {
            BackendMessages.DataRow(_out, row);
        }

        BackendMessages.CommandComplete(_out, ShowTag);
    }

    private void Error(string message) => ErrorResponse.Error(SqlState.ProtocolViolation, message).Write(_out);

    private static string I(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Mode(PoolMode mode) => ConfigPrinter.Mode(mode);
}
