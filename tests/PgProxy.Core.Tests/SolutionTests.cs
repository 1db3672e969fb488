using PgProxy.Testing;

namespace PgProxy.Core.Tests;

/// <summary>Proxy.sln, which scripts/test.sh builds, holds every project in the repository.</summary>
public sealed class SolutionTests
{
    [Fact]
    public void Solution_ListsEveryProject()
    {
        string root = RepoPaths.Root;
        string sln = File.ReadAllText(Path.Combine(root, "Proxy.sln")).Replace('\\', '/');
        string[] projects = [.. new[] { "src", "tests", "bench" }
            .SelectMany(d => Directory.EnumerateFiles(Path.Combine(root, d), "*.csproj", SearchOption.AllDirectories))
            .Select(p => Path.GetRelativePath(root, p).Replace('\\', '/'))];
        Assert.NotEmpty(projects);
        Assert.All(projects, p => Assert.Contains($"\"{p}\"", sln, StringComparison.Ordinal));
    }
}
