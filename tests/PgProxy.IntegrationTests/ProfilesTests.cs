using PgProxy.Core.Configuration;

namespace PgProxy.IntegrationTests;

/// <summary>pgproxy init's profiles: each is a config pgproxy check accepts, documented key by key.</summary>
public sealed class ProfilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-profiles").FullName;

    public static TheoryData<string> Names => [.. PgProxy.Tools.Profiles.All.Select(p => p.Name)];

    [Theory]
    [MemberData(nameof(Names))]
    public void EachProfile_PassesCheck_AndExplainsEveryKey(string name)
    {
        string text = PgProxy.Tools.Profiles.Render(name)!;
        // The files a profile names are the user's to provide; here they only have to exist.
        Directory.CreateDirectory(Path.Combine(_dir, "tls"));
        foreach (string file in new[] { "userlist.txt", "tls/server.crt", "tls/server.key", "tls/rds-ca.pem" })
        {
            File.WriteAllText(Path.Combine(_dir, file), "");
        }

        string path = Path.Combine(_dir, name + ".toml");
        File.WriteAllText(path, text);
        ConfigResult result = ConfigLoader.LoadFile(path);
        Assert.Empty(result.Errors);
        Assert.NotEqual(new ProxySection() with { Listen = result.Config!.Proxy.Listen }, result.Config.Proxy); // it sets something
        // Every key line is preceded by a comment somewhere in its section: no bare numbers.
        string[] lines = text.Split('\n');
        Assert.StartsWith("# PgProxy, profile \"" + name + "\"", lines[0], StringComparison.Ordinal);
        Assert.True(lines.Count(l => l.TrimStart().StartsWith('#')) >= lines.Count(l => l.Contains(" = ", StringComparison.Ordinal)) / 2,
            "about every other line explains the next");
    }

    [Fact]
    public void TheLambdaGuidesConfig_IsTheLambdaProfile()
    {
        Assert.Equal(PgProxy.Tools.Profiles.Render("lambda"), File.ReadAllText(Path.Combine(RepoPaths.Root, "deploy", "lambda", "proxy.toml")));
    }

    [Fact]
    public void AnUnknownProfile_IsNone() => Assert.Null(PgProxy.Tools.Profiles.Render("cloud"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
