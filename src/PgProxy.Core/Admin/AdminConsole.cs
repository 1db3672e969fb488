using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
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
internal sealed partial class AdminConsole
{
    /// <summary>The console's database names.</summary>
    public static bool IsConsoleDatabase(string database) => database is "pgproxy" or "pgbouncer";

    private const int MaxQueryBytes = 64 * 1024;
    private const string ShowTag = "SHOW";
    private const int Text = BackendMessages.TextOid;
    private const int Int4 = BackendMessages.Int4Oid;
    private const int Numeric = 1700;
    private const string KilledMessage = "terminating connection due to administrator command";
    private static readonly TimeSpan PollPeriod = TimeSpan.FromMilliseconds(100);

    private static readonly string s_version = "PgProxy " +
        (typeof(AdminConsole).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0");

    private readonly ProxyServices _services;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly bool _admin;
    private readonly string _user;
    private readonly ILogger _logger;
    private readonly PgMessageBuilder _out = new();
    private Action? _afterReply;

    /// <param name="services">The proxy's services.</param>
    /// <param name="input">From the console's client.</param>
    /// <param name="output">To it.</param>
    /// <param name="user">The console's user.</param>
    public AdminConsole(ProxyServices services, PipeReader input, PipeWriter output, string user)
    {
        _services = services;
        _input = input;
        _output = output;
        _user = user;
        _admin = IsAdmin(services.Config.Admin, user);
        _logger = services.LoggerFactory.CreateLogger<AdminConsole>();
    }

    /// <summary>Whether <paramref name="user"/> may use the console: an admin or a stats user.</summary>
    public static bool MayUse(AdminSection admin, string user) =>
        IsAdmin(admin, user) || admin.StatsUsers.Contains(user, StringComparer.Ordinal);

    /// <summary>Whether <paramref name="user"/> may run every command (not only SHOW).</summary>
    public static bool IsAdmin(AdminSection admin, string user) => admin.AdminUsers.Contains(user, StringComparer.Ordinal);

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
            await ExecuteAsync(query).ConfigureAwait(false);
            BackendMessages.ReadyForQuery(_out, TransactionStatus.Idle);
            await PgMessageIO.WriteAsync(_output, _out, CancellationToken.None).ConfigureAwait(false);
            if (_afterReply is { } after)
            {
                _afterReply = null;
                after();
            }
        }
    }

    /// <summary>
    /// One command: a word, then at most one argument (a word, or a "quoted" name), as PgBouncer's grammar has it; SET
    /// has its own. The command word is case-insensitive, a database name is not.
    /// </summary>
    private async Task ExecuteAsync(string query)
    {
        string text = query.Trim();
        while (text.EndsWith(';'))
        {
            text = text[..^1].TrimEnd();
        }

        int space = text.IndexOfAny([' ', '\t', '\n', '\r']);
        string verb = (space < 0 ? text : text[..space]).ToLowerInvariant();
        string rest = space < 0 ? "" : text[space..].Trim();
        if (verb == "set")
        {
            Set(query, rest);
            return;
        }

        if (!TryParseArgument(rest, out string? arg))
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (verb == "show")
        {
            Show(query, arg);
            return;
        }

        if (verb is not ("pause" or "resume" or "reconnect" or "kill" or "kill_client" or "disable" or "enable" or "wait_close" or "shutdown" or "reload"
            or "suspend"))
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (!_admin)
        {
            Error("admin access needed", SqlState.InsufficientPrivilege);
            return;
        }

        LogCommand(_logger, _user, query);
        switch (verb)
        {
            case "pause": await PauseAsync(arg).ConfigureAwait(false); return;
            case "resume": Resume(arg); return;
            case "reconnect": Reconnect(arg); return;
            case "kill": Kill(arg); return;
            case "kill_client": KillClient(arg); return;
            case "disable": SetDisabled(arg, true, "DISABLE"); return;
            case "enable": SetDisabled(arg, false, "ENABLE"); return;
            case "wait_close": await WaitCloseAsync(arg).ConfigureAwait(false); return;
            case "shutdown": Shutdown(query, arg); return;
            case "reload": Reload(arg, query); return;
            default:
                Error("SUSPEND is not supported: PgProxy has no online restart; SHUTDOWN WAIT_FOR_CLIENTS drains it instead",
                    SqlState.FeatureNotSupported);
                return;
        }
    }

    /// <summary>Empty (no argument), one word, or a double-quoted name ("" inside for a quote).</summary>
    private static bool TryParseArgument(string rest, out string? arg)
    {
        arg = null;
        if (rest.Length == 0)
        {
            return true;
        }

        if (rest[0] == '"')
        {
            if (rest.Length < 2 || rest[^1] != '"')
            {
                return false;
            }

            string inner = rest[1..^1];
            if (inner.Replace("\"\"", "", StringComparison.Ordinal).Contains('"', StringComparison.Ordinal))
            {
                return false;
            }

            arg = inner.Replace("\"\"", "\"", StringComparison.Ordinal);
            return arg.Length > 0;
        }

        if (rest.Any(char.IsWhiteSpace) || rest.Contains('"', StringComparison.Ordinal))
        {
            return false;
        }

        arg = rest;
        return true;
    }

    private void Show(string query, string? what)
    {
        switch (what?.ToLowerInvariant())
        {
            case "help": ShowHelp(); return;
            case "version": Rows([("version", Text)], [[s_version]]); return;
            case "pools": ShowPools(); return;
            case "clients": ShowClients(); return;
            case "servers": ShowServers(); return;
            case "databases": ShowDatabases(); return;
            case "users": ShowUsers(); return;
            case "lists": ShowLists(); return;
            case "state": ShowState(); return;
            case "config": ShowConfig(); return;
            case "stats": ShowStats(); return;
            case "stats_totals": ShowStatsTotals(); return;
            case "stats_averages": ShowStatsAverages(); return;
            case "totals": ShowTotals(); return;
        }

        // PgBouncer's wording and code (admin_error: ERROR 08P01), so its scripts recognise it.
        Error($"invalid command '{query}', use SHOW HELP;");
    }

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
    /// [proxy] are named section.key. changeable: whether SET can change it (the [proxy] keys but listen).
    /// </summary>
    private void ShowConfig()
    {
        Dictionary<string, string> values = Flatten(_services.Config);
        Dictionary<string, string> defaults = Flatten(new ProxyConfig());
        var rows = new List<string?[]>();
        foreach ((string key, string value) in values)
        {
            // SET changes a [proxy] key live (all but listen); RELOAD changes the rest but for listen addresses and [log].
            rows.Add([key, value, defaults.GetValueOrDefault(key, ""), !key.Contains('.', StringComparison.Ordinal) && key != "listen" ? "yes" : "no"]);
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
        ("prepared_statements", Int4), ("id", Int4),
    ];

    /// <summary>
    /// PgBouncer's SHOW CLIENTS: "ssssssisiTTiiississii", one row per logged-in client (the console's own clients are
    /// not listed). ptr is the connection id the log uses (c42), link the linked server's (s7); id is ptr's number.
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
                I(relay?.PreparedStatementCount ?? 0), I(session.Id),
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
        var links = new Dictionary<BackendConnection, string>();
        foreach (ClientSession session in Sessions())
        {
            if (session.Relay?.Backend is { } linked)
            {
                links[linked] = session.ConnectionId;
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
                    links.GetValueOrDefault(backend, ""), I(backend.ProcessId), "", ServerApplicationName(backend),
                    I(backend.Session.Statements.Count), I(backend.Id),
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

    // ---- commands (admin users only) -------------------------------------------------------------------------

    /// <summary>
    /// PAUSE [db]: servers are handed out no more (clients wait, up to query_wait_timeout) and each is closed as its
    /// client gives it back; the command returns once none is left, as PgBouncer's does.
    /// </summary>
    private async Task PauseAsync(string? database)
    {
        PoolManager pools = _services.Pools;
        if (pools.PausedAll)
        {
            Error("already suspended/paused");
            return;
        }

        if (database is not null && !CheckDatabase(database, "pause"))
        {
            return;
        }

        pools.Pause(database);
        await WaitUntilAsync(() => pools.PoolsOf(database).All(p => p.Counts.Total == 0)).ConfigureAwait(false);
        BackendMessages.CommandComplete(_out, "PAUSE");
    }

    /// <summary>RESUME [db]: undoes PAUSE and KILL (for everything, or one database).</summary>
    private void Resume(string? database)
    {
        PoolManager pools = _services.Pools;
        if (database is null)
        {
            if (_services.RefusesLogins)
            {
                Error("pooler is shutting down");
                return;
            }

            if (!pools.PausedAll && !pools.PoolsOf(null).Any(p => p.Paused))
            {
                Error("pooler is not paused/suspended");
                return;
            }
        }
        else if (!DatabaseKnown(database))
        {
            Error($"no such database: {database}");
            return;
        }
        else if (!pools.IsPaused(database))
        {
            Error($"database {database} is not paused");
            return;
        }

        pools.Resume(database);
        BackendMessages.CommandComplete(_out, "RESUME");
    }

    /// <summary>RECONNECT [db]: every server open now is closed when it is next given back; new ones open as needed.</summary>
    private void Reconnect(string? database)
    {
        if (database is not null && !CheckDatabase(database, "reconnect"))
        {
            return;
        }

        foreach (Pool pool in _services.Pools.PoolsOf(database))
        {
            pool.Reconnect();
        }

        BackendMessages.CommandComplete(_out, "RECONNECT");
    }

    /// <summary>WAIT_CLOSE [db]: returns once no server from before the last RECONNECT is left.</summary>
    private async Task WaitCloseAsync(string? database)
    {
        if (database is not null && !CheckDatabase(database, "wait in"))
        {
            return;
        }

        await WaitUntilAsync(() => _services.Pools.PoolsOf(database).All(p => p.CloseNeededCount == 0)).ConfigureAwait(false);
        BackendMessages.CommandComplete(_out, "WAIT_CLOSE");
    }

    /// <summary>KILL [db]: every client of the database (or of all) is closed with FATAL 57P01 now, its servers too; new clients wait for RESUME.</summary>
    private void Kill(string? database)
    {
        if (_services.Pools.PausedAll)
        {
            Error("already suspended/paused");
            return;
        }

        if (database is not null && !CheckDatabase(database, "kill"))
        {
            return;
        }

        _services.Pools.Kill(database, new ProxyException(SqlState.AdminShutdown, KilledMessage));
        foreach (ClientSession session in Sessions())
        {
            if (database is null || session.Database == database)
            {
                session.Kill(KilledMessage);
            }
        }

        BackendMessages.CommandComplete(_out, "KILL");
    }

    /// <summary>KILL_CLIENT id: that client is closed with FATAL 57P01 now (what it runs is canceled first).</summary>
    private void KillClient(string? arg)
    {
        if (!long.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out long id))
        {
            Error("invalid client pointer supplied");
            return;
        }

        if (Sessions().FirstOrDefault(s => s.Id == id) is not { } session)
        {
            Error("client not found");
            return;
        }

        session.Kill(KilledMessage);
        BackendMessages.CommandComplete(_out, "KILL_CLIENT");
    }

    /// <summary>DISABLE db refuses new logins to it (55000, as PostgreSQL refuses a database that does not allow connections); ENABLE undoes it.</summary>
    private void SetDisabled(string? database, bool disabled, string tag)
    {
        if (database is null)
        {
            Error("a database is required");
            return;
        }

        if (!CheckDatabase(database, tag.ToLowerInvariant()))
        {
            return;
        }

        _services.Pools.SetDisabled(database, disabled);
        BackendMessages.CommandComplete(_out, tag);
    }

    /// <summary>
    /// SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]: answered first, then the process stops: at once; once every
    /// server is released (paused, no new clients); or by the SIGTERM drain (readiness fails, shutdown_delay, clients
    /// closed at their transaction boundary, shutdown_timeout).
    /// </summary>
    private void Shutdown(string query, string? arg)
    {
        ShutdownMode? mode = arg?.ToLowerInvariant() switch
        {
            null => ShutdownMode.Immediate,
            "wait_for_servers" => ShutdownMode.WaitForServers,
            "wait_for_clients" => ShutdownMode.WaitForClients,
            _ => null,
        };
        if (mode is not { } how)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (_services.StopHost is null)
        {
            Error("SHUTDOWN is not available: this proxy runs inside another program", SqlState.FeatureNotSupported);
            return;
        }

        _afterReply = () => _services.RequestShutdown(how);
        BackendMessages.CommandComplete(_out, "SHUTDOWN");
    }

    /// <summary>RELOAD: re-reads the config file and the auth file (as SIGHUP does); an invalid config is refused and the old one kept.</summary>
    private void Reload(string? arg, string query)
    {
        if (arg is not null)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (_services.Reload is not { } reload)
        {
            Error("RELOAD is not available: this proxy was not started from a config file", SqlState.FeatureNotSupported);
            return;
        }

        if (reload() is { } failure)
        {
            // PgBouncer's code and words for a failed reload.
            Error($"RELOAD failed, see logs for additional details: {failure}", "F0000");
            return;
        }

        BackendMessages.CommandComplete(_out, "RELOAD");
    }

    /// <summary>
    /// SET key = value (or TO): one [proxy] key changed live, validated as the config file is, applied as a reload
    /// applies (pool sizes and timeouts from now on). The value is a number, true/false, a bare word or a 'quoted'
    /// string (durations with their unit: '30s'). The next RELOAD reads the file again, as PgBouncer's does.
    /// </summary>
    private void Set(string query, string rest)
    {
        Match m = SetPattern().Match(rest);
        if (!m.Success)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (!_admin)
        {
            Error("admin access needed", SqlState.InsufficientPrivilege);
            return;
        }

        string key = m.Groups["key"].Value.ToLowerInvariant();
        string raw = m.Groups["value"].Value.Trim();
        string value = raw.Length >= 2 && raw[0] == '\'' && raw[^1] == '\''
            ? raw[1..^1].Replace("''", "'", StringComparison.Ordinal)
            : raw;
        bool literal = raw[0] != '\'' && (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _) || value is "true" or "false");
        string toml = literal ? value : "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        ConfigResult result = ConfigLoader.Set(_services.Config, key, toml);
        if (literal && result.Config is null)
        {
            result = ConfigLoader.Set(_services.Config, key, "\"" + value + "\""); // a number for a duration key: its error names the unit
        }
        if (result.Config is not { } config)
        {
            Error(string.Join("; ", result.Errors), SqlState.InvalidParameterValue);
            return;
        }

        _services.Pools.Apply(config, _services.Users);
        LogCommand(_logger, _user, query);
        BackendMessages.CommandComplete(_out, "SET");
    }

    [GeneratedRegex(@"^(?<key>[A-Za-z_][A-Za-z0-9_]*)\s*(=|\s[Tt][Oo]\s)\s*(?<value>'(?:[^']|'')*'|[^\s']+)\s*$")]
    private static partial Regex SetPattern();

    /// <summary>Waits, applying the pause again each time (a server opened meanwhile closes too), until <paramref name="done"/>.</summary>
    private async Task WaitUntilAsync(Func<bool> done)
    {
        while (!done())
        {
            _services.Pools.ApplyPause();
            try
            {
                await Task.Delay(PollPeriod, _services.DrainToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw new ProxyException(SqlState.AdminShutdown, ClientSession.ShuttingDownMessage);
            }
        }
    }

    /// <summary>A database a command may name: one the config lists, or one a pool serves (a "*" entry's); never the console's.</summary>
    private bool CheckDatabase(string database, string verb)
    {
        if (IsConsoleDatabase(database))
        {
            Error($"cannot {verb} admin db: {database}");
            return false;
        }

        if (!DatabaseKnown(database))
        {
            Error($"no such database: {database}");
            return false;
        }

        return true;
    }

    private bool DatabaseKnown(string database) =>
        (database != "*" && _services.Config.Databases.ContainsKey(database)) || _services.Pools.Pools.Any(p => p.Key.Database == database);

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

    /// <summary>PgBouncer's admin_error: ERROR 08P01 unless another code says it better.</summary>
    private void Error(string message, string sqlState = SqlState.ProtocolViolation) => ErrorResponse.Error(sqlState, message).Write(_out);

    private static string I(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Mode(PoolMode mode) => ConfigPrinter.Mode(mode);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.AdminCommand, Level = LogLevel.Information, Message = "Admin console: {User} ran {Command}")]
    private static partial void LogCommand(ILogger logger, string user, string command);
}
