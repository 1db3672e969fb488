using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using PgProxy.Core.Infrastructure;
using Xunit;

namespace PgProxy.Core.Tests.Infrastructure;

public sealed class MemoryTrimTests
{
    private readonly FakeTimeProvider _time = new();
    private TimeSpan _delay = TimeSpan.FromSeconds(5);
    private long _allocated;
    private int _collections;

    private MemoryTrim Make(DeadlineQueue queue) =>
        new(queue, () => _delay, NullLogger.Instance, () => _allocated, () => _collections++);

    [Fact]
    public void Trims_Once_WhenNoClientCameOrWentForTheDelay()
    {
        using var queue = new DeadlineQueue(_time);
        MemoryTrim trim = Make(queue);
        for (int i = 0; i < 10; i++)
        {
            trim.Note(_time.GetTimestamp()); // a burst of logins, one a second
            _allocated += MemoryTrim.MinimumAllocated;
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(0, _collections); // never during the burst
        _time.Advance(TimeSpan.FromSeconds(3.9)); // 4.9 s after the last login
        Assert.Equal(0, _collections);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(1, _collections);
        Assert.False(trim.IsScheduled); // nothing runs while nothing happens
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(1, _collections);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void DoesNotTrim_WhenLittleWasAllocatedSinceTheLastTrim()
    {
        using var queue = new DeadlineQueue(_time);
        MemoryTrim trim = Make(queue);
        _allocated = MemoryTrim.MinimumAllocated;
        trim.Note(_time.GetTimestamp());
        _time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(1, _collections);

        // A few logins later: less than the minimum allocated since, so no second pause.
        _allocated += MemoryTrim.MinimumAllocated / 2;
        trim.Note(_time.GetTimestamp());
        _time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(1, _collections);

        _allocated += MemoryTrim.MinimumAllocated;
        trim.Note(_time.GetTimestamp());
        _time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(2, _collections);
    }

    [Fact]
    public void ZeroDelay_NeverTrims_AndArmsNothing()
    {
        using var queue = new DeadlineQueue(_time);
        MemoryTrim trim = Make(queue);
        _delay = TimeSpan.Zero;
        _allocated = 10 * MemoryTrim.MinimumAllocated;
        trim.Note(_time.GetTimestamp());
        Assert.False(trim.IsScheduled);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(0, _collections);

        // Turned off while armed (SET memory_trim_delay = 0): the deadline fires and does nothing.
        _delay = TimeSpan.FromSeconds(5);
        trim.Note(_time.GetTimestamp());
        _delay = TimeSpan.Zero;
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0, _collections);
        Assert.False(trim.IsScheduled);
    }
}
