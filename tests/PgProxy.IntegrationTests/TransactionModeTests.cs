using System.Globalization;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class TransactionModeTests(PostgresFixture pg)
{
    private const string TxPool = "pool_mode = \"transaction\"\ndefault_pool_size = 4\nmax_client_conn = 500";

    private Dictionary<string, string> PgEnv(int port) => new()
    {
        ["PGHOST"] = "127.0.0.1",
        ["PGPORT"] = port.ToString(CultureInfo.InvariantCulture),
        ["PGUSER"] = PostgresFixture.Alice,
        ["PGPASSWORD"] = PostgresFixture.AlicePassword,
        ["PGDATABASE"] = PostgresFixture.Database,
        ["PGCONNECT_TIMEOUT"] = "20",
    };

    private async Task InitPgbenchAsync()
    {
        ProcessRunner.Result init = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "pgbench"), ["-i", "-s", "1", "-q"],
            TimeSpan.FromSeconds(90), PgEnv(pg.Port));
        Assert.True(init.ExitCode == 0, init.All);
    }

    [Theory(Timeout = 240_000)]
    [InlineData("simple", true)]
    [InlineData("extended", true)]
    [InlineData("prepared", true)]
    [InlineData("prepared", false)]
    public async Task Pgbench_40Clients_Pool4_NoFailedTransaction_BalancesConsistent(string protocol, bool selectOnly)
    {
        await InitPgbenchAsync();
        await using TestProxy proxy = await TestProxy.StartAsync(pg, TxPool);
        // One pgbench thread per client: -M prepared prepares with a blocking call, which would otherwise hold the
        // whole thread (and its other clients' open transactions) while waiting for a server.
        string[] args = ["-c", "40", "-j", "40", "-t", "25", "-n", "-M", protocol, .. selectOnly ? new[] { "-S" } : []];
        ProcessRunner.Result run = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "pgbench"), args, TimeSpan.FromSeconds(200), PgEnv(proxy.Port), ct: TestContext.Current.CancellationToken);
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("number of transactions actually processed: 1000/1000", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("number of failed transactions: 0 (0.000%)", run.StdOut, StringComparison.Ordinal);
        Assert.True(Assert.Single(proxy.Services.Pools.Pools).Counts.Total <= 4);

        // TPC-B bookkeeping holds: every branch/teller/account delta is in history.
        long history = await pg.ScalarAsync<long>("SELECT coalesce(sum(delta), 0) FROM pgbench_history", ct: TestContext.Current.CancellationToken);
        Assert.Equal(history, await pg.ScalarAsync<long>("SELECT sum(abalance) FROM pgbench_accounts", ct: TestContext.Current.CancellationToken));
        Assert.Equal(history, await pg.ScalarAsync<long>("SELECT sum(bbalance) FROM pgbench_branches", ct: TestContext.Current.CancellationToken));
        Assert.Equal(history, await pg.ScalarAsync<long>("SELECT sum(tbalance) FROM pgbench_tellers", ct: TestContext.Current.CancellationToken));
        if (!selectOnly)
        {
            Assert.Equal(1000L, await pg.ScalarAsync<long>("SELECT count(*) FROM pgbench_history", ct: TestContext.Current.CancellationToken));
        }
    }

    [Theory(Timeout = 180_000)]
    [InlineData(20)]
    [InlineData(0)]
    public async Task Npgsql_AutoPrepareAndExplicitPrepare_40Clients_Pool4(int maxAutoPrepare)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, TxPool);
        string extra = $"Max Auto Prepare={maxAutoPrepare};Auto Prepare Min Usages=2";
        await Task.WhenAll(Enumerable.Range(0, 40).Select(async client =>
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(extra: extra, ct: TestContext.Current.CancellationToken);
            await using var explicitCmd = new NpgsqlCommand("SELECT $1::int * 2, current_user", conn);
            explicitCmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
            await explicitCmd.PrepareAsync(TestContext.Current.CancellationToken);
            for (int i = 0; i < 30; i++)
            {
                explicitCmd.Parameters[0].Value = i;
                await using (NpgsqlDataReader r = await explicitCmd.ExecuteReaderAsync(TestContext.Current.CancellationToken))
                {
                    Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
                    Assert.Equal(i * 2, r.GetInt32(0));
                }

                await using var auto = new NpgsqlCommand($"SELECT $1::text || '-{i % 5}'", conn);
                auto.Parameters.AddWithValue($"c{client}");
                Assert.Equal($"c{client}-{i % 5}", await auto.ExecuteScalarAsync(TestContext.Current.CancellationToken));

                await using NpgsqlTransaction tx = await conn.BeginTransactionAsync();
                await using var inTx = new NpgsqlCommand("SELECT txid_current() = txid_current()", conn, tx);
                Assert.Equal(true, await inTx.ExecuteScalarAsync(TestContext.Current.CancellationToken));
                await tx.CommitAsync();
            }
        }));
    }

    [Fact(Timeout = 60_000)]
    public async Task PreparedOnOneServer_ExecutesOnAnother()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_round_robin = true");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid(), $1::int + 1", conn);
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = 1 });
        await cmd.PrepareAsync(TestContext.Current.CancellationToken);

        // Make both servers exist, then alternate: round robin hands the client the other server each time.
        await using (NpgsqlConnection other = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        await using (NpgsqlTransaction hold = await other.BeginTransactionAsync(TestContext.Current.CancellationToken))
        {
            await using var c = new NpgsqlCommand("SELECT 1", other, hold);
            await c.ExecuteScalarAsync(TestContext.Current.CancellationToken);
            await using var again = new NpgsqlCommand("SELECT 1", conn);
            await again.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        var pids = new HashSet<int>();
        for (int i = 0; i < 6; i++)
        {
            cmd.Parameters[0].Value = i;
            await using NpgsqlDataReader r = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
            pids.Add(r.GetInt32(0));
            Assert.Equal(i + 1, r.GetInt32(1));
        }

        Assert.Equal(2, pids.Count); // the same prepared statement ran on both servers
    }

    [Fact(Timeout = 60_000)]
    public async Task LruEviction_WithMaxPrepared2_ManyStatementsStayCorrect()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1\nmax_prepared_statements = 2");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        var commands = new List<NpgsqlCommand>();
        for (int k = 0; k < 10; k++)
        {
            var cmd = new NpgsqlCommand($"SELECT $1::int + {k}", conn);
            cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = 0 });
            await cmd.PrepareAsync(TestContext.Current.CancellationToken);
            commands.Add(cmd);
        }

        for (int round = 0; round < 3; round++)
        {
            for (int k = 0; k < 10; k++)
            {
                commands[k].Parameters[0].Value = round;
                Assert.Equal(round + k, await commands[k].ExecuteScalarAsync(TestContext.Current.CancellationToken));
            }
        }

        await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_prepared_statements", conn);
        Assert.InRange((long)(await count.ExecuteScalarAsync(TestContext.Current.CancellationToken))!, 0, 2);
        foreach (NpgsqlCommand c in commands)
        {
            await c.DisposeAsync();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task ErrorInTheMiddleOfAPipeline_ThenMorePipelinedWork()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, TxPool);
        await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "Max Auto Prepare=10;Auto Prepare Min Usages=1", ct: TestContext.Current.CancellationToken);
        for (int round = 0; round < 5; round++)
        {
            await using var bad = new NpgsqlBatch(conn)
            {
                BatchCommands = { new("SELECT 1"), new("SELECT 1/0"), new("SELECT 3") },
            };
            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
            Assert.Equal("22012", ex.SqlState);

            await using var good = new NpgsqlBatch(conn)
            {
                BatchCommands = { new("SELECT 10"), new("SELECT 20"), new("SELECT 30") },
            };
            await using NpgsqlDataReader r = await good.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            foreach (int expected in new[] { 10, 20, 30 })
            {
                Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
                Assert.Equal(expected, r.GetInt32(0));
                await r.NextResultAsync(TestContext.Current.CancellationToken);
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task SessionParameters_FollowEachClient_AcrossSharedServers()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1");
        await using NpgsqlConnection a = await proxy.OpenAsync(extra: "Application Name=app-a;Timezone=UTC;Options=-c search_path=pg_catalog", ct: TestContext.Current.CancellationToken);
        await using NpgsqlConnection b = await proxy.OpenAsync(extra: "Application Name=app-b;Timezone=Asia/Tokyo", ct: TestContext.Current.CancellationToken);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal("app-a|UTC|pg_catalog", await SettingsAsync(a));
            Assert.Equal("app-b|Asia/Tokyo|\"$user\", public", await SettingsAsync(b));
        }

        // A reported setting changed with SET stays the client's own.
        await using (var set = new NpgsqlCommand("SET application_name = 'renamed-a'", a))
        {
            await set.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        Assert.Equal("renamed-a|UTC|pg_catalog", await SettingsAsync(a));
        Assert.Equal("app-b|Asia/Tokyo|\"$user\", public", await SettingsAsync(b));
        Assert.Equal("renamed-a", a.PostgresParameters["application_name"]);
    }

    private static async Task<string> SettingsAsync(NpgsqlConnection conn)
    {
        await using var cmd = new NpgsqlCommand(
            "SELECT current_setting('application_name') || '|' || current_setting('TimeZone') || '|' || current_setting('search_path')", conn);
        return (string)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact(Timeout = 60_000)]
    public async Task SessionState_InAPoolOfOne_IsRefused_AndASettingIsCleaned_BeforeAnotherClient()
    {
        // A pool of one pins no client (pins always leave a server to the others): state that would pin is refused.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1");
        await using NpgsqlConnection a = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using NpgsqlConnection b = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        foreach (string sql in new[] { "CREATE TEMP TABLE mine (x int)", "SELECT pg_advisory_lock(4242)" })
        {
            await using var cmd = new NpgsqlCommand(sql, a);
            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
            Assert.Equal("0A000", ex.SqlState);
        }

        await using (var cmd = new NpgsqlCommand("SET work_mem = '9MB'", a))
        {
            await cmd.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await using var check = new NpgsqlCommand(
            "SELECT to_regclass('pg_temp.mine') IS NULL, pg_try_advisory_xact_lock(4242), current_setting('work_mem')", b);
        await using NpgsqlDataReader r = await check.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
        Assert.True(r.GetBoolean(0));
        Assert.True(r.GetBoolean(1));
        Assert.Equal("4MB", r.GetString(2));
    }

    [Fact(Timeout = 60_000)]
    public async Task StatementMode_RefusesTransactionBlocks_AndRollsBack()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS stmt_mode; CREATE TABLE stmt_mode (x int); GRANT ALL ON stmt_mode TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"statement\"\ndefault_pool_size = 1");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var insert = new NpgsqlCommand("INSERT INTO stmt_mode VALUES (1)", conn))
        {
            Assert.Equal(1, await insert.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
        }

        await using (var begin = new NpgsqlCommand("BEGIN; INSERT INTO stmt_mode VALUES (2)", conn))
        {
            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => begin.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
            Assert.Equal("0A000", ex.SqlState);
            Assert.Contains("statement pooling mode", ex.MessageText, StringComparison.Ordinal);
        }

        await using var count = new NpgsqlCommand("SELECT count(*) FROM stmt_mode", conn);
        Assert.Equal(1L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'", ct: TestContext.Current.CancellationToken));
    }
}
