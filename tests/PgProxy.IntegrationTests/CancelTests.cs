using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class CancelTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task Cancel_StopsOnlyTheTargetedClientsQuery()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "default_pool_size = 4");
        await using NpgsqlConnection victim = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using NpgsqlConnection bystander = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);

        await using var slow = new NpgsqlCommand("SELECT pg_sleep(30)", victim);
        await using var other = new NpgsqlCommand("SELECT 'done' FROM pg_sleep(2)", bystander);
        var sw = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        // Npgsql turns token cancellation into a CancelRequest carrying the proxy-issued BackendKeyData.
        Task<object?> victimQuery = slow.ExecuteScalarAsync(cts.Token);
        Task<object?> bystanderQuery = other.ExecuteScalarAsync(TestContext.Current.CancellationToken);

        OperationCanceledException oce = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => victimQuery);
        PostgresException ex = Assert.IsType<PostgresException>(oce.InnerException);
        Assert.Equal("57014", ex.SqlState);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), "cancel arrived well before the sleep ended");
        Assert.Equal("done", await bystanderQuery);
        Assert.Contains(proxy.Log, l => l.Contains("Cancel for client", StringComparison.Ordinal) && l.Contains("forwarded", StringComparison.Ordinal));

        // The victim's session keeps working after the cancel.
        await using var again = new NpgsqlCommand("SELECT 1", victim);
        Assert.Equal(1, await again.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task Cancel_WithWrongSecret_IsIgnored()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var slow = new NpgsqlCommand("SELECT 'finished' FROM pg_sleep(1.5)", conn);
        Task<object?> query = slow.ExecuteScalarAsync(TestContext.Current.CancellationToken);
        await Task.Delay(300, TestContext.Current.CancellationToken);

        await using RawPgClient raw = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] cancel = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(cancel, 16);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(cancel.AsSpan(4), 80877102);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(cancel.AsSpan(8), conn.ProcessID);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(cancel.AsSpan(12), 12345);
        await raw.SendAsync(cancel, ct: TestContext.Current.CancellationToken);
        Assert.True(await raw.IsClosedAsync(TimeSpan.FromSeconds(5), ct: TestContext.Current.CancellationToken));

        Assert.Equal("finished", await query);
    }
}
