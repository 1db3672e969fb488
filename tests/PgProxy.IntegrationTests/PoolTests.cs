using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class PoolTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task QueryWaitTimeout_FullPool_ClearErrorInTime()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 1\nquery_wait_timeout = \"1s\"");
        await using NpgsqlConnection holder = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT 1", holder))
        {
            await hold.ExecuteScalarAsync(TestContext.Current.CancellationToken); // session mode: holder keeps the only server
        }

        await using NpgsqlConnection waiter = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken); // login needs no server
        await using var cmd = new NpgsqlCommand("SELECT 1", waiter);
        var sw = Stopwatch.StartNew();
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal("53300", ex.SqlState);
        Assert.Contains("query_wait_timeout", ex.MessageText, StringComparison.Ordinal);
        Assert.InRange(sw.Elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(10));
        Assert.Contains(proxy.Log, l => l.Contains("query_wait_timeout", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task Waiter_GetsTheServer_WhenTheHolderLeaves()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 1\nquery_wait_timeout = \"20s\"");
        NpgsqlConnection holder = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT 1", holder))
        {
            await hold.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        await using NpgsqlConnection waiter = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT 42", waiter);
        Task<object?> waiting = cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        await Task.Delay(300, TestContext.Current.CancellationToken);
        Assert.False(waiting.IsCompleted);
        await holder.DisposeAsync();
        Assert.Equal(42, await waiting);
    }

    [Fact(Timeout = 60_000)]
    public async Task ReservePool_OpensExtraServer_AfterReserveTimeout()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = \"300ms\"\nquery_wait_timeout = \"10s\"");
        await using NpgsqlConnection holder = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT 1", holder))
        {
            await hold.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        await using NpgsqlConnection second = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT 7", second);
        var sw = Stopwatch.StartNew();
        Assert.Equal(7, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.InRange(sw.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(8));
        Assert.Equal(2, Assert.Single(proxy.Services.Pools.Pools).Counts.Total);

        // The reserve is used up: a third client waits (and times out with the wait error).
        await using NpgsqlConnection third = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var blocked = new NpgsqlCommand("SELECT 1", third) { CommandTimeout = 30 };
        Task<object?> pending = blocked.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        await Task.Delay(800, TestContext.Current.CancellationToken);
        Assert.False(pending.IsCompleted);
        await holder.CloseAsync();
        Assert.Equal(1, await pending);
    }

    [Fact(Timeout = 60_000)]
    public async Task MaxDbConnections_CapsServersAcrossUsers()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 5\nmax_db_connections = 1\nquery_wait_timeout = \"1s\"",
            authType: "md5");
        await using NpgsqlConnection alice = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT 1", alice))
        {
            await hold.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        // Bob's pool has room (5) but the database has none: his first statement (Npgsql sends one in Open) waits, then fails.
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(PostgresFixture.Bob, PostgresFixture.BobPassword, ct: TestContext.Current.CancellationToken));
        Assert.Equal("53300", ex.SqlState);
        Assert.Equal(1, proxy.Services.Pools.Pools.Sum(p => p.Counts.Total));

        // When alice leaves, bob gets the database's only slot.
        await alice.CloseAsync();
        await using NpgsqlConnection bob = await proxy.OpenAsync(PostgresFixture.Bob, PostgresFixture.BobPassword, ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", bob);
        Assert.Equal(PostgresFixture.Bob, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task MaxDbConnections_IdleServerOfAnotherUser_YieldsToAWaiter()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 5\nmax_db_connections = 1\nquery_wait_timeout = \"20s\"",
            authType: "md5");
        NpgsqlConnection alice = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var hold = new NpgsqlCommand("SELECT 1", alice))
        {
            await hold.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        Task<NpgsqlConnection> bob = proxy.OpenAsync(PostgresFixture.Bob, PostgresFixture.BobPassword, ct: TestContext.Current.CancellationToken);
        var sw = Stopwatch.StartNew();
        while (!proxy.Services.Pools.Pools.Any(p => p.Key.User == PostgresFixture.Bob && p.Counts.Waiting == 1))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "bob never queued");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        // Alice leaves: her server is clean and would go idle in her pool, but bob's pool is waiting on the shared limit.
        await alice.DisposeAsync();
        await using NpgsqlConnection bobConn = await bob.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", bobConn);
        Assert.Equal(PostgresFixture.Bob, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Contains(proxy.Log, l => l.Contains("Evicted", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task MinPoolSize_OpensServersAheadOfDemand()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 5\nmin_pool_size = 3");
        await using (NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        {
            await using var cmd = new NpgsqlCommand("SELECT 1", conn);
            await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        Core.Pooling.Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        var sw = Stopwatch.StartNew();
        while (pool.Counts.Idle < 3 && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        Assert.Equal(3, pool.Counts.Idle);
    }

    [Fact(Timeout = 60_000)]
    public async Task IdleServers_ReusedLifo_ByDefault()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 3");
        // Open two servers at once, then release them: first A then B. LIFO hands out B next.
        NpgsqlConnection a = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        NpgsqlConnection b = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        int pidA = await PidAsync(a);
        int pidB = await PidAsync(b);
        await a.DisposeAsync();
        await WaitIdleAsync(proxy, 1);
        await b.DisposeAsync();
        await WaitIdleAsync(proxy, 2);
        await using NpgsqlConnection c = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        Assert.Equal(pidB, await PidAsync(c));
        Assert.NotEqual(pidA, pidB);
    }

    [Fact(Timeout = 60_000)]
    public async Task IdleServers_ReusedFifo_WithRoundRobin()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 3\nserver_round_robin = true");
        NpgsqlConnection a = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        NpgsqlConnection b = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        int pidA = await PidAsync(a);
        await PidAsync(b);
        await a.DisposeAsync();
        await WaitIdleAsync(proxy, 1);
        await b.DisposeAsync();
        await WaitIdleAsync(proxy, 2);
        await using NpgsqlConnection c = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        Assert.Equal(pidA, await PidAsync(c));
    }

    private static async Task<int> PidAsync(NpgsqlConnection conn)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", conn);
        return (int)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task WaitIdleAsync(TestProxy proxy, int idle)
    {
        Core.Pooling.Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        var sw = Stopwatch.StartNew();
        while (pool.Counts.Idle < idle && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }

        Assert.Equal(idle, pool.Counts.Idle);
    }
}
