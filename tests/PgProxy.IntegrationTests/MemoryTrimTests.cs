namespace PgProxy.IntegrationTests;

/// <summary>[proxy] memory_trim_delay: the heap is compacted once clients stop coming and going, and the log says so.</summary>
[Collection(PostgresCollection.Name)]
public sealed class MemoryTrimTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task AfterClientsStopComingAndGoing_TheHeapIsCompactedOnce_AndLogged()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\nmemory_trim_delay = \"1s\"", authType: "trust");
        for (int i = 0; i < 20; i++)
        {
            await using NpgsqlConnection c = await proxy.OpenAsync(ct: ct);
            await using var cmd = new NpgsqlCommand("SELECT 1", c);
            Assert.Equal(1, await cmd.ExecuteScalarAsync(ct));
        }

        // The trim waits until enough was allocated since the last one (4 MB, process-wide): make sure it was.
        GC.KeepAlive(new byte[5 * 1024 * 1024]);
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!proxy.LogText.Contains("heap compacted", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "no memory trim was logged within 30 s of the last client:\n" + proxy.LogText);
            await Task.Delay(100, ct);
        }

        Assert.Matches(@"No client came or went for memory_trim_delay: heap compacted, resident memory \d+ kB -> \d+ kB \(live heap \d+ kB, pause [\d.]+ ms\)",
            proxy.LogText);

        // The proxy still serves after the pause.
        await using NpgsqlConnection after = await proxy.OpenAsync(ct: ct);
        await using var again = new NpgsqlCommand("SELECT 2", after);
        Assert.Equal(2, await again.ExecuteScalarAsync(ct));
    }
}
