using Microsoft.Extensions.Time.Testing;
using PgProxy.Core.Infrastructure;
using Xunit;

namespace PgProxy.Core.Tests.Infrastructure;

public sealed class DeadlineQueueTests
{
    private readonly FakeTimeProvider _time = new();

    private sealed class Recorder(List<(string Name, long At)> fired, string name) : DeadlineQueue.Entry
    {
        public Action<long>? Then { get; set; }

        protected internal override void OnDue(long now)
        {
            lock (fired)
            {
                fired.Add((name, now));
            }

            Then?.Invoke(now);
        }
    }

    private long In(TimeSpan span) => _time.GetTimestamp() + (long)(span.TotalSeconds * _time.TimestampFrequency);

    [Fact]
    public void Entries_FireInDueOrder_OnlyWhenTheirTimeComes()
    {
        using var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        var a = new Recorder(fired, "a");
        var b = new Recorder(fired, "b");
        var c = new Recorder(fired, "c");
        queue.Schedule(b, In(TimeSpan.FromSeconds(2)));
        queue.Schedule(a, In(TimeSpan.FromSeconds(1)));
        queue.Schedule(c, In(TimeSpan.FromSeconds(3)));

        _time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Empty(fired);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["a"], fired.Select(f => f.Item1));
        Assert.False(a.IsScheduled);
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(["a", "b", "c"], fired.Select(f => f.Item1));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void Schedule_MovesAnEntry_EarlierOrLater()
    {
        using var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        var a = new Recorder(fired, "a");
        var b = new Recorder(fired, "b");
        queue.Schedule(a, In(TimeSpan.FromSeconds(1)));
        queue.Schedule(b, In(TimeSpan.FromSeconds(2)));
        queue.Schedule(a, In(TimeSpan.FromSeconds(3))); // later
        queue.Schedule(b, In(TimeSpan.FromMilliseconds(500))); // earlier than the armed timer
        Assert.Equal(2, queue.Count);

        _time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(["b"], fired.Select(f => f.Item1));
        _time.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.Equal(["b"], fired.Select(f => f.Item1));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["b", "a"], fired.Select(f => f.Item1));
    }

    [Fact]
    public void ScheduleBy_OnlyMovesEarlier()
    {
        using var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        var a = new Recorder(fired, "a");
        queue.ScheduleBy(a, In(TimeSpan.FromSeconds(2)));
        queue.ScheduleBy(a, In(TimeSpan.FromSeconds(5))); // later: ignored
        queue.ScheduleBy(a, In(TimeSpan.FromSeconds(1))); // earlier: moves
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Single(fired);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Single(fired);
    }

    [Fact]
    public void Cancel_RemovesAnEntry_FromAnyPlaceInTheHeap()
    {
        using var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        var entries = Enumerable.Range(0, 100).Select(i => new Recorder(fired, i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        var random = new Random(7);
        foreach (Recorder e in entries)
        {
            queue.Schedule(e, In(TimeSpan.FromMilliseconds(random.Next(1, 10_000))));
        }

        for (int i = 0; i < entries.Length; i += 3)
        {
            queue.Cancel(entries[i]);
        }

        _time.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal(entries.Length - ((entries.Length + 2) / 3), fired.Count);
        Assert.DoesNotContain(fired, f => int.Parse(f.Item1, System.Globalization.CultureInfo.InvariantCulture) % 3 == 0);
        long[] times = [.. fired.Select(f => f.Item2)];
        Assert.Equal(times.Order(), times);
    }

    [Fact]
    public void AnEntry_MayRescheduleItself_FromItsCallback()
    {
        using var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        var a = new Recorder(fired, "a");
        int left = 3;
        a.Then = now =>
        {
            if (--left > 0)
            {
                queue.Schedule(a, now + _time.TimestampFrequency); // again in a second
            }
        };
        queue.Schedule(a, In(TimeSpan.FromSeconds(1)));
        _time.Advance(TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(3, fired.Count);
        Assert.False(a.IsScheduled);
    }

    [Fact]
    public void NothingFires_AfterDispose()
    {
        var queue = new DeadlineQueue(_time);
        var fired = new List<(string, long)>();
        queue.Schedule(new Recorder(fired, "a"), In(TimeSpan.FromSeconds(1)));
        queue.Dispose();
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Empty(fired);
    }
}
