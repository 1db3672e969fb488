using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class ServerFailureTests(PostgresFixture pg)
{
    [Theory(Timeout = 90_000)]
    [InlineData("transaction")]
    [InlineData("session")]
    public async Task IdleServersTerminated_NextTransactionsSucceed_NoClientSeesAnError(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 4\nmin_pool_size = 4");
        Core.Pooling.Pool pool = await WarmAsync(proxy);

        int[] terminated = await pg.ScalarAsync<int[]>(
            "WITH s AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE usename = 'alice' AND backend_type = 'client backend') " +
            "SELECT array_agg(pid) FROM s WHERE pg_terminate_backend(pid)",
            ct: TestContext.Current.CancellationToken);
        Assert.Equal(4, terminated.Length);
        var sw = Stopwatch.StartNew();
        // Only the terminated servers must be gone: min_pool_size may already have opened their replacements.
        string gone = $"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({string.Join(',', terminated)})";
        while (await pg.ScalarAsync<long>(gone, ct: TestContext.Current.CancellationToken) > 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        // Every client's next transactions work: dead idle servers are noticed when taken and replaced.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync();
            for (int t = 0; t < 3; t++)
            {
                await using var cmd = new NpgsqlCommand("SELECT $1::int", conn);
                cmd.Parameters.AddWithValue(i * 10 + t);
                Assert.Equal(i * 10 + t, await cmd.ExecuteScalarAsync());
            }
        }));

        Assert.Contains(proxy.Log, l => l.Contains("closed", StringComparison.Ordinal) && l.Contains("BackendClosed", StringComparison.Ordinal));
        Assert.InRange(pool.Counts.Total, 1, 4);
    }

    private static async Task<Core.Pooling.Pool> WarmAsync(TestProxy proxy)
    {
        await using (NpgsqlConnection conn = await proxy.OpenAsync())
        {
            await using var cmd = new NpgsqlCommand("SELECT 1", conn);
            await cmd.ExecuteScalarAsync();
        }

        Core.Pooling.Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        var sw = Stopwatch.StartNew();
        while (pool.Counts.Idle < 4)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "min_pool_size servers opened");
            await Task.Delay(20);
        }

        return pool;
    }
}
