namespace PgProxy.Core.Infrastructure;

/// <summary>How client-visible messages spell a setting's duration ("30s", "1.5s", "250ms"), as the config is written.</summary>
public static class DurationText
{
    /// <summary>Formats <paramref name="t"/>.</summary>
    public static string Format(TimeSpan t) => t.TotalSeconds >= 1 ? $"{t.TotalSeconds:0.###}s" : $"{t.TotalMilliseconds:0}ms";
}
