namespace PgProxy.Core.Pooling;

/// <summary>
/// A count shared by several pools (max_db_connections, max_user_connections). Changed only while the caller
/// holds its pool's lock plus this limiter's own lock, so a slot is never granted twice.
/// </summary>
public sealed class ConnectionLimiter
{
    private readonly Lock _lock = new();
    private int _count;

    /// <summary>Creates a limiter; <paramref name="max"/> 0 means no limit.</summary>
    public ConnectionLimiter(int max)
    {
        Max = max;
    }

    /// <summary>The limit; 0 = none.</summary>
    public int Max { get; private set; }

    /// <summary>A reload's new limit: slots already taken stay taken (a lower limit is reached as they are given back).</summary>
    internal void SetMax(int max)
    {
        lock (_lock)
        {
            Max = max;
        }
    }

    /// <summary>Slots in use.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Pools sharing this limiter (to wake their waiters when a slot frees).</summary>
    internal List<Pool> Pools { get; } = [];

    /// <summary>Takes a slot if one is free.</summary>
    public bool TryAcquire()
    {
        lock (_lock)
        {
            if (Max > 0 && _count >= Max)
            {
                return false;
            }

            _count++;
            return true;
        }
    }

    /// <summary>Gives a slot back.</summary>
    public void Release()
    {
        lock (_lock)
        {
            _count--;
        }
    }
}
