using System.Globalization;

namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>Reading the Prometheus text exposition in tests: one sample's value, and promtool's verdict.</summary>
public static class PromText
{
    /// <summary>The value of the sample named exactly <paramref name="series"/> (name and labels; the line is "series value").</summary>
    public static double Value(string exposition, string series)
    {
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        Assert.Fail($"no series {series} in:\n{exposition}");
        return 0;
    }

    /// <summary>Fails the test unless <c>promtool check metrics</c> (Debian's prometheus package; test.sh installs it) accepts <paramref name="exposition"/>.</summary>
    public static async Task CheckAsync(string exposition, CancellationToken ct)
    {
        string file = Path.Combine(Path.GetTempPath(), "pgproxy-metrics-" + Guid.NewGuid().ToString("N") + ".txt");
        await File.WriteAllTextAsync(file, exposition, ct);
        try
        {
            ProcessRunner.Result check = await ProcessRunner.RunAsync("sh", ["-c", $"promtool check metrics < '{file}'"], TimeSpan.FromSeconds(30), ct: ct);
            Assert.True(check.ExitCode == 0, "promtool check metrics failed: " + check.All);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
