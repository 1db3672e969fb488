using System.Text.RegularExpressions;
using PgProxy.Core.Configuration;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>Keeps proxy.toml.example, the loader and `pgproxy check` in step: a key that exists is documented, a documented key exists.</summary>
public sealed partial class ExampleConfigTests
{
    private static string ExamplePath => Path.Combine(RepoPaths.Root, "proxy.toml.example");

    [Fact]
    public void Example_Loads_WithoutErrors()
    {
        string dir = Directory.CreateTempSubdirectory("pgproxy-example").FullName;
        try
        {
            File.Copy(ExamplePath, Path.Combine(dir, "proxy.toml"));
            File.WriteAllText(Path.Combine(dir, "userlist.txt"), "\"app\" \"secret\"\n");
            ConfigResult r = ConfigLoader.LoadFile(Path.Combine(dir, "proxy.toml"), _ => null);
            Assert.Empty(r.Errors);
            Assert.Equal(new ProxySection() with { Listen = [] }, r.Config!.Proxy with { Listen = [] });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void EveryKey_CheckPrints_IsDocumented_InTheExample()
    {
        string example = File.ReadAllText(ExamplePath);
        var documented = KeyLine().Matches(example).Select(m => m.Groups[1].Value).ToHashSet();
        ConfigResult r = ConfigLoader.Load(System.Text.Encoding.UTF8.GetBytes("""
            [auth]
            type = "trust"
            [databases.x]
            user = "u"
            password = "p"
            [users.u]
            pool_mode = "session"
            """), "t.toml", _ => null);
        string printed = ConfigPrinter.Print(r.Config!);
        var keys = KeyLine().Matches(printed).Select(m => m.Groups[1].Value).ToHashSet();
        keys.Add("dbname");
        keys.Add("file");
        Assert.Empty(keys.Except(documented));
        Assert.Empty(documented.Except(keys));
    }

    [GeneratedRegex(@"^#?\s*([a-z_]+) = ", RegexOptions.Multiline)]
    private static partial Regex KeyLine();
}
