using System.Diagnostics;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class CopyAndLargeValueTests(PostgresFixture pg)
{
    [Theory(Timeout = 120_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    [InlineData("statement")]
    public async Task Copy_100000Rows_InAndOut(string mode)
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS copy_rows; CREATE TABLE copy_rows (id int, v text); GRANT ALL ON copy_rows TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 2");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (NpgsqlBinaryImporter writer = await conn.BeginBinaryImportAsync("COPY copy_rows (id, v) FROM STDIN (FORMAT BINARY)", TestContext.Current.CancellationToken))
        {
            for (int i = 0; i < 100_000; i++)
            {
                await writer.StartRowAsync(TestContext.Current.CancellationToken);
                await writer.WriteAsync(i, TestContext.Current.CancellationToken);
                await writer.WriteAsync($"row-{i}", TestContext.Current.CancellationToken);
            }

            Assert.Equal(100_000UL, await writer.CompleteAsync(TestContext.Current.CancellationToken));
        }

        long sum = 0;
        int rows = 0;
        using (TextReader reader = await conn.BeginTextExportAsync("COPY copy_rows (id) TO STDOUT", TestContext.Current.CancellationToken))
        {
            while (await reader.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
            {
                sum += long.Parse(line, System.Globalization.CultureInfo.InvariantCulture);
                rows++;
            }
        }

        Assert.Equal(100_000, rows);
        Assert.Equal(4_999_950_000L, sum);

        // A failed COPY leaves the connection usable.
        await using (NpgsqlBinaryImporter failing = await conn.BeginBinaryImportAsync("COPY copy_rows (id, v) FROM STDIN (FORMAT BINARY)", TestContext.Current.CancellationToken))
        {
            await failing.StartRowAsync(TestContext.Current.CancellationToken);
            await failing.WriteAsync(1, TestContext.Current.CancellationToken);
            await failing.WriteAsync("x", TestContext.Current.CancellationToken);
            // Disposing without Complete sends CopyFail.
        }

        await using var count = new NpgsqlCommand("SELECT count(*) FROM copy_rows", conn);
        Assert.Equal(100_000L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Theory(Timeout = 120_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task TwentyMegabyteValue_RoundTrips(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 2");
        await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "Max Auto Prepare=5;Auto Prepare Min Usages=1", ct: TestContext.Current.CancellationToken);
        string big = new string('z', 20 * 1024 * 1024);
        for (int i = 0; i < 2; i++)
        {
            await using var cmd = new NpgsqlCommand("SELECT $1::text || 'end', length($1::text)", conn);
            cmd.Parameters.AddWithValue(big);
            await using NpgsqlDataReader r = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
            Assert.True(await r.ReadAsync(TestContext.Current.CancellationToken));
            string back = r.GetString(0);
            Assert.Equal(big.Length + 3, back.Length);
            Assert.EndsWith("zend", back, StringComparison.Ordinal);
            Assert.Equal(big.Length, r.GetInt32(1));
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Cancel_DuringAPipelinedQuery_InTransactionMode()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 2");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var batch = new NpgsqlBatch(conn)
        {
            BatchCommands = { new("SELECT 1"), new("SELECT pg_sleep(30)"), new("SELECT 3") },
        };
        var sw = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(700));
        Exception ex = await Assert.ThrowsAnyAsync<Exception>(() => batch.ExecuteNonQueryAsync(cts.Token));
        PostgresException pgEx = Assert.IsType<PostgresException>(ex is OperationCanceledException oce ? oce.InnerException : ex);
        Assert.Equal("57014", pgEx.SqlState);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15));
        await using var after = new NpgsqlCommand("SELECT 42", conn);
        Assert.Equal(42, await after.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }
}
