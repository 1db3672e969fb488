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

        long terminated = await pg.ScalarAsync<long>(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'alice' AND backend_type = 'client backend'");
        Assert.Equal(4L, terminated);
        var sw = Stopwatch.StartNew();
        while (await pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice'") > 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
            await Task.Delay(50);
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
