using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class TimeoutTests(PostgresFixture pg)
{
    [Theory(Timeout = 60_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task ClientIdleTimeout_ClosesAnIdleClient_With57P05(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\nclient_idle_timeout = \"500ms\"");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var cmd = new NpgsqlCommand("SELECT 1", conn))
        {
            await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        }

        await Task.Delay(1500, TestContext.Current.CancellationToken); // three times the timeout, with the watchdog ticking every 250 ms
        await using var probe = new NpgsqlCommand("SELECT 1", conn);
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => probe.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal("57P05", ex.SqlState);
        Assert.Contains("client_idle_timeout", ex.MessageText, StringComparison.Ordinal);
        Assert.Contains(proxy.Log, l => l.Contains("ClientIdleTimeout", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task IdleTransactionTimeout_ClosesTheClient_AndRollsTheServerBack()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS idle_tx; CREATE TABLE idle_tx (x int); GRANT ALL ON idle_tx TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1\nidle_transaction_timeout = \"500ms\"");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var cmd = new NpgsqlCommand("BEGIN; INSERT INTO idle_tx VALUES (1)", conn))
        {
            await cmd.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await Task.Delay(1500, TestContext.Current.CancellationToken);
        await using (var late = new NpgsqlCommand("COMMIT", conn))
        {
            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => late.ExecuteNonQueryAsync(TestContext.Current.CancellationToken));
            Assert.Equal("25P03", ex.SqlState);
        }

        // The server was rolled back and went back to the pool clean: the next client uses it.
        await using NpgsqlConnection next = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM idle_tx", next);
        Assert.Equal(0L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'", ct: TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task QueryTimeout_CancelsTheQueryOnTheServer_AndErrorsTheClient()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\nquery_timeout = \"1s\"");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT pg_sleep(30)", conn);
        var sw = Stopwatch.StartNew();
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        Assert.Equal("57014", ex.SqlState);
        Assert.InRange(sw.Elapsed, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(10));

        sw.Restart();
        while (await pg.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'", ct: TestContext.Current.CancellationToken) > 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "the query kept running on the server");
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }

        // A quick query is not affected.
        await using NpgsqlConnection other = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var quick = new NpgsqlCommand("SELECT 5", other);
        Assert.Equal(5, await quick.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }
}
