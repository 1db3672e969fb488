using System.Globalization;
using System.Text;

namespace PgProxy.IntegrationTests;

/// <summary>The admin console through psql and raw protocol: PgBouncer's columns and types, who may log in, errors.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AdminConsoleTests(PostgresFixture pg)
{
    // alice is a stats user, bob an admin user; postgres (in the userlist too) is neither.
    private const string Admin = "[admin]\nadmin_users = [\"bob\"]\nstats_users = [\"alice\"]\n";

    [Fact(Timeout = 60_000)]
    public async Task ShowCommands_HavePgBouncersColumns_InOrder_AndThePoolsNumbers()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 7", authType: "md5", extra: Admin);
        await using (NpgsqlConnection app = await proxy.OpenAsync(ct: ct))
        await using (var cmd = new NpgsqlCommand("SELECT 1", app))
        {
            await cmd.ExecuteScalarAsync(ct); // the appdb/alice pool now has one idle server
        }

        // The pool may have opened one server or two (the welcome's and the query's); the console must say what it holds.
        Core.Pooling.Pool pool = proxy.Services.Pools.Pools.Single();
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (pool.Counts is var c && (c.Idle != c.Total || c.Idle == 0))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the pool did not settle: {pool.Counts}");
            await Task.Delay(20, ct);
        }

        int idle = pool.Counts.Idle;
        string[] pools = await ShowAsync(proxy, "pgproxy", PostgresFixture.Alice, PostgresFixture.AlicePassword, "SHOW POOLS", ct);
        Assert.Equal("database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|" +
                     "sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode|load_balance_hosts", pools[0]);
        Assert.Contains($"{PostgresFixture.Database}|{PostgresFixture.Alice}|0|0|0|0|0|0|0|{idle}|0|0|0|0|0|transaction|", pools);

        string[] databases = await ShowAsync(proxy, "pgbouncer", "bob", PostgresFixture.BobPassword, "SHOW DATABASES", ct);
        Assert.Equal("name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool_size|server_lifetime|pool_mode|" +
                     "load_balance_hosts|max_connections|current_connections|max_client_connections|current_client_connections|paused|disabled",
            databases[0]);
        Assert.Contains(databases, l => l.StartsWith($"{PostgresFixture.Database}|{pg.Host}|{pg.Port}|{PostgresFixture.Database}||7|0|0|3600||", StringComparison.Ordinal)
                                        && l.EndsWith($"|0|{idle}|0|0|0|0", StringComparison.Ordinal));

        string[] users = await ShowAsync(proxy, "pgproxy", "bob", PostgresFixture.BobPassword, "show users;", ct);
        Assert.Equal("name|pool_size|reserve_pool_size|pool_mode|max_user_connections|current_connections|max_user_client_connections|current_client_connections",
            users[0]);
        Assert.Contains($"{PostgresFixture.Alice}||||0|{idle}|0|0", users);

        string[] lists = await ShowAsync(proxy, "pgproxy", "bob", PostgresFixture.BobPassword, "SHOW LISTS", ct);
        Assert.Equal("list|items", lists[0]);
        Assert.Equal(["databases", "users", "peers", "pools", "peer_pools", "free_clients", "used_clients", "login_clients", "free_servers",
            "used_servers", "dns_names", "dns_zones", "dns_queries", "dns_pending"], lists.Skip(1).Select(l => l.Split('|')[0]));
        Assert.Contains("pools|1", lists);
        Assert.Contains($"used_servers|{idle}", lists);

        Assert.Equal(["key|value", "active|yes", "paused|no", "suspended|no"],
            await ShowAsync(proxy, "pgproxy", "bob", PostgresFixture.BobPassword, "SHOW STATE", ct));
        string[] version = await ShowAsync(proxy, "pgproxy", "bob", PostgresFixture.BobPassword, "SHOW VERSION", ct);
        Assert.Equal("version", version[0]);
        Assert.StartsWith("PgProxy ", version[1], StringComparison.Ordinal);

        string[] config = await ShowAsync(proxy, "pgproxy", "bob", PostgresFixture.BobPassword, "SHOW CONFIG", ct);
        Assert.Equal("key|value|default|changeable", config[0]);
        Assert.Contains("default_pool_size|7|20|yes", config); // SET can change it
        Assert.Contains("pool_mode|transaction|session|yes", config);
        Assert.Contains("io_threads|0|0|no", config); // only a restart changes it
        Assert.Contains("memory_trim_delay|5s|5s|yes", config);
        Assert.Contains("admin.stats_users|[\"alice\"]|[]|no", config);
    }

    [Fact(Timeout = 60_000)]
    public async Task RowDescription_HasPgBouncersTypes_AndAnUnknownCommandIsAnErrorThatKeepsTheConsole()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust", extra: Admin);
        await using RawPgClient raw = await ConsoleAsync(proxy, "bob", "pgproxy", ct);

        await raw.SendAsync(Query("SHOW POOLS"), ct);
        List<(char Type, byte[] Body)> reply = await ReadUntilReadyAsync(raw, ct);
        byte[] description = reply.First(m => m.Type == 'T').Body;
        Assert.Equal(new[] { 25, 25, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 25, 25 }, TypeOids(description));
        Assert.Equal("SHOW", CString(reply.First(m => m.Type == 'C').Body));

        await raw.SendAsync(Query("SHOW NONSENSE"), ct);
        reply = await ReadUntilReadyAsync(raw, ct);
        Dictionary<char, string> error = RawPgClient.ErrorFields(reply.Single(m => m.Type == 'E').Body);
        Assert.Equal("ERROR", error['S']);
        Assert.Equal("08P01", error['C']);
        Assert.Equal("invalid command 'SHOW NONSENSE', use SHOW HELP;", error['M']);

        // Still usable after the error.
        await raw.SendAsync(Query("SHOW HELP"), ct);
        reply = await ReadUntilReadyAsync(raw, ct);
        Assert.Contains("SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION", RawPgClient.ErrorFields(reply.Single(m => m.Type == 'N').Body)['D'], StringComparison.Ordinal);

        // The extended protocol is refused, and the connection closed (PgBouncer does the same).
        await raw.SendAsync(RawPgClient.Message('P', Encoding.UTF8.GetBytes("\0SHOW POOLS\0\0\0")), ct);
        (char Type, byte[] Body)? fatal = await raw.ReadMessageAsync(TimeSpan.FromSeconds(10), ct);
        Assert.Equal('E', fatal!.Value.Type);
        Dictionary<char, string> f = RawPgClient.ErrorFields(fatal.Value.Body);
        Assert.Equal("FATAL", f['S']);
        Assert.Equal("08P01", f['C']);
        Assert.Contains("extended query protocol not supported", f['M'], StringComparison.Ordinal);
        Assert.True(await raw.IsClosedAsync(TimeSpan.FromSeconds(10), ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task OnlyAdminAndStatsUsers_MayLogIn_WithTheirOwnPassword()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        // md5, so that bob (whose userlist secret is an md5 hash) can log in at all.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "md5", extra: Admin);
        ProcessRunner.Result ok = await PsqlAsync(proxy, "pgbouncer", "bob", PostgresFixture.BobPassword, "SHOW VERSION", ct);
        Assert.True(ok.ExitCode == 0, ok.All);
        ProcessRunner.Result notListed = await PsqlAsync(proxy, "pgproxy", "postgres", PostgresFixture.SuperPassword, "SHOW POOLS", ct);
        Assert.NotEqual(0, notListed.ExitCode);
        Assert.Contains("FATAL:  not allowed", notListed.StdErr, StringComparison.Ordinal);

        ProcessRunner.Result wrongPassword = await PsqlAsync(proxy, "pgbouncer", "bob", "not-bobs", "SHOW POOLS", ct);
        Assert.NotEqual(0, wrongPassword.ExitCode);
        Assert.Contains("password authentication failed for user \"bob\"", wrongPassword.StdErr, StringComparison.Ordinal);

        // Without [admin], nobody.
        await using TestProxy plain = await TestProxy.StartAsync(pg);
        ProcessRunner.Result none = await PsqlAsync(plain, "pgproxy", PostgresFixture.Alice, PostgresFixture.AlicePassword, "SHOW VERSION", ct);
        Assert.Contains("FATAL:  not allowed", none.StdErr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Drain_ClosesAnIdleConsoleSession_With57P01()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust", extra: Admin);
        await using RawPgClient raw = await ConsoleAsync(proxy, "alice", "pgbouncer", ct);

        Assert.True(await proxy.Host.DrainAsync(TimeSpan.FromSeconds(20), ct));
        (char Type, byte[] Body)? fatal = await raw.ReadMessageAsync(TimeSpan.FromSeconds(10), ct);
        Assert.Equal('E', fatal!.Value.Type);
        Assert.Equal("57P01", RawPgClient.ErrorFields(fatal.Value.Body)['C']);
        Assert.True(await raw.IsClosedAsync(TimeSpan.FromSeconds(10), ct));
    }

    private async Task<string[]> ShowAsync(TestProxy proxy, string database, string user, string password, string command, CancellationToken ct)
    {
        ProcessRunner.Result r = await PsqlAsync(proxy, database, user, password, command, ct);
        Assert.True(r.ExitCode == 0, r.All);
        return r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('(')).ToArray();
    }

    private Task<ProcessRunner.Result> PsqlAsync(TestProxy proxy, string database, string user, string password, string command, CancellationToken ct) =>
        ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"), ["-X", "-A", "-v", "ON_ERROR_STOP=1", "-c", command], TimeSpan.FromSeconds(30),
            new Dictionary<string, string>
            {
                ["PGHOST"] = "127.0.0.1",
                ["PGPORT"] = proxy.Port.ToString(CultureInfo.InvariantCulture),
                ["PGUSER"] = user,
                ["PGPASSWORD"] = password,
                ["PGDATABASE"] = database,
            }, ct: ct);

    /// <summary>A raw protocol 3.0 login to the console (trust), read up to its first ReadyForQuery.</summary>
    private static async Task<RawPgClient> ConsoleAsync(TestProxy proxy, string user, string database, CancellationToken ct)
    {
        RawPgClient raw = await RawPgClient.ConnectAsync(proxy.Port, ct);
        await raw.SendAsync(RawPgClient.Startup(196608, ("user", user), ("database", database)), ct);
        await ReadUntilReadyAsync(raw, ct);
        return raw;
    }

    private static byte[] Query(string sql) => RawPgClient.Message('Q', Encoding.UTF8.GetBytes(sql + "\0"));

    private static async Task<List<(char Type, byte[] Body)>> ReadUntilReadyAsync(RawPgClient raw, CancellationToken ct)
    {
        var messages = new List<(char, byte[])>();
        while (true)
        {
            (char Type, byte[] Body)? m = await raw.ReadMessageAsync(TimeSpan.FromSeconds(10), ct);
            Assert.NotNull(m);
            messages.Add(m.Value);
            if (m.Value.Type == 'Z')
            {
                return messages;
            }

            Assert.NotEqual('E', m.Value.Type == 'E' && RawPgClient.ErrorFields(m.Value.Body)['S'] == "FATAL" ? 'E' : 'x');
        }
    }

    private static int[] TypeOids(byte[] body)
    {
        int count = (body[0] << 8) | body[1];
        var oids = new int[count];
        int pos = 2;
        for (int i = 0; i < count; i++)
        {
            pos = Array.IndexOf(body, (byte)0, pos) + 1; // name
            pos += 4 + 2; // table OID, column number
            oids[i] = (body[pos] << 24) | (body[pos + 1] << 16) | (body[pos + 2] << 8) | body[pos + 3];
            pos += 4 + 2 + 4 + 2; // type OID, size, modifier, format
        }

        return oids;
    }

    private static string CString(byte[] body) => Encoding.UTF8.GetString(body, 0, Array.IndexOf(body, (byte)0));
}
