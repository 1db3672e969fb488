using System.Text;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    private static ConfigResult Load(string toml, Func<string, string?>? env = null) =>
        ConfigLoader.Load(Encoding.UTF8.GetBytes(toml), "proxy.toml", env ?? (_ => null));

    private const string Minimal = """
        [auth]
        type = "trust"

        [databases.app]
        host = "10.0.0.1"
        """;

    [Fact]
    public void Minimal_Config_HasDocumentedDefaults()
    {
        ConfigResult r = Load(Minimal);
        Assert.Empty(r.Errors);
        ProxyConfig c = r.Config!;
        Assert.Equal(["127.0.0.1:6432"], c.Proxy.Listen);
        Assert.Equal(PoolMode.Session, c.Proxy.PoolMode);
        Assert.Equal(20, c.Proxy.DefaultPoolSize);
        Assert.Equal(100, c.Proxy.MaxClientConn);
        Assert.Equal(TimeSpan.FromSeconds(120), c.Proxy.QueryWaitTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), c.Proxy.ReservePoolTimeout);
        Assert.Equal("DISCARD ALL", c.Proxy.ServerResetQuery);
        Assert.False(c.Proxy.ServerRoundRobin);
        Assert.Equal(TimeSpan.FromSeconds(5), c.Proxy.ShutdownDelay);
        Assert.Equal(TimeSpan.FromSeconds(30), c.Proxy.ShutdownTimeout);
        Assert.Equal("127.0.0.1:9127", c.Http.Listen);
        DatabaseConfig db = c.FindDatabase("app")!;
        Assert.Equal("10.0.0.1", db.Host);
        Assert.Equal(5432, db.Port);
        Assert.Equal("app", db.BackendDbName("app"));
        Assert.Null(c.FindDatabase("other"));
    }

    [Fact]
    public void Http_Listen_TakesHostPort_OrEmptyToDisable_AndRefusesAnythingElse()
    {
        Assert.Equal("0.0.0.0:9200", Load(Minimal + "\n[http]\nlisten = \"0.0.0.0:9200\"\n").Config!.Http.Listen);
        Assert.Equal("", Load(Minimal + "\n[http]\nlisten = \"\"\n").Config!.Http.Listen);
        ConfigResult bad = Load(Minimal + "\n[http]\nlisten = \"metrics-port\"\nport = 1\n");
        Assert.Null(bad.Config);
        Assert.Contains(bad.Errors, e => e.StartsWith("proxy.toml:7:", StringComparison.Ordinal) && e.Contains("[http] listen: 'metrics-port' is not host:port", StringComparison.Ordinal));
        Assert.Contains(bad.Errors, e => e.Contains("unknown key 'port' in [http]", StringComparison.Ordinal));
    }

    [Fact]
    public void Admin_Users_AreStringLists_EmptyByDefault()
    {
        Assert.Empty(Load(Minimal).Config!.Admin.AdminUsers);
        AdminSection a = Load(Minimal + "\n[admin]\nadmin_users = [\"ops\", \"dba\"]\nstats_users = \"grafana\"\n").Config!.Admin;
        Assert.Equal(["ops", "dba"], a.AdminUsers);
        Assert.Equal(["grafana"], a.StatsUsers);
        Assert.Empty(Load(Minimal + "\n[admin]\nadmin_users = []\n").Errors);
        ConfigResult bad = Load(Minimal + "\n[admin]\nadmin_users = 3\nsuper_users = []\n");
        Assert.Contains(bad.Errors, e => e.Contains("admin_users: expected a string or an array of strings", StringComparison.Ordinal));
        Assert.Contains(bad.Errors, e => e.Contains("unknown key 'super_users' in [admin]", StringComparison.Ordinal));
    }

    [Fact]
    public void StatsPeriod_IsAPositiveDuration()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), Load(Minimal).Config!.Proxy.StatsPeriod);
        Assert.Equal(TimeSpan.FromSeconds(15), Load("[proxy]\nstats_period = \"15s\"\n" + Minimal).Config!.Proxy.StatsPeriod);
        Assert.Contains(Load("[proxy]\nstats_period = \"0\"\n" + Minimal).Errors, e => e.Contains("stats_period: must be longer than 0", StringComparison.Ordinal));
    }

    [Fact]
    public void MemoryTrimDelay_IsADuration_ZeroTurnsItOff_SetChangesIt()
    {
        Assert.Equal(TimeSpan.FromSeconds(5), Load(Minimal).Config!.Proxy.MemoryTrimDelay);
        Assert.Equal(TimeSpan.Zero, Load("[proxy]\nmemory_trim_delay = \"0\"\n" + Minimal).Config!.Proxy.MemoryTrimDelay);
        Assert.Contains("memory_trim_delay = \"30s\"", ConfigPrinter.Print(Load("[proxy]\nmemory_trim_delay = \"30s\"\n" + Minimal).Config!), StringComparison.Ordinal);
        Assert.Contains(Load("[proxy]\nmemory_trim_delay = \"soon\"\n" + Minimal).Errors, e => e.Contains("memory_trim_delay", StringComparison.Ordinal));
        ProxyConfig running = Load(Minimal).Config!;
        Assert.Equal(TimeSpan.FromMinutes(1), ConfigLoader.Set(running, "memory_trim_delay", "\"1m\"").Config!.Proxy.MemoryTrimDelay);
    }

    [Fact]
    public void Set_ChangesOneProxyKey_ValidatedAsTheFileIs()
    {
        ProxyConfig running = Load("[proxy]\ndefault_pool_size = 10\nmin_pool_size = 2\n" + Minimal).Config!;
        ProxyConfig set = ConfigLoader.Set(running, "default_pool_size", "30").Config!;
        Assert.Equal(30, set.Proxy.DefaultPoolSize);
        Assert.Equal(2, set.Proxy.MinPoolSize); // the rest as it was
        Assert.Same(running.Databases, set.Databases);
        Assert.Equal(TimeSpan.FromSeconds(5), ConfigLoader.Set(running, "query_timeout", "\"5s\"").Config!.Proxy.QueryTimeout);

        Assert.Contains(ConfigLoader.Set(running, "default_pool_size", "1").Errors, e => e.Contains("min_pool_size must not exceed", StringComparison.Ordinal));
        Assert.Contains(ConfigLoader.Set(running, "nosuch", "1").Errors, e => e.Contains("unknown key 'nosuch' in [proxy]", StringComparison.Ordinal));
        Assert.Contains(ConfigLoader.Set(running, "listen", "\"0.0.0.0:1\"").Errors, e => e.Contains("only with a restart", StringComparison.Ordinal));
        Assert.Contains(ConfigLoader.Set(running, "io_threads", "1").Errors, e => e.Contains("SET io_threads: io_threads changes only with a restart", StringComparison.Ordinal));
        Assert.NotEmpty(ConfigLoader.Set(running, "query_timeout", "5").Errors);
        Assert.NotEmpty(ConfigLoader.Set(running, "default_pool_size", "[").Errors);
    }

    [Fact]
    public void Diff_NamesChangedKeys_AddedAndRemovedSections_AndChangedPasswordsWithoutTheirValues()
    {
        ProxyConfig old = Load("[proxy]\ndefault_pool_size = 10\n" + Minimal + "\npassword = \"old-secret\"\n[databases.gone]\nhost = \"h\"\n").Config!;
        ProxyConfig next = Load("[proxy]\ndefault_pool_size = 12\nlisten = \"0.0.0.0:7000\"\nio_threads = 3\n" + Minimal +
                                "\npassword = \"new-secret\"\n[databases.fresh]\nhost = \"h\"\n").Config!;
        List<string> changes = ConfigDiff.Changes(old, Core.Auth.UserList.Empty, next, Core.Auth.UserList.Empty);
        Assert.Contains("proxy.default_pool_size: 10 -> 12", changes);
        Assert.Contains("databases.fresh: added", changes);
        Assert.Contains("databases.gone: removed", changes);
        Assert.Contains("databases.app.password: changed", changes);
        Assert.DoesNotContain(changes, c => c.Contains("secret", StringComparison.Ordinal));

        Assert.Equal(["proxy.listen", "proxy.io_threads"], ConfigDiff.RestartOnly(old, next));
        ProxyConfig applied = ConfigDiff.KeepRestartOnly(old, next);
        Assert.Equal(old.Proxy.Listen, applied.Proxy.Listen);
        Assert.Equal(0, applied.Proxy.IoThreads);
        Assert.Equal(12, applied.Proxy.DefaultPoolSize);
    }

    [Fact]
    public void IoThreads_IsACount_ZeroMeaningOnePerCore()
    {
        Assert.Equal(0, Load(Minimal).Config!.Proxy.IoThreads);
        Assert.Equal(1, Load("[proxy]\nio_threads = 1\n" + Minimal).Config!.Proxy.IoThreads);
        Assert.Contains("io_threads = 4", ConfigPrinter.Print(Load("[proxy]\nio_threads = 4\n" + Minimal).Config!), StringComparison.Ordinal);
        Assert.Contains(Load("[proxy]\nio_threads = -1\n" + Minimal).Errors, e => e.Contains("io_threads", StringComparison.Ordinal));
        Assert.Contains(Load("[proxy]\nio_threads = 1025\n" + Minimal).Errors, e => e.Contains("io_threads", StringComparison.Ordinal));
        Assert.NotEmpty(Load("[proxy]\nio_threads = \"2\"\n" + Minimal).Errors);
    }

    [Fact]
    public void ShutdownDelayAndTimeout_AreDurations()
    {
        Assert.Equal(TimeSpan.Zero, Load("[proxy]\nshutdown_delay = \"0\"\n" + Minimal).Config!.Proxy.ShutdownDelay);
        Assert.Equal(TimeSpan.FromSeconds(20), Load("[proxy]\nshutdown_delay = \"20s\"\n" + Minimal).Config!.Proxy.ShutdownDelay);
        Assert.NotEmpty(Load("[proxy]\nshutdown_delay = 5\n" + Minimal).Errors);
        Assert.Equal(TimeSpan.FromMinutes(2), Load("[proxy]\nshutdown_timeout = \"2m\"\n" + Minimal).Config!.Proxy.ShutdownTimeout);
    }

    [Fact]
    public void Fallback_Database_MatchesAnyName()
    {
        ConfigResult r = Load("[auth]\ntype = \"trust\"\n[databases.\"*\"]\nport = 5433\n");
        Assert.Empty(r.Errors);
        DatabaseConfig db = r.Config!.FindDatabase("whatever")!;
        Assert.Equal("whatever", db.BackendDbName("whatever"));
        Assert.Equal(5433, db.Port);
    }

    [Fact]
    public void UnknownKeys_AndBadValues_AreAllReported_WithFileLineColumn()
    {
        ConfigResult r = Load("""
            [proxy]
            listen = "127.0.0.1:6432"
            pool_sise = 10
            query_wait_timeout = 30
            reserve_pool_timeout = "5 minutes"
            default_pool_size = 0
            pool_mode = "banana"

            [auth]
            type = "trust"

            [databases.app]
            port = "5432"
            """);
        Assert.Null(r.Config);
        Assert.Contains("proxy.toml:3:1: unknown key 'pool_sise' in [proxy]", r.Errors);
        Assert.Contains("proxy.toml:4:1: query_wait_timeout: expected a string, got integer 30", r.Errors);
        Assert.Contains(r.Errors, e => e.StartsWith("proxy.toml:5:1: reserve_pool_timeout: expected a duration", StringComparison.Ordinal));
        Assert.Contains("proxy.toml:6:1: default_pool_size: expected an integer from 1 to 100000, got 0", r.Errors);
        Assert.Contains(r.Errors, e => e.StartsWith("proxy.toml:7:1: pool_mode: expected one of \"session\"", StringComparison.Ordinal));
        Assert.Contains("proxy.toml:13:1: port: expected an integer, got a string", r.Errors);
        Assert.Equal(6, r.Errors.Count);
    }

    [Fact]
    public void TomlSyntaxError_HasPosition()
    {
        ConfigResult r = Load("[proxy]\nlisten = \"unterminated\n");
        Assert.Null(r.Config);
        Assert.StartsWith("proxy.toml:2:", Assert.Single(r.Errors), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[proxy]\nlisten = \"a:1\"\nlisten = \"b:1\"\n", "proxy.toml:3:1: The key `proxy.listen` is already defined at 2:1")]
    [InlineData("[proxy]\nlisten = \"a:1\"\n[auth]\n[proxy]\n", "proxy.toml:4:1: The key `proxy` is already defined at 1:1")]
    [InlineData("[proxy\n", "proxy.toml:1:7: ")]
    [InlineData("[proxy]\ndefault_pool_size = \n", "proxy.toml:2:21: ")]
    public void DuplicateKeysAndTables_AndSyntax_AreRejected_WithPositions(string toml, string expected)
    {
        ConfigResult r = Load(toml);
        Assert.Null(r.Config);
        Assert.StartsWith(expected, Assert.Single(r.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void DottedAndInlineKeys_ArePositioned_AndUnknownOnesReported()
    {
        ConfigResult r = Load("[auth]\ntype = \"trust\"\n[databases]\napp = { port = 5433,\n  prot = 1 }\nother.host = \"h\"\nother.pool_sise = 1\n");
        Assert.Null(r.Config);
        Assert.Contains("proxy.toml:5:3: unknown key 'prot' in [databases.app]", r.Errors);
        Assert.Contains("proxy.toml:7:7: unknown key 'pool_sise' in [databases.other]", r.Errors);
        Assert.Equal(2, r.Errors.Count);
    }

    [Fact]
    public void EnvironmentReferences_AreExpanded_AndMissingOnesReported()
    {
        var env = new Dictionary<string, string> { ["DB_PASSWORD"] = "s3cret", ["DB_HOST"] = "db.internal" };
        ConfigResult r = Load(Minimal + "\npassword = \"${DB_PASSWORD}\"\n[databases.other]\nhost = \"${DB_HOST}\"\n", k => env.GetValueOrDefault(k));
        Assert.Empty(r.Errors);
        Assert.Equal("s3cret", r.Config!.Databases["app"].Password);
        Assert.Equal("db.internal", r.Config.Databases["other"].Host);

        ConfigResult missing = Load(Minimal + "\npassword = \"${NOPE}\"\n");
        Assert.Contains("proxy.toml:6:1: password: environment variable 'NOPE' is not set", missing.Errors);
    }

    [Fact]
    public void CrossField_Rules()
    {
        ConfigResult r = Load("[proxy]\ndefault_pool_size = 2\nmin_pool_size = 3\n[auth]\ntype = \"md5\"\n");
        Assert.Contains(r.Errors, e => e.Contains("min_pool_size must not exceed default_pool_size", StringComparison.Ordinal));
        Assert.Contains(r.Errors, e => e.Contains("[auth] file is required", StringComparison.Ordinal));
        Assert.Contains(r.Errors, e => e.Contains("no databases configured", StringComparison.Ordinal));
    }

    [Fact]
    public void PoolMode_PerProxyDatabaseAndUser()
    {
        ConfigResult r = Load("[proxy]\npool_mode = \"transaction\"\nmax_prepared_statements = 0\n" + Minimal +
                              "\npool_mode = \"statement\"\n[users.bob]\npool_mode = \"session\"\n");
        Assert.Empty(r.Errors);
        Assert.Equal(PoolMode.Transaction, r.Config!.Proxy.PoolMode);
        Assert.Equal(0, r.Config.Proxy.MaxPreparedStatements);
        Assert.Equal(PoolMode.Statement, r.Config.Databases["app"].PoolMode);
        Assert.Equal(PoolMode.Session, r.Config.Users["bob"].PoolMode);
    }

    [Theory]
    [InlineData("250ms", 250)]
    [InlineData("30s", 30_000)]
    [InlineData("5m", 300_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData("0", 0)]
    public void Durations(string text, double ms)
    {
        Assert.True(ConfigLoader.TryParseDuration(text, out TimeSpan d));
        Assert.Equal(ms, d.TotalMilliseconds);
    }

    [Theory]
    [InlineData("30")]
    [InlineData("-1s")]
    [InlineData("1 s")]
    [InlineData("1w")]
    public void BadDurations(string text) => Assert.False(ConfigLoader.TryParseDuration(text, out _));

    [Fact]
    public void Printer_MasksSecrets_AndPrintsEveryKey()
    {
        ConfigResult r = Load(Minimal + "\nuser = \"app\"\npassword = \"hunter2\"\n");
        string printed = ConfigPrinter.Print(r.Config!);
        Assert.DoesNotContain("hunter2", printed, StringComparison.Ordinal);
        Assert.Contains("password = \"********\"", printed, StringComparison.Ordinal);
        // The printout is itself a valid config that loads to the same values.
        ConfigResult again = Load(printed.Replace("# dbname", "#", StringComparison.Ordinal));
        Assert.Empty(again.Errors);
        Assert.Equal(r.Config!.Proxy with { Listen = [] }, again.Config!.Proxy with { Listen = [] });
        Assert.Equal(r.Config.Proxy.Listen, again.Config.Proxy.Listen);
    }
}
