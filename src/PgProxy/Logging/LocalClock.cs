namespace PgProxy.Logging;

/// <summary>
/// Writes a UTC time as the local "yyyy-MM-dd HH:mm:ss.fff" of a text log line. The local offset is asked of the
/// time zone once a minute (offsets change only on whole minutes) and the digits are written directly: done per line
/// with <c>ToLocalTime</c> and a custom format string, this was a visible part of the writer's time in a connect
/// storm. Used by the writer thread alone.
/// </summary>
internal sealed class LocalClock
{
    private readonly TimeZoneInfo _zone;
    private long _minuteStart = long.MinValue;
    private long _offsetTicks;

    public LocalClock(TimeZoneInfo? zone = null)
    {
        _zone = zone ?? TimeZoneInfo.Local;
    }

    /// <summary>Writes the local time of <paramref name="utc"/> into 23 characters.</summary>
    public void Format(DateTime utc, Span<char> destination)
    {
        long ticks = utc.Ticks;
        if (ticks < _minuteStart || ticks >= _minuteStart + TimeSpan.TicksPerMinute)
        {
            _minuteStart = ticks - (ticks % TimeSpan.TicksPerMinute);
            _offsetTicks = _zone.GetUtcOffset(new DateTime(_minuteStart, DateTimeKind.Utc)).Ticks;
        }

        var local = new DateTime(Math.Clamp(ticks + _offsetTicks, DateTime.MinValue.Ticks, DateTime.MaxValue.Ticks));
        Digits(destination[..4], local.Year);
        destination[4] = '-';
        Digits(destination.Slice(5, 2), local.Month);
        destination[7] = '-';
        Digits(destination.Slice(8, 2), local.Day);
        destination[10] = ' ';
        Digits(destination.Slice(11, 2), local.Hour);
        destination[13] = ':';
        Digits(destination.Slice(14, 2), local.Minute);
        destination[16] = ':';
        Digits(destination.Slice(17, 2), local.Second);
        destination[19] = '.';
        Digits(destination.Slice(20, 3), local.Millisecond);
    }

    private static void Digits(Span<char> destination, int value)
    {
        for (int i = destination.Length - 1; i >= 0; i--)
        {
            destination[i] = (char)('0' + (value % 10));
            value /= 10;
        }
    }
}
