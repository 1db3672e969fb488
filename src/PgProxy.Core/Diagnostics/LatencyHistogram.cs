using System.Diagnostics.Metrics;

namespace PgProxy.Core.Diagnostics;

/// <summary>
/// A latency histogram in seconds with fixed buckets from 100 µs to 30 s: one interlocked increment of a bucket and one
/// add to the sum per observation, no lock, no allocation; its count and sum are the pool's totals too. /metrics prints it (buckets made cumulative when read);
/// when something listens to the <c>PgProxy</c> meter (dotnet-counters, OpenTelemetry), each observation is also
/// recorded on the meter's histogram instrument, which costs a flag check otherwise.
/// </summary>
public sealed class LatencyHistogram
{
    /// <summary>The upper bounds in seconds (Prometheus' <c>le</c>); one more bucket, +Inf, follows.</summary>
    public static readonly double[] Bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly long[] _tickBounds;
    private readonly long[] _buckets = new long[Bounds.Length + 1];
    private readonly double _secondsPerTick;
    private readonly Histogram<double>? _instrument;
    private readonly KeyValuePair<string, object?>[] _tags;
    private long _sumTicks;

    /// <param name="ticksPerSecond">The clock's timestamp frequency.</param>
    /// <param name="instrument">The meter's instrument (recorded only while enabled), or null.</param>
    /// <param name="tags">This histogram's tags on that instrument.</param>
    public LatencyHistogram(long ticksPerSecond, Histogram<double>? instrument = null, KeyValuePair<string, object?>[]? tags = null)
    {
        _tickBounds = [.. Bounds.Select(b => (long)Math.Round(b * ticksPerSecond))];
        _secondsPerTick = 1.0 / ticksPerSecond;
        _instrument = instrument;
        _tags = tags ?? [];
    }

    /// <summary>Records one observation of <paramref name="ticks"/> (negative counts as 0).</summary>
    public void Record(long ticks)
    {
        ticks = Math.Max(0, ticks);
        long[] bounds = _tickBounds;
        int i = 0;
        while (i < bounds.Length && ticks > bounds[i])
        {
            i++;
        }

        Interlocked.Increment(ref _buckets[i]);
        Interlocked.Add(ref _sumTicks, ticks);
        if (_instrument is { Enabled: true } instrument)
        {
            instrument.Record(ticks * _secondsPerTick, _tags);
        }
    }

    /// <summary>Observations so far (the buckets summed).</summary>
    public long Count
    {
        get
        {
            long count = 0;
            for (int i = 0; i < _buckets.Length; i++)
            {
                count += Volatile.Read(ref _buckets[i]);
            }

            return count;
        }
    }

    /// <summary>The observations' sum, in the clock's ticks.</summary>
    public long SumTicks => Volatile.Read(ref _sumTicks);

    /// <summary>The counts now, cumulative (bucket i counts observations up to <see cref="Bounds"/>[i]; the last is +Inf, the count), and the sum in seconds.</summary>
    public (long[] Cumulative, double SumSeconds) Read()
    {
        var cumulative = new long[_buckets.Length];
        long running = 0;
        for (int i = 0; i < cumulative.Length; i++)
        {
            running += Volatile.Read(ref _buckets[i]);
            cumulative[i] = running;
        }

        return (cumulative, Volatile.Read(ref _sumTicks) * _secondsPerTick);
    }
}
