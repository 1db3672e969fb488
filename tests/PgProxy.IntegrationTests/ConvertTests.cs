using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.Tools;

namespace PgProxy.IntegrationTests;

/// <summary>
/// pgproxy convert: a PgBouncer config becomes a proxy.toml that pgproxy check accepts, with PgBouncer's names kept,
/// times given units, and every key it does not carry over named with the reason; tried on PgBouncer's own example
/// config (Debian's package ships it) with every key uncommented.
/// </summary>
public sealed partial class ConvertTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-convert").FullName;

    [Fact]
    public void ATypicalConfig_Converts_ToOneThatPassesCheck()
    {
        File.WriteAllText(Path.Combine(_dir, "userlist.txt"), "\"app\" \"secret\"\n");
        File.WriteAllText(Path.Combine(_dir, "extra.ini"), "[users]\napp = pool_mode=session max_user_connections=7\n");
        string ini = Write("pgbouncer.ini", """
            [databases]
            appdb = host=db.internal port=5433 dbname=app_prod pool_size=15 reserve_pool=3 client_encoding=UTF8
            forced = host=db.internal user=svc password='p w\'d' pool_mode=statement
            * = host=10.0.0.5

            [pgbouncer]
            listen_addr = *
            listen_port = 7432
            auth_type = scram-sha-256
            auth_file = userlist.txt
            pool_mode = transaction
            max_client_conn = 500
            default_pool_size = 10
            reserve_pool_timeout = 2.5
            server_lifetime = 1800
            query_wait_timeout = 0
            server_round_robin = 1
            admin_users = admin, ops
            logfile = /var/log/pgbouncer.log
            tcp_keepalive = 1
            peer_id = 1
            %include extra.ini

            [peers]
            1 = host=10.0.0.11
            2 = host=10.0.0.12 port=6433
            """);

        PgBouncerIni.Result result = PgBouncerIni.Convert(ini);
        string toml = result.Toml;
        Assert.Contains("listen = [\"0.0.0.0:7432\"]", toml, StringComparison.Ordinal);
        Assert.Contains("reserve_pool_timeout = \"2500ms\"", toml, StringComparison.Ordinal);
        Assert.Contains("server_lifetime = \"1800s\"", toml, StringComparison.Ordinal);
        Assert.Contains("query_wait_timeout = \"0\"", toml, StringComparison.Ordinal);
        Assert.Contains("server_round_robin = true", toml, StringComparison.Ordinal);
        Assert.Contains("admin_users = [\"admin\", \"ops\"]", toml, StringComparison.Ordinal);
        Assert.Contains($"file = \"{Path.Combine(_dir, "userlist.txt")}\"", toml, StringComparison.Ordinal);
        Assert.Contains(result.Warnings, w => w.Contains("logfile is not carried over", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.Contains("tcp_keepalive is not carried over", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.Contains("client_encoding is not carried over", StringComparison.Ordinal));

        string path = Write("proxy.toml", toml);
        ConfigResult check = ConfigLoader.LoadFile(path);
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors) + "\n" + toml);
        ProxyConfig config = check.Config!;
        Assert.Equal(PoolMode.Transaction, config.Proxy.PoolMode);
        Assert.Equal(500, config.Proxy.MaxClientConn);
        Assert.Equal(AuthType.ScramSha256, config.Auth.Type);
        DatabaseConfig app = config.Databases["appdb"];
        Assert.Equal(("db.internal", 5433, "app_prod", 15, 3), (app.Host, app.Port, app.DbName, app.PoolSize, app.ReservePoolSize));
        DatabaseConfig forced = config.Databases["forced"];
        Assert.Equal(("svc", "p w'd", PoolMode.Statement), (forced.User, forced.Password, forced.PoolMode));
        Assert.Equal("10.0.0.5", config.Databases["*"].Host);
        Assert.Equal((PoolMode.Session, 7), (config.Users["app"].PoolMode, config.Users["app"].MaxUserConnections));
        Assert.Equal(1, config.Proxy.PeerId);
        Assert.Equal(("10.0.0.12", 6433), (config.Peers[2].Host, config.Peers[2].Port));
    }

    [Fact]
    public void PgBouncersOwnExample_WithEveryKeyUncommented_DropsNoKeySilently()
    {
        const string example = "/etc/pgbouncer/pgbouncer.ini"; // scripts/test.sh installs Debian's pgbouncer for it
        Assert.True(File.Exists(example), $"{example} is missing: install Debian's pgbouncer package");
        // Uncomment every ";key = value" line: each key the example documents is then set.
        string text = KeyComment().Replace(File.ReadAllText(example), "$1");
        string ini = Write("example.ini", text);
        int start = text.IndexOf("[pgbouncer]", StringComparison.Ordinal);
        int end = text.IndexOf("\n[", start + 1, StringComparison.Ordinal);
        string settings = end < 0 ? text[start..] : text[start..end];
        string[] keys = [.. IniKey().Matches(settings).Select(m => m.Groups[1].Value).Distinct()];
        Assert.True(keys.Length > 60, $"the example sets {keys.Length} keys");

        PgBouncerIni.Result result = PgBouncerIni.Convert(ini);
        string tomlKeys = string.Join("\n", result.Toml.Split('\n').Where(l => l.Contains(" = ", StringComparison.Ordinal)));
        var mapped = new Dictionary<string, string> { ["listen_addr"] = "listen", ["listen_port"] = "listen", ["auth_type"] = "type", ["auth_file"] = "file", ["verbose"] = "level" };
        foreach (string key in keys)
        {
            string target = mapped.GetValueOrDefault(key, key);
            bool carried = Regex.IsMatch(tomlKeys, $"^{Regex.Escape(target)} = ", RegexOptions.Multiline);
            bool named = result.Warnings.Any(w => w.Contains($": {key} ", StringComparison.Ordinal) || w.Contains($": {key} =", StringComparison.Ordinal) ||
                                                  w.Contains($" {key} is not carried over", StringComparison.Ordinal));
            Assert.True(carried || named, $"{key}: neither carried over nor named in a warning");
        }

        // Its example databases each become a [databases."name"] section.
        foreach (string db in new[] { "foodb", "bardb", "forcedb" })
        {
            Assert.Contains($"[databases.\"{db}\"]", result.Toml, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void RunFromAPgBouncerIni_LoadsItConverted_AtEveryLoad()
    {
        File.WriteAllText(Path.Combine(_dir, "userlist.txt"), "\"app\" \"secret\"\n");
        string ini = Write("bouncer.ini", "[databases]\napp = host=10.1.1.1\n[pgbouncer]\nauth_type = scram-sha-256\nauth_file = userlist.txt\ndefault_pool_size = 7\n");
        Program.TreatAsPgBouncerIni(ini); // what `pgproxy run --pgbouncer-ini FILE` does
        (ProxyConfig? config, _, List<string> errors) = Program.Load(ini);
        Assert.Empty(errors);
        Assert.Equal((7, "10.1.1.1"), (config!.Proxy.DefaultPoolSize, config.Databases["app"].Host));

        // A reload reads the ini again.
        File.WriteAllText(ini, File.ReadAllText(ini).Replace("default_pool_size = 7", "default_pool_size = 9", StringComparison.Ordinal));
        Assert.Equal(9, Program.Load(ini).Config!.Proxy.DefaultPoolSize);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [GeneratedRegex(@"^;\s*([a-z_*][a-zA-Z0-9_*]*\s*=)", RegexOptions.Multiline)]
    private static partial Regex KeyComment();

    [GeneratedRegex(@"^([a-z_][a-z0-9_]*)\s*=", RegexOptions.Multiline)]
    private static partial Regex IniKey();
}
