using Microsoft.Extensions.Logging;
using PgProxy.Core.Diagnostics;

namespace PgProxy.Core.Infrastructure;

/// <summary>
/// Gives memory back to the operating system once clients have stopped coming and going ([proxy] memory_trim_delay).
/// A burst of logins leaves what those logins allocated, and the collector's allocation budget, in committed heap
/// memory until the next collection, and a pooler that only relays never makes one: relaying allocates nothing. So
/// when no client has connected or disconnected for the delay, and at least <see cref="MinimumAllocated"/> was
/// allocated since the last trim, one compacting collection runs that also decommits the free memory
/// (<see cref="GCCollectionMode.Aggressive"/>). Nothing runs while nothing happens: a connection event arms the
/// deadline, and it fires once the delay has passed since the last event.
/// </summary>
internal sealed partial class MemoryTrim : DeadlineQueue.Entry
{
    /// <summary>Allocated since the last trim below which a trim is not worth its pause (about 800 logins).</summary>
    internal const long MinimumAllocated = 4 * 1024 * 1024;

    private readonly DeadlineQueue _deadlines;
    private readonly Func<TimeSpan> _delay;
    private readonly ILogger _logger;
    private readonly Func<long> _allocated;
    private readonly Action _collect;
    private long _lastEvent;
    private long _allocatedAtTrim;

    /// <param name="deadlines">The process's deadlines.</param>
    /// <param name="delay">memory_trim_delay as configured now (0: never).</param>
    /// <param name="logger">For the line each trim writes (debug).</param>
    /// <param name="allocated">Bytes allocated so far (tests give their own).</param>
    /// <param name="collect">The collection (tests give their own).</param>
    internal MemoryTrim(DeadlineQueue deadlines, Func<TimeSpan> delay, ILogger logger, Func<long>? allocated = null, Action? collect = null)
    {
        _deadlines = deadlines;
        _delay = delay;
        _logger = logger;
        _allocated = allocated ?? (static () => GC.GetTotalAllocatedBytes());
        _collect = collect ?? Collect;
    }

    /// <summary>A client connected or disconnected (<paramref name="now"/>: a timestamp of the queue's clock).</summary>
    internal void Note(long now)
    {
        Volatile.Write(ref _lastEvent, now);
        if (!IsScheduled && _delay() is var delay && delay > TimeSpan.Zero)
        {
            _deadlines.ScheduleBy(this, now + _deadlines.Time.Ticks(delay));
        }
    }

    protected internal override void OnDue(long now)
    {
        TimeSpan delay = _delay();
        if (delay <= TimeSpan.Zero)
        {
            return; // turned off meanwhile (SET, RELOAD)
        }

        long quietFrom = Volatile.Read(ref _lastEvent) + _deadlines.Time.Ticks(delay);
        if (now < quietFrom)
        {
            _deadlines.ScheduleBy(this, quietFrom); // clients came or went meanwhile: the delay counts from the last one
            return;
        }

        if (_allocated() - _allocatedAtTrim < MinimumAllocated)
        {
            return;
        }

        _collect();
        _allocatedAtTrim = _allocated();
    }

    private void Collect()
    {
        long before = Environment.WorkingSet;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GCMemoryInfo info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        LogTrimmed(_logger, before / 1024, Environment.WorkingSet / 1024, info.HeapSizeBytes / 1024,
            info.PauseDurations.Length > 0 ? info.PauseDurations[0].TotalMilliseconds : 0);
    }

    [LoggerMessage(EventId = ProxyEventIds.MemoryTrimmed, Level = LogLevel.Debug,
        Message = "No client came or went for memory_trim_delay: heap compacted, resident memory {BeforeKb} kB -> {AfterKb} kB (live heap {HeapKb} kB, pause {PauseMs:F1} ms)")]
    private static partial void LogTrimmed(ILogger logger, long beforeKb, long afterKb, long heapKb, double pauseMs);
}
