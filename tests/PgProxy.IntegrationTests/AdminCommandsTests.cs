using System.Diagnostics;
using System.Globalization;
using PgProxy.Core.Pooling;
using PgProxy.Hosting;

namespace PgProxy.IntegrationTests;

/// <summary>
/// The console's lists (SHOW CLIENTS, SERVERS, STATS, STATS_AVERAGES, TOTALS) and its commands (PAUSE, RESUME, KILL,
/// KILL_CLIENT, DISABLE, ENABLE, RECONNECT, WAIT_CLOSE, SET, RELOAD, SHUTDOWN) against real clients and servers.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class AdminCommandsTests(PostgresFixture pg)
{
    // bob may run everything, postgres only SHOW; the proxy trusts clients (the console's password checks are AdminConsoleTests').
    private const string Admin = "[admin]\nadmin_users = [\"bob\"]\nstats_users = [\"postgres\"]\n";
    private const string Transaction = "pool_mode = \"transaction\"";

    private static readonly string SocketHeader = "type|user|database|replication|state|addr|port|local_addr|local_port|connect_time|request_time|" +
                                                  "wait|wait_us|close_needed|ptr|link|remote_pid|tls|application_name|prepared_statements|id|pinned";

    [Fact(Timeout = 60_000)]
    public async Task ShowClientsAndServers_ListTheLinkedPair_WithPgBouncersColumns()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction, authType: "trust", extra: Admin);
        await using NpgsqlConnection app = await proxy.OpenAsync(extra: "Application Name=admin-test", ct: ct);
        await using NpgsqlTransaction tx = await app.BeginTransactionAsync(ct);
        int pid;
        await using (var who = new NpgsqlCommand("SELECT pg_backend_pid()", app, tx))
        {
            pid = (int)(await who.ExecuteScalarAsync(ct))!;
        }

        string[] clients = await ConsoleAsync(proxy, "postgres", "SHOW CLIENTS", ct);
        Assert.Equal(SocketHeader, clients[0]);
        string[] client = clients.Single(l => l.Contains("|admin-test|", StringComparison.Ordinal)).Split('|');
        Assert.Equal(["C", PostgresFixture.Alice, PostgresFixture.Database, "none", "active", "127.0.0.1"], client[..6]);
        Assert.Equal(proxy.Port.ToString(CultureInfo.InvariantCulture), client[8]); // local_port
        Assert.Matches(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", client[9]);
        Assert.Equal("c" + client[20], client[14]); // ptr is the log's connection id, id its number

        string[] servers = await ConsoleAsync(proxy, "postgres", "SHOW SERVERS", ct);
        Assert.Equal(SocketHeader, servers[0]);
        string[] server = servers.Skip(1).Select(l => l.Split('|')).Single(s => s[14] == client[15]); // the client's link is this server
        Assert.Equal(["S", PostgresFixture.Alice, PostgresFixture.Database, "none", "active"], server[..5]);
        Assert.Equal(pg.Port.ToString(CultureInfo.InvariantCulture), server[6]);
        Assert.Equal(client[14], server[15]); // and its link is the client
        Assert.Equal(pid.ToString(CultureInfo.InvariantCulture), server[16]); // remote_pid: the server's own pid

        await tx.CommitAsync(ct);
        string[] after = (await ConsoleAsync(proxy, "postgres", "SHOW CLIENTS", ct)).Single(l => l.Contains("|admin-test|", StringComparison.Ordinal)).Split('|');
        Assert.Equal("idle", after[4]);
        Assert.Equal("", after[15]);
        Assert.Equal("", after[21]); // pinned

        // A session advisory lock pins the client to its server: both rows say why.
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock(31)", app))
        {
            await take.ExecuteNonQueryAsync(ct);
        }

        string[] pinned = [];
        await Await.UntilAsync(async () =>
        {
            pinned = (await ConsoleAsync(proxy, "postgres", "SHOW CLIENTS", ct)).Single(l => l.Contains("|admin-test|", StringComparison.Ordinal)).Split('|');
            return pinned[21] == "advisory_lock";
        }, ct, seconds: 10);
        Assert.Equal("active", pinned[4]);
        Assert.Contains(await ConsoleAsync(proxy, "postgres", "SHOW SERVERS", ct),
            l => l.Split('|') is var s && s[15] == pinned[14] && s[21] == "advisory_lock");
    }

    [Fact(Timeout = 60_000)]
    public async Task ShowStats_HasPgBouncersColumns_AndCountsLoginsParsesAndBinds()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        // One server: a release still in flight when the next Bind arrives would otherwise let a second server be
        // opened (and told the statement), which happened once in a full run.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction + "\ndefault_pool_size = 1\nstats_period = \"1s\"", authType: "trust", extra: Admin);
        await using (NpgsqlConnection app = await proxy.OpenAsync(ct: ct))
        await using (var cmd = new NpgsqlCommand("SELECT $1::int", app))
        {
            cmd.Parameters.AddWithValue(1);
            await cmd.PrepareAsync(ct); // a named Parse: the proxy maps it (client_parse_count) and prepares it on a server
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(1, await cmd.ExecuteScalarAsync(ct)); // a Bind of the mapped statement each
            }
        }

        string[] stats = await ConsoleAsync(proxy, "postgres", "SHOW STATS", ct);
        Assert.Equal("database|total_server_assignment_count|total_xact_count|total_query_count|total_received|total_sent|total_xact_time|" +
                     "total_query_time|total_wait_time|total_client_parse_count|total_server_parse_count|total_bind_count|" +
                     "total_client_login_count|avg_server_assignment_count|avg_xact_count|avg_query_count|avg_recv|avg_sent|avg_xact_time|" +
                     "avg_query_time|avg_wait_time|avg_client_parse_count|avg_server_parse_count|avg_bind_count|avg_client_login_count", stats[0]);
        long[] row = Numbers(stats.Single(l => l.StartsWith(PostgresFixture.Database + "|", StringComparison.Ordinal)));
        Assert.True(row[1] >= 5, $"xact_count {row[1]}");
        Assert.Equal(1, row[8]); // client_parse_count
        Assert.Equal(1, row[9]); // server_parse_count: one server had to be told
        Assert.Equal(5, row[10]); // bind_count
        Assert.Equal(1, row[11]); // client_login_count
        Assert.True(row[13] > 0, $"avg_xact_count {row[13]}"); // the window runs from the proxy's start: the transactions are in it

        string[] averages = await ConsoleAsync(proxy, "postgres", "SHOW STATS_AVERAGES", ct);
        Assert.Equal("database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|" +
                     "avg_client_parse_count|avg_server_parse_count|avg_bind_count|avg_client_login_count", averages[0]);

        string[] totals = await ConsoleAsync(proxy, "postgres", "SHOW TOTALS", ct);
        Assert.Equal("name|value", totals[0]);
        string[] names = ["server_assignment_count", "xact_count", "query_count", "received", "sent", "xact_time", "query_time", "wait_time",
            "client_parse_count", "server_parse_count", "bind_count", "client_login_count"];
        Assert.Equal([.. names.Select(n => "total_" + n), .. names.Select(n => "avg_" + n)], totals.Skip(1).Select(l => l.Split('|')[0]));
        Assert.Contains("total_bind_count|5", totals);

        // After two stats_period ticks with no traffic, the averages' window holds none: they fall to 0.
        await Await.UntilAsync(async () => Numbers((await ConsoleAsync(proxy, "postgres", "SHOW STATS_AVERAGES", ct))
            .Single(l => l.StartsWith(PostgresFixture.Database + "|", StringComparison.Ordinal)))[1] == 0, ct);
    }

    [Fact(Timeout = 60_000)]
    public async Task Pause_WaitsForTheRunningTransaction_AndHoldsNewOnes_UntilResume()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction, authType: "trust", extra: Admin);
        await using NpgsqlConnection running = await proxy.OpenAsync(ct: ct);
        await using NpgsqlConnection later = await proxy.OpenAsync(ct: ct); // logged in; needs a server for its next query
        var sleep = new NpgsqlCommand("BEGIN; SELECT pg_sleep(1.5); COMMIT", running);
        Task transaction = sleep.ExecuteNonQueryAsync(ct);
        Pool pool = proxy.Services.Pools.Pools.Single();
        await Await.UntilAsync(() => Task.FromResult(pool.Counts.Active == 1), ct);

        Task<ProcessRunner.Result> pause = RunConsoleAsync(proxy, "bob", "PAUSE", ct);
        await Task.Delay(400, ct);
        Assert.False(pause.IsCompleted, "PAUSE returned while a transaction was running");
        ProcessRunner.Result paused = await pause;
        Assert.True(paused.ExitCode == 0, paused.All);
        Assert.True(transaction.IsCompletedSuccessfully, "PAUSE returned before the running transaction committed");
        Assert.Equal(0, pool.Counts.Total); // and closed its server

        await using var query = new NpgsqlCommand("SELECT 42", later);
        Task<object?> held = query.ExecuteScalarAsync(ct);
        await Task.Delay(500, ct);
        Assert.False(held.IsCompleted, "a query ran while the pool was paused");
        Assert.Contains("paused|yes", await ConsoleAsync(proxy, "postgres", "SHOW STATE", ct));

        ProcessRunner.Result denied = await RunConsoleAsync(proxy, "postgres", "RESUME", ct);
        Assert.Contains("ERROR:  admin access needed", denied.StdErr, StringComparison.Ordinal);
        Assert.False(held.IsCompleted);

        Assert.Equal("RESUME", (await ConsoleAsync(proxy, "bob", "RESUME", ct))[0]);
        Assert.Equal(42, await held.WaitAsync(TimeSpan.FromSeconds(10), ct));
        Assert.Contains("ERROR:  pooler is not paused/suspended", (await RunConsoleAsync(proxy, "bob", "RESUME", ct)).StdErr, StringComparison.Ordinal);
        sleep.Dispose();
    }

    [Fact(Timeout = 60_000)]
    public async Task KillClient_EndsThatClientAndItsQuery_AndKillHoldsTheDatabaseUntilResume()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction, authType: "trust", extra: Admin);
        await using NpgsqlConnection victim = await proxy.OpenAsync(extra: "Application Name=victim", ct: ct);
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(30)", victim);
        Task<object?> running = sleep.ExecuteScalarAsync(ct);
        await Await.UntilAsync(async () => await ServerSleepersAsync(ct) == 1, ct);

        string id = (await ConsoleAsync(proxy, "postgres", "SHOW CLIENTS", ct)).Single(l => l.Contains("|victim|", StringComparison.Ordinal)).Split('|')[20];
        Assert.Equal("KILL_CLIENT", (await ConsoleAsync(proxy, "bob", "KILL_CLIENT " + id, ct))[0]);
        PostgresException killed = await Assert.ThrowsAsync<PostgresException>(() => running.WaitAsync(TimeSpan.FromSeconds(10), ct));
        Assert.Equal("57P01", killed.SqlState);
        Assert.Equal("terminating connection due to administrator command", killed.MessageText);
        await Await.UntilAsync(async () => await ServerSleepersAsync(ct) == 0, ct); // its query was canceled on the server

        Assert.Contains("ERROR:  client not found", (await RunConsoleAsync(proxy, "bob", "KILL_CLIENT 999999", ct)).StdErr, StringComparison.Ordinal);
        Assert.Contains("ERROR:  invalid client pointer supplied", (await RunConsoleAsync(proxy, "bob", "KILL_CLIENT abc", ct)).StdErr, StringComparison.Ordinal);

        // KILL appdb: its clients are closed now; a new one logs in but waits for a server until RESUME.
        await using NpgsqlConnection idle = await proxy.OpenAsync(ct: ct);
        Assert.Equal("KILL", (await ConsoleAsync(proxy, "bob", "KILL " + PostgresFixture.Database, ct))[0]);
        Exception? closed = await UseFailsAsync(idle, ct);
        Assert.True(closed is PostgresException { SqlState: "57P01" } or NpgsqlException, closed?.ToString() ?? "the killed client still works");

        await using NpgsqlConnection next = await proxy.OpenAsync(ct: ct);
        await using var query = new NpgsqlCommand("SELECT 7", next);
        Task<object?> held = query.ExecuteScalarAsync(ct);
        await Task.Delay(500, ct);
        Assert.False(held.IsCompleted, "a query ran on a killed database before RESUME");
        Assert.Equal("RESUME", (await ConsoleAsync(proxy, "bob", "RESUME " + PostgresFixture.Database, ct))[0]);
        Assert.Equal(7, await held.WaitAsync(TimeSpan.FromSeconds(10), ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task DisableRefusesLogins_With55000_UntilEnable_AndBadNamesAreErrors()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust", extra: Admin);
        Assert.Equal("DISABLE", (await ConsoleAsync(proxy, "bob", "DISABLE " + PostgresFixture.Database, ct))[0]);
        PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(ct: ct));
        Assert.Equal("55000", refused.SqlState);
        Assert.Equal($"database \"{PostgresFixture.Database}\" is not currently accepting connections", refused.MessageText);
        Assert.EndsWith("|0|1", (await ConsoleAsync(proxy, "postgres", "SHOW DATABASES", ct))
            .Single(l => l.StartsWith(PostgresFixture.Database + "|", StringComparison.Ordinal)), StringComparison.Ordinal); // paused 0, disabled 1

        Assert.Equal("ENABLE", (await ConsoleAsync(proxy, "bob", "ENABLE " + PostgresFixture.Database, ct))[0]);
        await using NpgsqlConnection ok = await proxy.OpenAsync(ct: ct);

        string errors = (await RunConsoleAsync(proxy, "bob", "DISABLE nosuch", ct)).StdErr + (await RunConsoleAsync(proxy, "bob", "DISABLE pgbouncer", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "bob", "DISABLE", ct)).StdErr;
        Assert.Contains("ERROR:  no such database: nosuch", errors, StringComparison.Ordinal);
        Assert.Contains("ERROR:  cannot disable admin db: pgbouncer", errors, StringComparison.Ordinal);
        Assert.Contains("ERROR:  a database is required", errors, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Reconnect_ReplacesTheServers_AndWaitCloseReturnsOnceTheBusyOneIsBack()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction + "\ndefault_pool_size = 1", authType: "trust", extra: Admin);
        await using NpgsqlConnection app = await proxy.OpenAsync(ct: ct);
        int first = await PidAsync(app, null, ct);
        Assert.Equal("RECONNECT", (await ConsoleAsync(proxy, "bob", "RECONNECT", ct))[0]);
        int second = await PidAsync(app, null, ct);
        Assert.NotEqual(first, second); // the idle server was closed at once

        await using NpgsqlTransaction tx = await app.BeginTransactionAsync(ct);
        Assert.Equal(second, await PidAsync(app, tx, ct));
        Assert.Equal("RECONNECT", (await ConsoleAsync(proxy, "bob", "RECONNECT " + PostgresFixture.Database, ct))[0]);
        string server = (await ConsoleAsync(proxy, "postgres", "SHOW SERVERS", ct))[1];
        Assert.Equal("1", server.Split('|')[13]); // close_needed
        Task<ProcessRunner.Result> waitClose = RunConsoleAsync(proxy, "bob", "WAIT_CLOSE", ct);
        await Task.Delay(400, ct);
        Assert.False(waitClose.IsCompleted, "WAIT_CLOSE returned while a server from before RECONNECT was in use");
        Assert.Equal(second, await PidAsync(app, tx, ct)); // the transaction keeps its server
        await tx.CommitAsync(ct);
        ProcessRunner.Result waited = await waitClose;
        Assert.True(waited.ExitCode == 0, waited.All);
        Assert.NotEqual(second, await PidAsync(app, null, ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task Set_ChangesAProxyKeyLive_AndRefusesWhatCannotBe()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction, authType: "trust", extra: Admin);
        await using (NpgsqlConnection app = await proxy.OpenAsync(ct: ct))
        {
            await PidAsync(app, null, ct);
        }

        Pool pool = proxy.Services.Pools.Pools.Single();
        Assert.Equal(20, pool.Settings.PoolSize);
        Assert.Equal(["SET"], await ConsoleAsync(proxy, "bob", "SET default_pool_size = 3", ct));
        Assert.Equal(["SET"], await ConsoleAsync(proxy, "bob", "set query_wait_timeout to '5s'", ct));
        Assert.Equal(3, pool.Settings.PoolSize);
        Assert.Equal(TimeSpan.FromSeconds(5), pool.Settings.Proxy.QueryWaitTimeout);
        string[] config = await ConsoleAsync(proxy, "postgres", "SHOW CONFIG", ct);
        Assert.Contains("default_pool_size|3|20|yes", config);
        Assert.Contains("query_wait_timeout|5s|120s|yes", config);
        Assert.Contains("listen|[\"127.0.0.1:0\"]|[\"127.0.0.1:6432\"]|no", config);

        string errors = (await RunConsoleAsync(proxy, "bob", "SET default_pool_size = 'many'", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "bob", "SET query_wait_timeout = 7", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "bob", "SET listen = '0.0.0.0:1'", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "bob", "SET io_threads = 1", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "bob", "SET nosuch = 1", ct)).StdErr +
                        (await RunConsoleAsync(proxy, "postgres", "SET default_pool_size = 4", ct)).StdErr;
        Assert.Contains("default_pool_size: expected an integer", errors, StringComparison.Ordinal);
        Assert.Contains("query_wait_timeout: expected a duration with a unit", errors, StringComparison.Ordinal);
        Assert.Contains("SET listen: listen changes only with a restart", errors, StringComparison.Ordinal);
        Assert.Contains("SET io_threads: io_threads changes only with a restart", errors, StringComparison.Ordinal);
        Assert.Contains("unknown key 'nosuch' in [proxy]", errors, StringComparison.Ordinal);
        Assert.Contains("ERROR:  admin access needed", errors, StringComparison.Ordinal);
        Assert.Equal(3, pool.Settings.PoolSize);
    }

    [Fact(Timeout = 60_000)]
    public async Task Reload_AppliesAValidFile_WithADiff_RefusesABrokenOne_AndClosesClientsOfARemovedDatabase()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"{pg.Host}\"\nport = {pg.Port}\n" +
                           $"[databases.other]\nhost = \"{pg.Host}\"\nport = {pg.Port}\ndbname = \"{PostgresFixture.Database}\"\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Transaction, authType: "trust", databases: databases, extra: Admin);
        await using NpgsqlConnection other = await proxy.OpenAsync(database: "other", ct: ct);
        await PidAsync(other, null, ct);
        await using NpgsqlConnection app = await proxy.OpenAsync(ct: ct);
        await PidAsync(app, null, ct);

        string original = await File.ReadAllTextAsync(proxy.ConfigPath, ct);
        string next = original.Replace(Transaction, Transaction + "\ndefault_pool_size = 9", StringComparison.Ordinal)
            .Replace($"[databases.other]\nhost = \"{pg.Host}\"\nport = {pg.Port}\ndbname = \"{PostgresFixture.Database}\"\n", "", StringComparison.Ordinal);
        Assert.NotEqual(original, next);
        await File.WriteAllTextAsync(proxy.ConfigPath, next, ct);
        Assert.Equal(["RELOAD"], await ConsoleAsync(proxy, "bob", "RELOAD", ct));
        Assert.Contains("proxy.default_pool_size: 20 -> 9", proxy.LogText, StringComparison.Ordinal);
        Assert.Contains("databases.other: removed", proxy.LogText, StringComparison.Ordinal);
        Assert.Equal(9, proxy.Services.Pools.Pools.Single(p => p.Key.Database == PostgresFixture.Database).Settings.PoolSize);

        // The removed database's client, idle between transactions, is closed; new ones are refused; the other pool serves on.
        Exception? closed = null;
        await Await.UntilAsync(async () => (closed = await UseFailsAsync(other, ct)) is not null, ct);
        if (closed is PostgresException fatal)
        {
            Assert.Equal("57P01", fatal.SqlState);
            Assert.Equal("terminating connection because database \"other\" was removed from the pooler's config", fatal.MessageText);
        }
        PostgresException gone = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(database: "other", ct: ct));
        Assert.Equal("3D000", gone.SqlState);
        await PidAsync(app, null, ct);

        await File.AppendAllTextAsync(proxy.ConfigPath, "\ngarbage = [\n", ct);
        ProcessRunner.Result broken = await RunConsoleAsync(proxy, "bob", "RELOAD", ct);
        Assert.Contains("ERROR:  RELOAD failed, see logs for additional details", broken.StdErr, StringComparison.Ordinal);
        Assert.Contains(proxy.ConfigPath + ":", proxy.LogText, StringComparison.Ordinal); // every error with file:line:column
        Assert.Contains("the running config stays", proxy.LogText, StringComparison.Ordinal);
        Assert.Equal(9, proxy.Services.Config.Proxy.DefaultPoolSize);
    }

    [Fact(Timeout = 90_000)]
    public async Task SigHup_ReloadsTheConfigFile_AndConsoleShutdownExitsZero()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string dir = Directory.CreateTempSubdirectory("pgproxy-sighup").FullName;
        string path = Path.Combine(dir, "proxy.toml");
        int port = Await.FreePort();
        string Config(int size) => $"""
            [proxy]
            listen = "127.0.0.1:{port}"
            default_pool_size = {size}
            [auth]
            type = "trust"
            [http]
            listen = ""
            [admin]
            admin_users = ["bob"]
            [databases.{PostgresFixture.Database}]
            host = "{pg.Host}"
            port = {pg.Port}
            user = "{PostgresFixture.Alice}"
            password = "{PostgresFixture.AlicePassword}"
            """;
        await File.WriteAllTextAsync(path, Config(5), ct);
        using var process = Process.Start(new ProcessStartInfo("dotnet", ["exec", typeof(ProxyHost).Assembly.Location, "run", "--config", path])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(ct);
        Task<string> stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await Await.UntilAsync(async () => (await RunConsoleAsync(port, "bob", "SHOW CONFIG", ct)).StdOut.Contains("default_pool_size|5|", StringComparison.Ordinal), ct);
            await File.WriteAllTextAsync(path, Config(6), ct);
            ProcessRunner.Result hup = await ProcessRunner.RunAsync("kill", ["-HUP", process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), ct: ct);
            Assert.True(hup.ExitCode == 0, hup.All);
            await Await.UntilAsync(async () => (await RunConsoleAsync(port, "bob", "SHOW CONFIG", ct)).StdOut.Contains("default_pool_size|6|", StringComparison.Ordinal), ct);
            Assert.False(process.HasExited, "SIGHUP ended the process");

            ProcessRunner.Result shutdown = await RunConsoleAsync(port, "bob", "SHUTDOWN", ct);
            Assert.True(shutdown.ExitCode == 0, shutdown.All);
            await process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(20), ct);
            Assert.Equal(0, process.ExitCode);
            string log = await stdout + await stderr;
            Assert.Contains("proxy.default_pool_size: 5 -> 6", log, StringComparison.Ordinal);
            Assert.Contains("SHUTDOWN", log, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private async Task<int> ServerSleepersAsync(CancellationToken ct)
    {
        await using var direct = new NpgsqlConnection(pg.AdminConnectionString(PostgresFixture.Database));
        await direct.OpenAsync(ct);
        await using var count = new NpgsqlCommand("SELECT count(*)::int FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'", direct);
        return (int)(await count.ExecuteScalarAsync(ct))!;
    }

    private static async Task<int> PidAsync(NpgsqlConnection conn, NpgsqlTransaction? tx, CancellationToken ct)
    {
        await using var who = new NpgsqlCommand("SELECT pg_backend_pid()", conn, tx);
        return (int)(await who.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Null when a query on <paramref name="conn"/> works; else what it threw (the server's FATAL, or the closed socket).</summary>
    private static async Task<Exception?> UseFailsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        try
        {
            await PidAsync(conn, null, ct);
            return null;
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            return ex;
        }
    }

    /// <summary>A stats row's numbers (the database name left out: index 0 is the first counter).</summary>
    private static long[] Numbers(string row) =>
        [.. row.Split('|').Skip(1).Select(v => long.Parse(v, CultureInfo.InvariantCulture))];

    /// <summary>A console command through psql, its output lines (header first; the "(n rows)" footer left out).</summary>
    private async Task<string[]> ConsoleAsync(TestProxy proxy, string user, string command, CancellationToken ct)
    {
        ProcessRunner.Result r = await RunConsoleAsync(proxy, user, command, ct);
        Assert.True(r.ExitCode == 0, r.All);
        return r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('(')).ToArray();
    }

    private Task<ProcessRunner.Result> RunConsoleAsync(TestProxy proxy, string user, string command, CancellationToken ct) =>
        RunConsoleAsync(proxy.Port, user, command, ct);

    private Task<ProcessRunner.Result> RunConsoleAsync(int port, string user, string command, CancellationToken ct) =>
        ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"), ["-X", "-A", "-v", "ON_ERROR_STOP=1", "-c", command], TimeSpan.FromSeconds(30),
            new Dictionary<string, string>
            {
                ["PGHOST"] = "127.0.0.1",
                ["PGPORT"] = port.ToString(CultureInfo.InvariantCulture),
                ["PGUSER"] = user,
                ["PGDATABASE"] = "pgbouncer",
                ["PGCONNECT_TIMEOUT"] = "10",
            }, ct: ct);
}
