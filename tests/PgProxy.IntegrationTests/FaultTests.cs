using System.Collections.Concurrent;
using System.Diagnostics;

namespace PgProxy.IntegrationTests;

/// <summary>Faults of the real server: restarts, outages, terminated backends, and many clients.</summary>
[Collection(PostgresCollection.Name)]
public sealed class FaultTests(PostgresFixture pg, ITestOutputHelper output)
{
    private const string Resilient = "pool_mode = \"transaction\"\ndefault_pool_size = 10\nmax_client_conn = 3000\n" +
                                     "server_login_retry = \"250ms\"\nserver_connect_timeout = \"2s\"\nquery_wait_timeout = \"20s\"";

    [Fact(Timeout = 180_000)]
    public async Task PostgresRestart_Under50ClientLoad_NoHang_ThenEveryClientSucceeds()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS restart_load; CREATE TABLE restart_load (c int, n int); GRANT ALL ON restart_load TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Resilient);
        var errors = new ConcurrentBag<string>();
        var lastSuccess = new ConcurrentDictionary<int, long>();
        using var stop = new CancellationTokenSource();
        long restartedAt = 0;

        Task[] clients = Enumerable.Range(0, 50).Select(c => Task.Run(async () =>
        {
            NpgsqlConnection? conn = null;
            int n = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    // A driver's pool would do the same: reconnect after a broken connection.
                    conn ??= await proxy.OpenAsync(extra: "Timeout=30;Command Timeout=30");
                    await using NpgsqlTransaction tx = await conn.BeginTransactionAsync();
                    await using var insert = new NpgsqlCommand("INSERT INTO restart_load VALUES ($1, $2)", conn, tx);
                    insert.Parameters.AddWithValue(c);
                    insert.Parameters.AddWithValue(n++);
                    await insert.ExecuteNonQueryAsync();
                    await tx.CommitAsync();
                    lastSuccess[c] = Stopwatch.GetTimestamp();
                }
                catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
                {
                    errors.Add(ex.Message);
                    if (conn is not null)
                    {
                        await conn.DisposeAsync();
                        conn = null;
                    }
                }
            }

            if (conn is not null)
            {
                await conn.DisposeAsync();
            }
        })).ToArray();

        await Task.Delay(1500, TestContext.Current.CancellationToken);
        await pg.RestartAsync();
        restartedAt = Stopwatch.GetTimestamp();
        await Task.Delay(6000, TestContext.Current.CancellationToken);
        stop.Cancel();
        Task all = Task.WhenAll(clients);
        Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken))); // no client hangs
        await all;

        // Every client committed again after the restart, and within a few seconds of it.
        Assert.Equal(50, lastSuccess.Count);
        Assert.All(lastSuccess.Values, t => Assert.True(t > restartedAt, "a transaction succeeded after the restart"));
        Assert.InRange(Assert.Single(proxy.Services.Pools.Pools).Counts.Total, 1, 10);
        Assert.All(errors, e => Assert.DoesNotContain("internal error", e, StringComparison.Ordinal));
    }

    [Fact(Timeout = 180_000)]
    public async Task PostgresRestart_DefaultLoginRetry_UsedAgainWithinASecond_LaterClientsSeeNoError()
    {
        // server_login_retry stays at its default (15 s): a restarted server must not keep the pool down that long.
        await pg.ExecuteAsync("DROP TABLE IF EXISTS restart_fast; CREATE TABLE restart_fast (c int); GRANT ALL ON restart_fast TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 10\nmax_client_conn = 500");
        var lateErrors = new ConcurrentBag<string>();
        var successes = new ConcurrentQueue<long>();
        using var stop = new CancellationTokenSource();
        long restartedAt = long.MaxValue;

        Task[] clients = Enumerable.Range(0, 50).Select(c => Task.Run(async () =>
        {
            NpgsqlConnection? conn = null;
            long openedAt = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (conn is null)
                    {
                        openedAt = Stopwatch.GetTimestamp();
                        conn = await proxy.OpenAsync(extra: "Timeout=30;Command Timeout=30");
                    }

                    await using var insert = new NpgsqlCommand("INSERT INTO restart_fast VALUES ($1)", conn);
                    insert.Parameters.AddWithValue(c);
                    await insert.ExecuteNonQueryAsync();
                    successes.Enqueue(Stopwatch.GetTimestamp());
                }
                catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
                {
                    // A client caught mid-transaction by the restart gets the server's FATAL: unavoidable. A client that
                    // logged in after pg_ctl returned must never see an error.
                    if (openedAt > Volatile.Read(ref restartedAt))
                    {
                        lateErrors.Add(ex.Message);
                    }

                    if (conn is not null)
                    {
                        await conn.DisposeAsync();
                        conn = null;
                    }
                }
            }

            if (conn is not null)
            {
                await conn.DisposeAsync();
            }
        })).ToArray();

        await Task.Delay(1500, TestContext.Current.CancellationToken);
        await pg.RestartAsync();
        Volatile.Write(ref restartedAt, Stopwatch.GetTimestamp());
        await Task.Delay(5000, TestContext.Current.CancellationToken);
        stop.Cancel();
        Task all = Task.WhenAll(clients);
        Assert.Same(all, await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken)));
        await all;

        long first = successes.Where(t => t > restartedAt).DefaultIfEmpty(long.MaxValue).Min();
        Assert.True(first != long.MaxValue, "no transaction succeeded after the restart");
        TimeSpan recovery = Stopwatch.GetElapsedTime(restartedAt, first);
        output.WriteLine($"first transaction {recovery.TotalMilliseconds:F0} ms after pg_ctl restart returned; {successes.Count} transactions in all");
        Assert.True(recovery <= TimeSpan.FromSeconds(1), $"first transaction {recovery.TotalMilliseconds:F0} ms after pg_ctl returned");
        Assert.Empty(lateErrors);
    }

    [Fact(Timeout = 120_000)]
    public async Task PostgresDown_LongerThanQueryWaitTimeout_ClientsWaitThenGetTheErrorInTime_ThenRecover()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "pool_mode = \"transaction\"\ndefault_pool_size = 4\nquery_wait_timeout = \"2s\"\nserver_connect_timeout = \"1s\"");
        NpgsqlConnection[] conns = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => proxy.OpenAsync()));
        await pg.StopAsync();
        try
        {
            var sw = Stopwatch.StartNew();
            Exception[] failures = await Task.WhenAll(conns.Select(async c =>
            {
                await using var cmd = new NpgsqlCommand("SELECT 1", c);
                return await Assert.ThrowsAnyAsync<NpgsqlException>(() => cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
            }));
            Assert.InRange(sw.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(10)); // they waited query_wait_timeout
            Assert.All(failures, f => Assert.Equal("08006", ((PostgresException)f).SqlState));
            Assert.All(failures, f => Assert.Contains("query_wait_timeout", ((PostgresException)f).MessageText, StringComparison.Ordinal));

            // A new client is not refused: it logs in (no server is needed for that) and waits like the others.
            await using NpgsqlConnection late = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
            await using var lateCmd = new NpgsqlCommand("SELECT 1", late);
            PostgresException waited = await Assert.ThrowsAsync<PostgresException>(() => lateCmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
            Assert.Equal("08006", waited.SqlState);
        }
        finally
        {
            await pg.StartAsync();
        }

        // Back without restarting the proxy, and at once.
        var back = Stopwatch.StartNew();
        await using (NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        await using (var cmd = new NpgsqlCommand("SELECT 7", conn))
        {
            Assert.Equal(7, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        Assert.True(back.Elapsed < TimeSpan.FromSeconds(5), $"recovered after {back.Elapsed}");
        foreach (NpgsqlConnection c in conns)
        {
            await c.DisposeAsync();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task ServerRefusesTheLogin_ClientsAreToldAtOnce()
    {
        await pg.ExecuteAsync("DROP ROLE IF EXISTS carol; CREATE ROLE carol LOGIN PASSWORD 'right'", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\nquery_wait_timeout = \"30s\"",
            authType: "trust", userlist: "\"carol\" \"wrong\"\n");
        var sw = Stopwatch.StartNew();
        PostgresException first = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(user: "carol", password: "", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", first.SqlState); // the server's own error
        PostgresException second = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(user: "carol", password: "", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", second.SqlState);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
    }

    [Fact(Timeout = 60_000)]
    public async Task LinkedServerTerminated_ThatClientGetsAnError_OthersAreUntouched()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 4");
        await using NpgsqlConnection victim = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using NpgsqlConnection other = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using NpgsqlTransaction tx = await victim.BeginTransactionAsync(TestContext.Current.CancellationToken);
        await using (var pidCmd = new NpgsqlCommand("SELECT pg_backend_pid()", victim, tx))
        {
            int pid = (int)(await pidCmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!;
            await pg.ExecuteAsync($"SELECT pg_terminate_backend({pid})", ct: TestContext.Current.CancellationToken);
        }

        await using var next = new NpgsqlCommand("SELECT 1", victim, tx);
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => next.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal("57P01", ex.SqlState); // the server's own FATAL, forwarded
        for (int i = 0; i < 3; i++)
        {
            await using var ok = new NpgsqlCommand("SELECT 2", other);
            Assert.Equal(2, await ok.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task TwoThousandClientsHeldOpen_HundredWork_The2001stIsRefused()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "pool_mode = \"transaction\"\ndefault_pool_size = 10\nmax_client_conn = 2000", authType: "trust");
        var idle = new List<RawPgClient>();
        var workers = new List<NpgsqlConnection>();
        try
        {
            for (int i = 0; i < 1900; i++)
            {
                RawPgClient c = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
                await c.SendAsync(RawPgClient.Startup(196608, ("user", "alice"), ("database", "appdb")), ct: TestContext.Current.CancellationToken);
                idle.Add(c);
            }

            foreach (RawPgClient c in idle)
            {
                while ((await c.ReadMessageAsync(TimeSpan.FromSeconds(30), ct: TestContext.Current.CancellationToken))!.Value.Type != 'Z')
                {
                }
            }

            for (int i = 0; i < 100; i++)
            {
                workers.Add(await proxy.OpenAsync(ct: TestContext.Current.CancellationToken));
            }

            Assert.Equal(2000, proxy.Services.ClientCount);
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(workers.Select(async (w, i) =>
            {
                for (int t = 0; t < 20; t++)
                {
                    await using var cmd = new NpgsqlCommand("SELECT $1::int", w);
                    cmd.Parameters.AddWithValue(i + t);
                    Assert.Equal(i + t, await cmd.ExecuteScalarAsync());
                }
            }));
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"2000 transactions took {sw.Elapsed}");

            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(ct: TestContext.Current.CancellationToken));
            Assert.Equal("53300", ex.SqlState);
        }
        finally
        {
            foreach (NpgsqlConnection w in workers)
            {
                await w.DisposeAsync();
            }

            foreach (RawPgClient c in idle)
            {
                await c.DisposeAsync();
            }
        }
    }
}
