using System.Collections.Concurrent;
using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class ServerLifecycleTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task ServerLifetime_ReplacesServers_UnderSteadyLoad_WithoutAFailedQuery()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_lifetime = \"1s\"");
        var pids = new ConcurrentBag<int>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
            while (sw.Elapsed < TimeSpan.FromSeconds(3.5))
            {
                await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", conn);
                pids.Add((int)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
            }
        }));

        Assert.True(pids.Distinct().Count() > 2, $"servers were replaced: {pids.Distinct().Count()} distinct");
        Assert.Contains(proxy.Log, l => l.Contains("closed", StringComparison.Ordinal) && l.Contains("Lifetime", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task ServerIdleTimeout_ClosesIdleServersAboveTheMinimum()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "pool_mode = \"transaction\"\ndefault_pool_size = 4\nmin_pool_size = 1\nserver_idle_timeout = \"500ms\"");
        // Log in first, then run the four sleeps together: they need four servers at once however slow logins are.
        var conns = new List<NpgsqlConnection>();
        for (int i = 0; i < 4; i++)
        {
            conns.Add(await proxy.OpenAsync(ct: TestContext.Current.CancellationToken));
        }

        await Task.WhenAll(conns.Select(async conn =>
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_sleep(0.3)", conn);
            await cmd.ExecuteNonQueryAsync();
        }));
        foreach (NpgsqlConnection conn in conns)
        {
            await conn.DisposeAsync();
        }

        Core.Pooling.Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        Assert.True(pool.Counts.Total >= 2, "several servers were opened");

        var sw = Stopwatch.StartNew();
        while (pool.Counts.Total > 1)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"idle servers closed: {pool.Counts}");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        Assert.Equal(1, pool.Counts.Idle);
        Assert.Contains(proxy.Log, l => l.Contains("IdleTimeout", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task PrePing_FailingCheck_ClosesTheServer_AndTheClientNeverSeesIt()
    {
        // A check that always fails: every idle server is replaced before use, and every query still succeeds.
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_check_delay = \"0\"\nserver_check_query = \"SELECT 1/0\"");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        var pids = new HashSet<int>();
        for (int i = 0; i < 5; i++)
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", conn);
            pids.Add((int)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
        }

        Assert.True(pids.Count >= 4, "each idle server failed its check and was replaced");
        Assert.Contains(proxy.Log, l => l.Contains("CheckFailed", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task PrePing_PassingCheck_KeepsTheServer()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            "pool_mode = \"transaction\"\ndefault_pool_size = 1\nserver_check_delay = \"0\"\nserver_check_query = \";\"");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        var pids = new HashSet<int>();
        for (int i = 0; i < 5; i++)
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", conn);
            pids.Add((int)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
        }

        Assert.Single(pids);
        Assert.DoesNotContain(proxy.Log, l => l.Contains("CheckFailed", StringComparison.Ordinal));
    }
}
