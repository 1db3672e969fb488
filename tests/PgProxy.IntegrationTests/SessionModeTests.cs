using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class SessionModeTests(PostgresFixture pg)
{
    private Dictionary<string, string> PgEnv(TestProxy proxy) => new()
    {
        ["PGHOST"] = "127.0.0.1",
        ["PGPORT"] = proxy.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["PGUSER"] = PostgresFixture.Alice,
        ["PGPASSWORD"] = PostgresFixture.AlicePassword,
        ["PGDATABASE"] = PostgresFixture.Database,
        ["PGCONNECT_TIMEOUT"] = "20",
    };

    [Fact(Timeout = 60_000)]
    public async Task Npgsql_ExtendedAndSimpleQueries_RoundTripData()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE t (id int, v text)", conn))
        {
            await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        for (int i = 0; i < 50; i++)
        {
            await using var insert = new NpgsqlCommand("INSERT INTO t VALUES ($1, $2)", conn);
            insert.Parameters.AddWithValue(i);
            insert.Parameters.AddWithValue(new string('x', i * 100));
            await insert.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await using var sum = new NpgsqlCommand("SELECT sum(id), sum(length(v)) FROM t", conn);
        await using NpgsqlDataReader reader = await sum.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
        Assert.Equal(1225L, reader.GetInt64(0));
        Assert.Equal(122_500L, reader.GetInt64(1));
    }

    [Fact(Timeout = 60_000)]
    public async Task LargeResult_StreamsThroughRelay()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT repeat('y', 5000000), g FROM generate_series(1, 4) g", conn);
        await using NpgsqlDataReader reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        int rows = 0;
        while (await reader.ReadAsync(TestContext.Current.CancellationToken))
        {
            Assert.Equal(5_000_000, reader.GetString(0).Length);
            rows++;
        }

        Assert.Equal(4, rows);
    }

    [Fact(Timeout = 60_000)]
    public async Task Psql_RunsQueries_AndSeesStartupSettings()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        Dictionary<string, string> env = PgEnv(proxy);
        env["PGAPPNAME"] = "psql-test";
        env["PGOPTIONS"] = "-c search_path=pg_catalog,public -c work_mem=7MB";
        ProcessRunner.Result r = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT current_setting('application_name'), current_setting('search_path'), current_setting('work_mem'), 6*7"],
            TimeSpan.FromSeconds(30), env, ct: TestContext.Current.CancellationToken);
        Assert.True(r.ExitCode == 0, r.All);
        // Same spelling as a direct connection: PostgreSQL keeps the startup value as given.
        Assert.Equal("psql-test|pg_catalog,public|7MB|42", r.StdOut.Trim());
    }

    [Fact(Timeout = 60_000)]
    public async Task UnknownStartupSetting_ClientGetsServerError42704()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        // The setting is applied when the first statement links a server; Npgsql's Open already sends one.
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "Options=-c no_such_setting=1", ct: TestContext.Current.CancellationToken);
            await using var cmd = new NpgsqlCommand("SELECT 1", conn);
            await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        });
        Assert.Equal("42704", ex.SqlState);
        Assert.Contains("no_such_setting", ex.MessageText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task Pgbench_ConnectPerTransaction_20Clients_Pool5_NoFailures()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 5");
        string pgbench = Path.Combine(pg.BinDir, "pgbench");
        Dictionary<string, string> env = PgEnv(proxy);
        env["PGPORT"] = pg.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ProcessRunner.Result init = await ProcessRunner.RunAsync(pgbench, ["-i", "-s", "1", "-q"], TimeSpan.FromSeconds(90), env, ct: TestContext.Current.CancellationToken);
        Assert.True(init.ExitCode == 0, init.All);

        env = PgEnv(proxy);
        ProcessRunner.Result run = await ProcessRunner.RunAsync(pgbench, ["-C", "-c", "20", "-j", "2", "-t", "25", "-n"], TimeSpan.FromSeconds(150), env, ct: TestContext.Current.CancellationToken);
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("number of transactions actually processed: 500/500", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("number of failed transactions: 0 (0.000%)", run.StdOut, StringComparison.Ordinal);

        Core.Pooling.Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        Assert.True(pool.Counts.Total <= 5, $"pool stayed within its size: {pool.Counts}");
    }

    [Fact(Timeout = 120_000)]
    public async Task TwoHundredConcurrentShortLivedClients_Pool10_AllComplete_OnAtMostTenServers()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 10\nmax_client_conn = 500");
        var pids = new System.Collections.Concurrent.ConcurrentBag<int>();
        Task[] clients = Enumerable.Range(0, 200).Select(async i =>
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
            await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid(), $1::int", conn);
            cmd.Parameters.AddWithValue(i);
            await using NpgsqlDataReader r = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
            Assert.Equal(i, r.GetInt32(1));
            pids.Add(r.GetInt32(0));
        }).ToArray();
        await Task.WhenAll(clients);
        Assert.Equal(200, pids.Count);
        Assert.InRange(pids.Distinct().Count(), 1, 10);
    }

    [Fact(Timeout = 60_000)]
    public async Task SessionState_IsReset_BeforeTheNextClient()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 1");
        int firstPid;
        await using (NpgsqlConnection first = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        {
            await using var cmd = new NpgsqlCommand(
                "SET work_mem = '9MB'; CREATE TEMP TABLE leftover (x int); PREPARE p AS SELECT 1; SELECT pg_backend_pid()", first);
            firstPid = (int)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
        }

        await using NpgsqlConnection second = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var check = new NpgsqlCommand(
            "SELECT pg_backend_pid(), current_setting('work_mem'), to_regclass('pg_temp.leftover') IS NULL, (SELECT count(*) FROM pg_prepared_statements)", second);
        await using NpgsqlDataReader r = await check.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
        Assert.Equal(firstPid, r.GetInt32(0)); // same server reused...
        Assert.Equal("4MB", r.GetString(1));  // ...but clean
        Assert.True(r.GetBoolean(2));
        Assert.Equal(0L, r.GetInt64(3));
    }

    [Fact(Timeout = 60_000)]
    public async Task ClientLeavingInsideTransaction_IsRolledBack_ServerReused()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS left_open; CREATE TABLE left_open (x int); GRANT ALL ON left_open TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 1");
        await using (NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        {
            await using var cmd = new NpgsqlCommand("BEGIN; INSERT INTO left_open VALUES (1)", conn);
            await cmd.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
            // Disposing sends Terminate while the transaction is open.
        }

        await using NpgsqlConnection next = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM left_open", next);
        Assert.Equal(0L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'", ct: TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 90_000)]
    public async Task ClientKilledMidTransaction_LeavesNoTransactionOpenOnTheServer()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS killed_tx; CREATE TABLE killed_tx (x int); GRANT ALL ON killed_tx TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 2");
        await KillPsqlAfterAsync(proxy, "BEGIN;\nINSERT INTO killed_tx VALUES (1);\nSELECT 'inside';\n", "inside");
        await AssertNoOpenTransactionAsync();
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM killed_tx", ct: TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 90_000)]
    public async Task ClientKilledMidCopy_ServerNotReusedDirty()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS killed_copy; CREATE TABLE killed_copy (x int); GRANT ALL ON killed_copy TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 1");
        await KillPsqlAfterAsync(proxy, "SELECT 'copying';\nCOPY killed_copy FROM STDIN;\n1\n2\n", "copying");
        await AssertNoOpenTransactionAsync();

        // The pool recovers: the next client gets a working, clean server.
        await using NpgsqlConnection next = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM killed_copy", next);
        Assert.Equal(0L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    private async Task KillPsqlAfterAsync(TestProxy proxy, string script, string marker)
    {
        var psi = new ProcessStartInfo(Path.Combine(pg.BinDir, "psql"))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { "-X", "-A", "-t" })
        {
            psi.ArgumentList.Add(a);
        }

        foreach (KeyValuePair<string, string> kv in PgEnv(proxy))
        {
            psi.Environment[kv.Key] = kv.Value;
        }

        using Process psql = Process.Start(psi)!;
        await psql.StandardInput.WriteAsync(script);
        await psql.StandardInput.FlushAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            string? line = await psql.StandardOutput.ReadLineAsync(cts.Token);
            Assert.NotNull(line);
            if (line.Contains(marker, StringComparison.Ordinal))
            {
                break;
            }
        }

        await Task.Delay(200); // let the statements after the marker reach the server
        psql.Kill(entireProcessTree: true);
        await psql.WaitForExitAsync(cts.Token);
    }

    private async Task AssertNoOpenTransactionAsync()
    {
        var deadline = Stopwatch.StartNew();
        long open;
        do
        {
            open = await pg.ScalarAsync<long>(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND (state LIKE 'idle in transaction%' OR (state = 'active' AND query ILIKE 'COPY%'))");
            if (open == 0)
            {
                return;
            }

            await Task.Delay(100);
        }
        while (deadline.Elapsed < TimeSpan.FromSeconds(20));

        Assert.Equal(0L, open);
    }
}
