using System.Globalization;
using System.Text;

namespace PgProxy.IntegrationTests;

/// <summary>
/// Startup settings are applied as PostgreSQL applies them: "options" first, then the other parameters, each on top of
/// the value before it. Checked against a direct connection with the real drivers' startup packets.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class StartupSettingsTests(PostgresFixture pg)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private async Task<string> PsqlShowAsync(int port, string setting, Dictionary<string, string> extraEnv, CancellationToken ct = default)
    {
        var env = new Dictionary<string, string>(extraEnv)
        {
            ["PGHOST"] = "127.0.0.1",
            ["PGPORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["PGUSER"] = "postgres",
            ["PGPASSWORD"] = PostgresFixture.SuperPassword,
            ["PGDATABASE"] = PostgresFixture.Database,
            ["PGCONNECT_TIMEOUT"] = "20",
        };
        ProcessRunner.Result run = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", $"SHOW {setting}"], TimeSpan.FromSeconds(30), env, ct: ct);
        Assert.True(run.ExitCode == 0, run.All);
        return run.StdOut.Trim();
    }

    [Theory(Timeout = 60_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task Libpq_PgOptionsAndPgDateStyle_AsDirect(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 1");
        var env = new Dictionary<string, string> { ["PGOPTIONS"] = "-c DateStyle=ISO,DMY -c work_mem=7MB", ["PGDATESTYLE"] = "ISO" };
        string direct = await PsqlShowAsync(pg.Port, "DateStyle", env, ct: TestContext.Current.CancellationToken);
        Assert.Equal("ISO, DMY", direct);
        Assert.Equal(direct, await PsqlShowAsync(proxy.Port, "DateStyle", env, ct: TestContext.Current.CancellationToken));
        Assert.Equal("7MB", await PsqlShowAsync(proxy.Port, "work_mem", env, ct: TestContext.Current.CancellationToken));
        // The next client, on the same server, has its own settings.
        Assert.Equal("ISO, MDY", await PsqlShowAsync(proxy.Port, "DateStyle", [], ct: TestContext.Current.CancellationToken));
    }

    [Theory(Timeout = 60_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task Npgsql_Options_AsDirect(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 1");
        await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "Options=-c DateStyle=SQL,DMY -c search_path=pg_catalog", ct: TestContext.Current.CancellationToken);
        Assert.Equal("SQL, DMY", conn.PostgresParameters["DateStyle"]);
        await using var cmd = new NpgsqlCommand("SELECT current_setting('DateStyle') || '|' || current_setting('search_path')", conn);
        Assert.Equal("SQL, DMY|pg_catalog", await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    /// <summary>PgJDBC's startup packet: DateStyle=ISO and options=-c DateStyle=ISO,DMY (with extra_float_digits, TimeZone).</summary>
    [Theory(Timeout = 60_000)]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task PgJdbcStartupPacket_DateStyleIsoDmy_AtLoginAndOnTheServer(string mode)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, $"pool_mode = \"{mode}\"\ndefault_pool_size = 1", authType: "trust");
        await using RawPgClient c = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await c.SendAsync(RawPgClient.Startup(196608, ("user", "postgres"), ("database", PostgresFixture.Database), ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"), ("TimeZone", "UTC"), ("extra_float_digits", "2"), ("options", "-c DateStyle=ISO,DMY")), ct: TestContext.Current.CancellationToken);
        var told = new List<string>();
        await ReadUntilReadyAsync(c, told, null);
        Assert.Equal(["ISO, DMY"], told); // what a direct connection reports at login

        await c.SendAsync(RawPgClient.Message('Q', [.. "SHOW DateStyle"u8, 0]), ct: TestContext.Current.CancellationToken);
        var shown = new List<string>();
        await ReadUntilReadyAsync(c, told, shown);
        Assert.Equal(["ISO, DMY"], shown);
        Assert.All(told, t => Assert.Equal("ISO, DMY", t)); // nothing contradicts it later
    }

    private static async Task ReadUntilReadyAsync(RawPgClient c, List<string> dateStyles, List<string>? rows)
    {
        while (true)
        {
            (char Type, byte[] Body) m = (await c.ReadMessageAsync(Wait))!.Value;
            Assert.NotEqual('E', m.Type);
            if (m.Type == 'S' && Encoding.UTF8.GetString(m.Body).Split('\0') is ["DateStyle", string value, ..])
            {
                dateStyles.Add(value);
            }
            else if (m.Type == 'D')
            {
                rows?.Add(Encoding.UTF8.GetString(m.Body, 6, m.Body.Length - 6));
            }
            else if (m.Type == 'Z')
            {
                return;
            }
        }
    }
}
