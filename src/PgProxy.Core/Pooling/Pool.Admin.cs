using PgProxy.Core.Backend;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Pooling;

/// <summary>
/// What the admin console steers: the pool's servers listed (SHOW SERVERS), PAUSE and RESUME, RECONNECT and
/// WAIT_CLOSE (a generation number: a server of an older one is closed when it comes back), and KILL.
/// None of it touches the data path but for one flag read where a server is taken or given back.
/// </summary>
public sealed partial class Pool
{
    private readonly HashSet<BackendConnection> _backends = [];
    private int _cancels;

    /// <summary>
    /// Cancel requests being forwarded to this pool's servers now (SHOW POOLS' cl_active_cancel_req and
    /// sv_active_cancel: each goes out at once on a connection of its own, so none ever waits).
    /// </summary>
    public int CancelsInFlight => Volatile.Read(ref _cancels);

    internal void CancelStarted() => Interlocked.Increment(ref _cancels);

    internal void CancelEnded() => Interlocked.Decrement(ref _cancels);
    private int _generation;
    private bool _paused;

    /// <summary>The servers that are connected (every state but login), a copy.</summary>
    public BackendConnection[] Backends
    {
        get
        {
            lock (_lock)
            {
                return [.. _backends];
            }
        }
    }

    /// <summary>True when the server was opened before the last RECONNECT: it is closed when its client gives it back.</summary>
    public bool CloseNeeded(BackendConnection backend) => backend.Generation != Volatile.Read(ref _generation);

    /// <summary>Servers still open from before the last RECONNECT (WAIT_CLOSE waits for none).</summary>
    public int CloseNeededCount
    {
        get
        {
            lock (_lock)
            {
                return _backends.Count(b => b.Generation != _generation);
            }
        }
    }

    /// <summary>PAUSE: no server is handed out (clients queue), and each is closed as its client gives it back.</summary>
    public bool Paused
    {
        get
        {
            lock (_lock)
            {
                return _paused;
            }
        }
    }

    /// <summary>Called by <see cref="Transition"/>: the set of connected servers follows their states.</summary>
    private void TrackLocked(BackendConnection backend, BackendState from, BackendState to)
    {
        if (to == BackendState.Closing)
        {
            _backends.Remove(backend);
        }
        else if (from == BackendState.Connecting)
        {
            backend.Generation = _generation;
            _backends.Add(backend);
        }
    }

    /// <summary>
    /// PAUSE: from now on clients wait for a server (up to query_wait_timeout) instead of getting one; idle servers
    /// close now, linked ones when their clients give them back (the console waits for <see cref="Counts"/> to be
    /// empty). <see cref="Resume"/> undoes it.
    /// </summary>
    public void Pause(DisconnectReason reason = DisconnectReason.Paused)
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _paused = true;
            idle = TakeAllIdleLocked();
        }

        CloseTaken(idle, reason);
    }

    /// <summary>RESUME: servers are handed out again, first to the clients that waited.</summary>
    public void Resume()
    {
        lock (_lock)
        {
            _paused = false;
            ServeWaitersLocked();
        }

        WakeGranted();
    }

    /// <summary>RECONNECT: every server open now is closed when it is next given back (idle ones now); new ones open as needed.</summary>
    public void Reconnect()
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _generation++;
            idle = TakeAllIdleLocked();
            ServeWaitersLocked(); // the slots just freed may open servers for waiting clients
        }

        WakeGranted();
        CloseTaken(idle, DisconnectReason.Reconnect);
    }

    /// <summary>KILL: paused (as by PAUSE), waiting clients fail with <paramref name="error"/>, idle servers close now.</summary>
    public void Kill(ProxyException error)
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _paused = true;
            idle = TakeAllIdleLocked();
            FailWaitersLocked(() => error);
        }

        WakeGranted();
        CloseTaken(idle, DisconnectReason.Killed);
    }

    /// <summary>Fails, with <paramref name="error"/>, the wait of the client whose connection token is <paramref name="clientGone"/>, if it is waiting (KILL_CLIENT).</summary>
    internal bool FailWaiter(Exception error, CancellationToken clientGone)
    {
        bool found = false;
        lock (_lock)
        {
            for (LinkedListNode<PoolWaiter>? node = _waiters.First; node is not null; node = node.Next)
            {
                if (node.Value.ClientGone == clientGone)
                {
                    _waiters.Remove(node);
                    DecideLocked(node.Value, null, error);
                    found = true;
                    break;
                }
            }
        }

        WakeGranted();
        return found;
    }

    /// <summary>The database was removed from the config by a reload: no server goes idle any more (its clients are closed at their boundaries).</summary>
    public bool Removed => Volatile.Read(ref _removed);

    private bool _removed;

    /// <summary>
    /// A reload: new settings (sizes and timeouts apply from now; servers over a smaller size close as they come back)
    /// and target. A changed destination (host, port, dbname, user, secret) is a RECONNECT: servers open now close
    /// when given back, and new ones use the new destination.
    /// </summary>
    internal void Update(PoolTarget target, PoolSettings settings, bool destinationChanged)
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _target = target;
            _settings = settings;
            _removed = false;
            if (destinationChanged)
            {
                _generation++;
                idle = TakeAllIdleLocked();
            }
            else
            {
                idle = [];
                int limit = settings.PoolSize + settings.ReservePoolSize;
                while (TotalLocked > limit && _idle.First is { } oldest)
                {
                    _idle.Remove(oldest);
                    RetireLocked(oldest.Value);
                    idle.Add(oldest.Value);
                }
            }

            ServeWaitersLocked(); // a larger pool may open servers for waiting clients now
        }

        WakeGranted();
        CloseTaken(idle, destinationChanged ? DisconnectReason.Reconnect : DisconnectReason.ConfigChanged);
    }

    /// <summary>A reload removed the database: idle servers close now, the rest as they come back.</summary>
    internal void Remove()
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _removed = true;
            idle = TakeAllIdleLocked();
        }

        CloseTaken(idle, DisconnectReason.ConfigChanged);
    }

    private List<BackendConnection> TakeAllIdleLocked()
    {
        List<BackendConnection> idle = [.. _idle];
        _idle.Clear();
        foreach (BackendConnection b in idle)
        {
            RetireLocked(b);
        }

        return idle;
    }

    private void CloseTaken(List<BackendConnection> taken, DisconnectReason reason)
    {
        if (taken.Count == 0)
        {
            return;
        }

        LimiterReleased?.Invoke(_limiters);
        foreach (BackendConnection b in taken)
        {
            _ = CloseOffPoolAsync(b, reason).AsTask();
        }
    }
}
