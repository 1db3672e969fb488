namespace PgProxy.Core.Infrastructure;

/// <summary>Durations as <see cref="TimeProvider"/> timestamp ticks, for deadlines kept as plain timestamps.</summary>
public static class TimestampSpan
{
    /// <summary><paramref name="span"/> in <paramref name="time"/>'s timestamp units.</summary>
    public static long Ticks(this TimeProvider time, TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);
}
