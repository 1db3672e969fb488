namespace PgProxy.IntegrationTests;

/// <summary>The PostgreSQL the suite runs against is the one that was asked for (initdb cluster or container).</summary>
[Collection(PostgresCollection.Name)]
public sealed class FixtureSourceTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task Server_ComesFromTheRequestedSource()
    {
        string dataDirectory = await pg.ScalarAsync<string>("SHOW data_directory", ct: TestContext.Current.CancellationToken);
        string? client = await pg.ScalarAsync<string?>("SELECT host(inet_client_addr())", ct: TestContext.Current.CancellationToken);
        if (Environment.GetEnvironmentVariable("PROXY_TEST_PG") is { Length: > 0 })
        {
            Assert.False(string.IsNullOrEmpty(dataDirectory));
        }
        else if (Environment.GetEnvironmentVariable("PROXY_TEST_POSTGRES") == "container")
        {
            // Inside the container, and reached through Docker's published port (the bridge gateway connects).
            Assert.Equal("/var/lib/postgresql/data", dataDirectory);
            Assert.NotEqual("127.0.0.1", client);
            Assert.Equal("127.0.0.1", pg.Host);
        }
        else
        {
            Assert.StartsWith(Path.Combine(Path.GetTempPath(), "pgproxy-pg-"), dataDirectory, StringComparison.Ordinal);
            Assert.Equal("127.0.0.1", client);
        }
    }
}
