namespace PgProxy.Core.Infrastructure;

/// <summary>
/// One timer for many deadlines: entries in a binary min-heap by due time (each entry knows its heap slot, so moving
/// or removing one is O(log n)) and a single <see cref="ITimer"/> armed for the earliest. Nothing runs while no
/// deadline is due, whatever the number of entries: the cost grows with the deadlines that fire. Owners keep their
/// entry lazily: a deadline that fires early for what happened since (activity moved it) just computes the real
/// one and schedules again, so ordinary traffic schedules nothing.
/// </summary>
public sealed class DeadlineQueue : IDisposable
{
    /// <summary>Something with one deadline at a time.</summary>
    public abstract class Entry
    {
        internal int HeapIndex = -1;

        /// <summary>When it is due (a <see cref="TimeProvider"/> timestamp); meaningful while <see cref="IsScheduled"/>.</summary>
        public long Due { get; internal set; }

        /// <summary>True while it waits in a queue.</summary>
        public bool IsScheduled => Volatile.Read(ref HeapIndex) >= 0;

        /// <summary>Runs on the timer's thread pool callback, off the queue's lock, once the entry is due (it is no longer scheduled).</summary>
        protected internal abstract void OnDue(long now);
    }

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private readonly List<Entry> _due = [];
    private Entry[] _heap = new Entry[16];
    private int _count;
    private long _armedFor = long.MaxValue;
    private bool _firing;
    private bool _disposed;

    /// <summary>Creates a queue on <paramref name="time"/>'s clock.</summary>
    public DeadlineQueue(TimeProvider time)
    {
        _time = time;
        _timer = time.CreateTimer(static s => ((DeadlineQueue)s!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The clock.</summary>
    public TimeProvider Time => _time;

    /// <summary>Entries waiting.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>A timestamp <paramref name="delay"/> from now.</summary>
    public long After(TimeSpan delay) => _time.GetTimestamp() + _time.Ticks(delay);

    /// <summary>Schedules <paramref name="entry"/> at <paramref name="due"/>, moving it if it was scheduled already.</summary>
    public void Schedule(Entry entry, long due)
    {
        lock (_lock)
        {
            ScheduleLocked(entry, due);
        }
    }

    /// <summary>Schedules <paramref name="entry"/> at <paramref name="due"/> unless it is already due at or before then.</summary>
    public void ScheduleBy(Entry entry, long due)
    {
        if (entry.IsScheduled && entry.Due <= due)
        {
            return; // read without the lock: a stale answer only means the entry fires first and schedules again
        }

        lock (_lock)
        {
            if (entry.HeapIndex < 0 || due < entry.Due)
            {
                ScheduleLocked(entry, due);
            }
        }
    }

    private void ScheduleLocked(Entry entry, long due)
    {
        if (_disposed)
        {
            return;
        }

        if (entry.HeapIndex >= 0)
        {
            long was = entry.Due;
            entry.Due = due;
            if (due < was)
            {
                SiftUp(entry.HeapIndex);
            }
            else
            {
                SiftDown(entry.HeapIndex);
            }
        }
        else
        {
            if (_count == _heap.Length)
            {
                Array.Resize(ref _heap, _count * 2);
            }

            entry.Due = due;
            _heap[_count] = entry;
            entry.HeapIndex = _count;
            _count++;
            SiftUp(_count - 1);
        }

        ArmLocked();
    }

    /// <summary>Takes <paramref name="entry"/> out; nothing if it was not scheduled.</summary>
    public void Cancel(Entry entry)
    {
        lock (_lock)
        {
            if (entry.HeapIndex >= 0)
            {
                RemoveAtLocked(entry.HeapIndex);
            }
        }
    }

    private void Fire()
    {
        lock (_lock)
        {
            _armedFor = long.MaxValue;
            if (_firing || _disposed)
            {
                return; // the callback already running takes what is due, then re-arms
            }

            _firing = true;
        }

        while (true)
        {
            long now = _time.GetTimestamp();
            lock (_lock)
            {
                while (_count > 0 && _heap[0].Due <= now)
                {
                    _due.Add(_heap[0]);
                    RemoveAtLocked(0);
                }

                if (_due.Count == 0)
                {
                    _firing = false;
                    ArmLocked();
                    return;
                }
            }

            // Only this callback touches _due (guarded by _firing).
            foreach (Entry entry in _due)
            {
                try
                {
                    entry.OnDue(now);
                }
                catch (Exception ex)
                {
                    // An owner's bug must not stop every other deadline: report it, keep the clock running.
                    System.Diagnostics.Debug.Fail("a deadline callback threw", ex.ToString());
                }
            }

            _due.Clear();
        }
    }

    private void ArmLocked()
    {
        if (_firing || _disposed || _count == 0)
        {
            return;
        }

        long due = _heap[0].Due;
        if (due >= _armedFor)
        {
            return;
        }

        _armedFor = due;
        long ticks = due - _time.GetTimestamp();
        TimeSpan delay = ticks <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds((double)ticks / _time.TimestampFrequency);
        _timer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    private void RemoveAtLocked(int index)
    {
        Entry removed = _heap[index];
        removed.HeapIndex = -1;
        _count--;
        if (index != _count)
        {
            Entry last = _heap[_count];
            _heap[index] = last;
            last.HeapIndex = index;
            SiftDown(index);
            SiftUp(last.HeapIndex);
        }

        _heap[_count] = null!;
    }

    private void SiftUp(int index)
    {
        Entry entry = _heap[index];
        while (index > 0)
        {
            int parent = (index - 1) >> 1;
            if (_heap[parent].Due <= entry.Due)
            {
                break;
            }

            _heap[index] = _heap[parent];
            _heap[index].HeapIndex = index;
            index = parent;
        }

        _heap[index] = entry;
        entry.HeapIndex = index;
    }

    private void SiftDown(int index)
    {
        Entry entry = _heap[index];
        while (true)
        {
            int child = (index << 1) + 1;
            if (child >= _count)
            {
                break;
            }

            if (child + 1 < _count && _heap[child + 1].Due < _heap[child].Due)
            {
                child++;
            }

            if (_heap[child].Due >= entry.Due)
            {
                break;
            }

            _heap[index] = _heap[child];
            _heap[index].HeapIndex = index;
            index = child;
        }

        _heap[index] = entry;
        entry.HeapIndex = index;
    }

    /// <summary>Stops the timer; nothing fires afterwards.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
        }

        _timer.Dispose();
    }
}

/// <summary>A deadline that runs a callback: for owners with more than one kind of deadline, or that cannot derive.</summary>
public sealed class Deadline(Action<long> onDue) : DeadlineQueue.Entry
{
    /// <inheritdoc />
    protected internal override void OnDue(long now) => onDue(now);
}
