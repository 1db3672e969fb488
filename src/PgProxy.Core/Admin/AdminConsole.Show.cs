using System.Globalization;
using System.Net;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Admin;

/// <summary>The console's SHOW commands: PgBouncer's result sets, read from the pools, the sessions and the config.</summary>
internal sealed partial class AdminConsole
{
    private void ShowHelp()
    {
        new ErrorResponse("NOTICE", "00000", "Console usage",
            "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n\tSHOW LISTS|STATE\n" +
            "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n\tSET key = arg\n\tRELOAD\n\tPAUSE [<db>]\n\tRESUME [<db>]\n" +
            "\tDISABLE <db>\n\tENABLE <db>\n\tRECONNECT [<db>]\n\tKILL [<db>]\n\tKILL_CLIENT <client_id>\n\tSHUTDOWN\n" +
            "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n\tWAIT_CLOSE [<db>]").Write(_out, notice: true);
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
                I(pool.ClientCount(ClientState.Active) + pool.ClientCount(ClientState.Idle)), I(c.Waiting), I(pool.CancelsInFlight), "0",
                I(c.Active), I(pool.CancelsInFlight), "0", I(c.Idle), I(c.Used), I(c.Testing), I(c.Connecting),
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
                I(db.MaxDbConnections ?? p.MaxDbConnections), I(servers), "0", I(clients),
                I(_services.Pools.IsPaused(db.Name) ? 1 : 0), I(_services.Pools.IsDisabled(db.Name) ? 1 : 0),
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

    /// <summary>PgBouncer's SHOW STATS_TOTALS: "sNNNNNNNNNNNN", one row per database (its pools summed), times in microseconds.</summary>
    private void ShowStatsTotals()
    {
        var rows = new List<string?[]>();
        foreach ((string database, PoolTotals totals, _) in DatabaseStats())
        {
            rows.Add([database, .. TotalsColumns(totals)]);
        }

        Rows([("database", Text), ("server_assignment_count", Numeric), ("xact_count", Numeric), ("query_count", Numeric),
            ("bytes_received", Numeric), ("bytes_sent", Numeric), ("xact_time", Numeric), ("query_time", Numeric), ("wait_time", Numeric),
            ("client_parse_count", Numeric), ("server_parse_count", Numeric), ("bind_count", Numeric), ("client_login_count", Numeric)], rows);
    }

    /// <summary>PgBouncer's SHOW STATE: "ss".</summary>
    private void ShowState() =>
        Rows([("key", Text), ("value", Text)],
            [["active", _services.RefusesLogins ? "no" : "yes"], ["paused", _services.Pools.PausedAll ? "yes" : "no"], ["suspended", "no"]]);

    /// <summary>
    /// PgBouncer's SHOW CONFIG: "ssss" (key, value, default, changeable), every key `pgproxy check` prints; keys outside
    /// [proxy] are named section.key. changeable: whether SET can change it (the [proxy] keys but those only a restart
    /// applies: listen, io_threads).
    /// </summary>
    private void ShowConfig()
    {
        Dictionary<string, string> values = Flatten(_services.Config);
        Dictionary<string, string> defaults = Flatten(new ProxyConfig());
        var rows = new List<string?[]>();
        foreach ((string key, string value) in values)
        {
            // SET changes a [proxy] key live, but for those only a restart applies (RELOAD keeps their running values).
            bool changeable = !key.Contains('.', StringComparison.Ordinal) && !ConfigDiff.NeedsRestart("proxy." + key);
            rows.Add([key, value, defaults.GetValueOrDefault(key, ""), changeable ? "yes" : "no"]);
        }

        Rows([("key", Text), ("value", Text), ("default", Text), ("changeable", Text)], rows);
    }

    /// <summary>The printed config's [proxy], [auth], [log], [http], [admin] and [otel] keys (secrets are masked by the printer).</summary>
    private static Dictionary<string, string> Flatten(ProxyConfig config)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((string key, string value) in ConfigPrinter.Entries(config))
        {
            int dot = key.IndexOf('.', StringComparison.Ordinal);
            string section = key[..dot];
            if (section is "proxy" or "auth" or "log" or "http" or "admin" or "otel")
            {
                result[section == "proxy" ? key[(dot + 1)..] : key] = value;
            }
        }

        return result;
    }

    /// <summary>
    /// PgBouncer's SHOW STATS: "sNNNNNNNNNNNNNNNNNNNNNNNN", per database the totals, then the averages since the
    /// stats_period snapshot before last (per second; times per transaction, query or assignment, in microseconds).
    /// </summary>
    private void ShowStats()
    {
        var rows = new List<string?[]>();
        foreach ((string database, PoolTotals totals, PoolTotals averages) in DatabaseStats())
        {
            rows.Add([database, .. TotalsColumns(totals), .. TotalsColumns(averages)]);
        }

        Rows([("database", Text), ("total_server_assignment_count", Numeric), ("total_xact_count", Numeric), ("total_query_count", Numeric),
            ("total_received", Numeric), ("total_sent", Numeric), ("total_xact_time", Numeric), ("total_query_time", Numeric),
            ("total_wait_time", Numeric), ("total_client_parse_count", Numeric), ("total_server_parse_count", Numeric),
            ("total_bind_count", Numeric), ("total_client_login_count", Numeric), ("avg_server_assignment_count", Numeric),
            ("avg_xact_count", Numeric), ("avg_query_count", Numeric), ("avg_recv", Numeric), ("avg_sent", Numeric),
            ("avg_xact_time", Numeric), ("avg_query_time", Numeric), ("avg_wait_time", Numeric), ("avg_client_parse_count", Numeric),
            ("avg_server_parse_count", Numeric), ("avg_bind_count", Numeric), ("avg_client_login_count", Numeric)], rows);
    }

    /// <summary>PgBouncer's SHOW STATS_AVERAGES: "sNNNNNNNNNNNN", its column names (some without the avg_ prefix) kept.</summary>
    private void ShowStatsAverages()
    {
        var rows = new List<string?[]>();
        foreach ((string database, _, PoolTotals averages) in DatabaseStats())
        {
            rows.Add([database, .. TotalsColumns(averages)]);
        }

        Rows([("database", Text), ("server_assignment_count", Numeric), ("xact_count", Numeric), ("query_count", Numeric),
            ("bytes_received", Numeric), ("bytes_sent", Numeric), ("xact_time", Numeric), ("query_time", Numeric), ("wait_time", Numeric),
            ("avg_client_parse_count", Numeric), ("avg_server_parse_count", Numeric), ("avg_bind_count", Numeric),
            ("avg_client_login_count", Numeric)], rows);
    }

    /// <summary>PgBouncer's SHOW TOTALS: "sN", every pool summed, totals then averages, one per row.</summary>
    private void ShowTotals()
    {
        (PoolTotals totals, PoolTotals averages) = Summed(_services.Pools.Pools, WindowMicros());
        string[] names = ["server_assignment_count", "xact_count", "query_count", "received", "sent", "xact_time", "query_time", "wait_time",
            "client_parse_count", "server_parse_count", "bind_count", "client_login_count"];
        string[] t = TotalsColumns(totals);
        string[] a = TotalsColumns(averages);
        var rows = new List<string?[]>();
        for (int i = 0; i < names.Length; i++)
        {
            rows.Add(["total_" + names[i], t[i]]);
        }

        for (int i = 0; i < names.Length; i++)
        {
            rows.Add(["avg_" + names[i], a[i]]);
        }

        Rows([("name", Text), ("value", Numeric)], rows);
    }

    /// <summary>Per database (its pools summed): the totals now and the averages over the stats window.</summary>
    private IEnumerable<(string Database, PoolTotals Totals, PoolTotals Averages)> DatabaseStats()
    {
        long window = WindowMicros();
        foreach (IGrouping<string, Pool> db in SortedPools().GroupBy(p => p.Key.Database, StringComparer.Ordinal))
        {
            (PoolTotals totals, PoolTotals averages) = Summed(db, window);
            yield return (db.Key, totals, averages);
        }
    }

    /// <summary>The pools' totals summed, and PgBouncer's averages over the stats window (<paramref name="window"/> µs).</summary>
    private (PoolTotals Totals, PoolTotals Averages) Summed(IEnumerable<Pool> pools, long window)
    {
        PoolTotals totals = default;
        PoolTotals older = default;
        foreach (Pool pool in pools)
        {
            totals += pool.Stats.Read(_services.Time);
            older += pool.Stats.Older;
        }

        return (totals, totals.AveragesSince(older, window));
    }

    private long WindowMicros() => (long)_services.Time.GetElapsedTime(_services.Pools.StatsWindowStart).TotalMicroseconds;

    private static string[] TotalsColumns(PoolTotals t) =>
    [
        I(t.ServerAssignments), I(t.Transactions), I(t.Queries), I(t.Received), I(t.Sent), I(t.TransactionMicros), I(t.QueryMicros),
        I(t.WaitMicros), I(t.ClientParses), I(t.ServerParses), I(t.Binds), I(t.Logins),
    ];

    private static readonly (string Name, int TypeOid)[] s_socketColumns =
    [
        ("type", Text), ("user", Text), ("database", Text), ("replication", Text), ("state", Text), ("addr", Text), ("port", Int4),
        ("local_addr", Text), ("local_port", Int4), ("connect_time", Text), ("request_time", Text), ("wait", Int4), ("wait_us", Int4),
        ("close_needed", Int4), ("ptr", Text), ("link", Text), ("remote_pid", Int4), ("tls", Text), ("application_name", Text),
        ("prepared_statements", Int4), ("id", Int4), ("pinned", Text),
    ];

    /// <summary>
    /// PgBouncer's SHOW CLIENTS: "ssssssisiTTiiississii", one row per logged-in client (the console's own clients are
    /// not listed). ptr is the connection id the log uses (c42), link the linked server's (s7); id is ptr's number.
    /// PgProxy adds pinned: the session state that keeps the client on its server in transaction mode ("" for none).
    /// </summary>
    private void ShowClients()
    {
        var rows = new List<string?[]>();
        foreach (ClientSession session in Sessions())
        {
            MessageRelay? relay = session.Relay;
            ClientState state = relay?.State ?? ClientState.Idle;
            BackendConnection? backend = relay?.Backend;
            TimeSpan wait = state == ClientState.Waiting && relay is not null ? _services.Time.GetElapsedTime(relay.LastClientActivity) : TimeSpan.Zero;
            (string? addr, int port) = Address(session.RemoteEndPoint);
            (string? localAddr, int localPort) = Address(session.LocalEndPoint);
            string applicationName = relay?.View?.Told.GetValueOrDefault("application_name") ?? "";
            rows.Add([
                "C", session.User, session.Database, "none",
                state switch { ClientState.Waiting => "waiting", _ when backend is not null => "active", _ => "idle" },
                addr, I(port), localAddr, I(localPort), Time(session.ConnectedAt), Time(relay?.LastClientActivity ?? session.ConnectedAt),
                I((long)wait.TotalSeconds), I((long)(wait.TotalMicroseconds % 1_000_000)), I(session.CloseNeeded ? 1 : 0),
                session.ConnectionId, backend is null ? "" : ServerPtr(backend), "0", session.Tls, applicationName,
                I(relay?.PreparedStatementCount ?? 0), I(session.Id), PinKindNames.Describe(relay?.Pinned ?? PinKinds.None),
            ]);
        }

        Rows(s_socketColumns, rows);
    }

    /// <summary>
    /// PgBouncer's SHOW SERVERS: the same columns, one row per connected server (active, idle, used, tested); link is
    /// the linked client's connection id, remote_pid the server's process id, close_needed set after RECONNECT.
    /// </summary>
    private void ShowServers()
    {
        var links = new Dictionary<BackendConnection, (string Client, PinKinds Pinned)>();
        foreach (ClientSession session in Sessions())
        {
            if (session.Relay is { Backend: { } linked } relay)
            {
                links[linked] = (session.ConnectionId, relay.Pinned);
            }
        }

        var rows = new List<string?[]>();
        foreach (Pool pool in SortedPools())
        {
            foreach (BackendConnection backend in pool.Backends.OrderBy(b => b.Id))
            {
                string state = backend.State switch
                {
                    BackendState.Active => "active",
                    BackendState.Idle => "idle",
                    BackendState.Used => "used",
                    BackendState.Testing => "tested",
                    BackendState.Connecting => "new",
                    _ => "closing",
                };
                (string? addr, int port) = Address(backend.RemoteEndPoint);
                (string? localAddr, int localPort) = Address(backend.LocalEndPoint);
                rows.Add([
                    "S", pool.Target.Credentials.User, pool.Key.Database, "none", state, addr, I(port), localAddr, I(localPort),
                    Time(backend.CreatedAt), Time(backend.LastUsedAt), "0", "0", I(pool.CloseNeeded(backend) ? 1 : 0), ServerPtr(backend),
                    links.GetValueOrDefault(backend).Client ?? "", I(backend.ProcessId), backend.Tls, ServerApplicationName(backend),
                    I(backend.Session.Statements.Count), I(backend.Id), PinKindNames.Describe(links.GetValueOrDefault(backend).Pinned),
                ]);
            }
        }

        Rows(s_socketColumns, rows);
    }

    private static string ServerPtr(BackendConnection backend) => "s" + I(backend.Id);

    /// <summary>The server's application_name as it last reported it (read off its holder's thread: a moment stale at worst).</summary>
    private static string ServerApplicationName(BackendConnection backend)
    {
        try
        {
            return backend.Parameters.GetValueOrDefault("application_name") ?? "";
        }
        catch (InvalidOperationException)
        {
            return ""; // changed under the read
        }
    }

    /// <summary>Logged-in clients (each has a cancel key), in connection order.</summary>
    private IEnumerable<ClientSession> Sessions() =>
        _services.CancelKeys.Targets.OfType<ClientSession>().Where(s => s.Pool is not null).OrderBy(s => s.Id);

    private static (string? Address, int Port) Address(EndPoint? endPoint) => endPoint switch
    {
        IPEndPoint ip => ((ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address).ToString(), ip.Port),
        null => (null, 0),
        _ => (endPoint.ToString(), 0),
    };

    /// <summary>A pool-clock timestamp as PgBouncer prints times ("2026-12-05 05:10:39 UTC"; PgProxy keeps UTC).</summary>
    private string Time(long timestamp)
    {
        DateTimeOffset at = _services.Time.GetUtcNow() - _services.Time.GetElapsedTime(timestamp);
        return at.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";
    }
}
