using System.Globalization;

namespace PgProxy.IntegrationTests;

/// <summary>
/// Transaction mode: session state one client leaves on a server never reaches the next client, and ordinary SQL
/// costs no reset (which would also throw away every prepared statement the server has).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class SessionStateTests(PostgresFixture pg)
{
    private const string OneServer = "pool_mode = \"transaction\"\ndefault_pool_size = 1";

    private async Task<string> PsqlAsync(TestProxy proxy, string sql, CancellationToken ct = default)
    {
        var env = new Dictionary<string, string>
        {
            ["PGHOST"] = "127.0.0.1",
            ["PGPORT"] = proxy.Port.ToString(CultureInfo.InvariantCulture),
            ["PGUSER"] = PostgresFixture.Alice,
            ["PGPASSWORD"] = PostgresFixture.AlicePassword,
            ["PGDATABASE"] = PostgresFixture.Database,
            ["PGCONNECT_TIMEOUT"] = "20",
        };
        ProcessRunner.Result run = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], TimeSpan.FromSeconds(30), env, ct: ct);
        Assert.True(run.ExitCode == 0, run.All);
        return run.StdOut.Trim();
    }

    [Theory(Timeout = 60_000)]
    [InlineData("SET\nwork_mem = '77MB'")]
    [InlineData("/* c */ SET work_mem = '55MB'")]
    [InlineData("-- set it\nset   work_mem='33MB'")]
    [InlineData("SELECT 1; SET work_mem = '22MB'")]
    [InlineData("SELECT set_config('work_mem', '11MB', false)")]
    public async Task SessionSet_OverSimpleQuery_NeverReachesTheNextClient(string sql)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, OneServer);
        await PsqlAsync(proxy, sql, ct: TestContext.Current.CancellationToken);
        Assert.Equal("4MB", await PsqlAsync(proxy, "SHOW work_mem", ct: TestContext.Current.CancellationToken));
    }

    [Theory(Timeout = 60_000)]
    [InlineData("SET\nwork_mem = '77MB'")]
    [InlineData("/* c */ SET work_mem = '55MB'")]
    public async Task SessionSet_OverExtendedQuery_NeverReachesTheNextClient(string sql)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, OneServer);
        await using (NpgsqlConnection a = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken))
        await using (var set = new NpgsqlCommand(sql, a))
        {
            await set.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await using NpgsqlConnection b = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var show = new NpgsqlCommand("SELECT current_setting('work_mem')", b);
        Assert.Equal("4MB", await show.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task OrdinarySqlThatMentionsKeywords_KeepsTheServersPreparedStatements()
    {
        await pg.ExecuteAsync("DROP TABLE IF EXISTS jobs; CREATE TABLE jobs (payload text, attempts int, templates text, temperature float); " +
                              "GRANT ALL ON jobs TO alice", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, OneServer);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var prepared = new NpgsqlCommand("SELECT $1::int + 1", conn))
        {
            prepared.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = 1 });
            await prepared.PrepareAsync(TestContext.Current.CancellationToken);
            Assert.Equal(2, await prepared.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        Assert.Equal("1", await CountProxyStatementsAsync());
        foreach (string sql in new[]
        {
            "INSERT INTO jobs VALUES ('load temp listen prepare', 1, 'templates', 36.6)",
            "SELECT payload, attempts, templates, temperature FROM jobs WHERE payload LIKE '%load %'",
            "UPDATE jobs SET attempts = attempts + 1 WHERE templates = 'set work_mem = 1' -- discard all",
            "SELECT 'pg_advisory_lock(1)', 'set_config(''a'', ''b'', false)' /* declare c cursor with hold */",
            "SELECT set_config('myapp.tenant', '42', true)",
        })
        {
            await PsqlAsync(proxy, sql, ct: TestContext.Current.CancellationToken);
        }

        Assert.Equal("1", await CountProxyStatementsAsync());

        async Task<string> CountProxyStatementsAsync() =>
            await PsqlAsync(proxy, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgproxy%'");
    }

    [Fact(Timeout = 60_000)]
    public async Task ReportedSetting_FollowsItsClient_WithoutAReset()
    {
        string serverZone = await pg.ScalarAsync<string>("SELECT current_setting('TimeZone')", ct: TestContext.Current.CancellationToken);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, OneServer);
        await using NpgsqlConnection a = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using NpgsqlConnection b = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using (var prepared = new NpgsqlCommand("SELECT $1::int + 1", a))
        {
            prepared.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = 1 });
            await prepared.PrepareAsync(TestContext.Current.CancellationToken);
        }

        await using (var set = new NpgsqlCommand("SET TIME ZONE 'Asia/Tokyo'", a))
        {
            await set.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await using var tz = new NpgsqlCommand("SELECT current_setting('TimeZone') || '|' || (SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgproxy%')", b);
        Assert.Equal(serverZone + "|1", await tz.ExecuteScalarAsync(TestContext.Current.CancellationToken)); // the server's own zone, and the statement survived
        await using var mine = new NpgsqlCommand("SELECT current_setting('TimeZone')", a);
        Assert.Equal("Asia/Tokyo", await mine.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }
}
