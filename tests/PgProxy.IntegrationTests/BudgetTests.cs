using System.Globalization;
using PgProxy.Core.Auth;
using PgProxy.Core.Configuration;
using PgProxy.Tools;

namespace PgProxy.IntegrationTests;

/// <summary>
/// pgproxy budget against the fixture's real PostgreSQL (max_connections = 300): the worst case PgProxy can open
/// there, with replicas, reserve pools and max_db_connections, set against what the server has free; the application
/// side of the formula against max_client_conn; a server that cannot be read.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class BudgetTests(PostgresFixture pg) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-budget").FullName;

    [Fact(Timeout = 60_000)]
    public async Task WithinTheServersLimit_IsOk_AndPastIt_IsExceeded()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        (int code, string text) = await RunAsync("default_pool_size = 10\nreserve_pool_size = 2", new BudgetOptions(Replicas: 3), ct);
        Assert.True(code == 0, text);
        string row = Row(text);
        Assert.Contains("300", row, StringComparison.Ordinal); // max_connections, read from the server
        // alice alone (the auth file's one user) x (10 + 2), three replicas.
        Assert.Contains("36 (3 x 12)", row, StringComparison.Ordinal);
        Assert.EndsWith("OK", row, StringComparison.Ordinal);

        (code, text) = await RunAsync("default_pool_size = 60", new BudgetOptions(Replicas: 6), ct);
        Assert.True(code == 1, text);
        Assert.EndsWith("EXCEEDED", Row(text), StringComparison.Ordinal);
        Assert.Contains("PgProxy may open 360 connections but only", text, StringComparison.Ordinal);

        // max_db_connections caps a database's pools.
        (code, text) = await RunAsync("default_pool_size = 60\nmax_db_connections = 20", new BudgetOptions(Replicas: 6), ct);
        Assert.True(code == 0, text);
        Assert.Contains("120 (6 x 20)", Row(text), StringComparison.Ordinal);
        Assert.Contains("capped at 20 by max_db_connections", text, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task TheApplicationSide_IsSetAgainst_MaxClientConn()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        (int code, string text) = await RunAsync("max_client_conn = 100", new BudgetOptions(Replicas: 2, AppWorkers: 8), ct);
        Assert.True(code == 1, text);
        Assert.Contains("2 replicas x 8 workers x (5 pool_size + 10 max_overflow) = 240 client connections; PgProxy takes 200", text, StringComparison.Ordinal);
        Assert.Contains("without a pooler the application would need up to 240 connections here", text, StringComparison.Ordinal);

        (code, text) = await RunAsync("max_client_conn = 1000", new BudgetOptions(Replicas: 2, AppWorkers: 8), ct);
        Assert.True(code == 0, text);
    }

    [Fact(Timeout = 60_000)]
    public async Task AServerThatCannotBeRead_IsUnknown_Exit2()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        (int code, string text) = await RunAsync("", new BudgetOptions(), ct, port: 1);
        Assert.Equal(2, code);
        Assert.Contains("UNKNOWN", text, StringComparison.Ordinal);
        Assert.Contains("could not read its limits", text, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Row(string text) => text.Split('\n').Single(l => l.StartsWith("127.0.0.1:", StringComparison.Ordinal)).TrimEnd();

    private async Task<(int Code, string Text)> RunAsync(string proxyLines, BudgetOptions options, CancellationToken ct, int? port = null)
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, "users.txt"), $"\"{PostgresFixture.Alice}\" \"{PostgresFixture.AlicePassword}\"\n", ct);
        string path = Path.Combine(_dir, "proxy.toml");
        await File.WriteAllTextAsync(path, $"""
            [proxy]
            {proxyLines}
            [auth]
            type = "scram-sha-256"
            file = "users.txt"
            [databases.{PostgresFixture.Database}]
            host = "{pg.Host}"
            port = {(port ?? pg.Port).ToString(CultureInfo.InvariantCulture)}
            """, ct);
        ConfigResult result = ConfigLoader.LoadFile(path);
        Assert.Empty(result.Errors);
        var errors = new List<string>();
        UserList users = UserList.Load(result.Config!.Auth.File!, errors);
        using var output = new StringWriter();
        int code = await Budget.RunAsync(result.Config, users, options, output, ct);
        return (code, output.ToString());
    }
}
