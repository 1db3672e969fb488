using PgProxy.Core.Backend;
using PgProxy.Core.Infrastructure;
using PgProxy.Protocol;

namespace PgProxy.Core.Pooling;

/// <summary>Clients waiting for a backend: FIFO, served by hand-off or by a slot, timed by the pool manager's clock.</summary>
public sealed partial class Pool
{
    private readonly LinkedList<PoolWaiter> _waiters = new();
    private readonly Queue<PoolWaiter> _granted = new();
    private int _grantedCount;

    /// <summary>
    /// The pool manager's clock (every 100 ms): a waiter whose client left is dropped; one that waited
    /// reserve_pool_timeout may open a reserve backend; one that waited query_wait_timeout fails with 53300 (or
    /// 08006 naming the connect failure when the last connect attempt failed). One clock instead of a timer per
    /// wait keeps waiting free of allocations and thread hops.
    /// </summary>
    internal void CheckWaiters()
    {
        TimeSpan waitLimit = Settings.Proxy.QueryWaitTimeout;
        TimeSpan reserveAt = Settings.Proxy.ReservePoolTimeout;
        bool useReserve = Settings.ReservePoolSize > 0 && (waitLimit <= TimeSpan.Zero || reserveAt < waitLimit);
        bool timedOut = false;
        lock (_lock)
        {
            if (_waiters.Count == 0)
            {
                return;
            }

            LinkedListNode<PoolWaiter>? node = _waiters.First;
            while (node is not null)
            {
                LinkedListNode<PoolWaiter>? next = node.Next;
                PoolWaiter w = node.Value;
                TimeSpan waited = Time.GetElapsedTime(w.EnqueuedAt);
                if (w.ClientGone.IsCancellationRequested)
                {
                    _waiters.Remove(node);
                    DecideLocked(w, null, new OperationCanceledException(w.ClientGone));
                }
                else if (useReserve && waited >= reserveAt && TryReserveSlotLocked(reserve: true, out _))
                {
                    _waiters.Remove(node);
                    DecideLocked(w, null, null);
                }
                else if (waitLimit > TimeSpan.Zero && waited >= waitLimit)
                {
                    _waiters.Remove(node);
                    DecideLocked(w, null, WaitTimeoutLocked(waitLimit));
                    timedOut = true;
                }

                node = next;
            }
        }

        if (timedOut)
        {
            LogWaitTimeout(_logger, Key.Database, Key.User, waitLimit.TotalSeconds, Counts.Active);
        }

        WakeGranted();
    }

    private BackendUnavailableException WaitTimeoutLocked(TimeSpan waitLimit)
    {
        // The pool's last connect attempt failed (not only within the backoff window, which has gaps between the
        // janitor's retries): that is why nothing became free.
        if (_backoff.LastFailure?.Message is { } failure)
        {
            return new BackendUnavailableException(SqlState.ConnectionFailure,
                $"query_wait_timeout: no server connection within {DurationText.Format(waitLimit)} for pool \"{Key}\": {failure}",
                "the pool keeps retrying and serves waiting clients as soon as the server accepts connections");
        }

        PoolCounts counts = CountsLocked();
        return new BackendUnavailableException(SqlState.TooManyConnections,
            $"query_wait_timeout: no server connection became free within {DurationText.Format(waitLimit)} for pool \"{Key}\"",
            $"{counts.Total} of {Settings.PoolSize} (+{Settings.ReservePoolSize} reserve) server connections are in use and {counts.Waiting} clients are waiting; " +
            "raise pool_size or query_wait_timeout, or shorten transactions");
    }

    /// <summary>Under the lock: the waiter (already out of the queue) gets a backend, a slot (null) or an error.</summary>
    private void DecideLocked(PoolWaiter waiter, BackendConnection? backend, Exception? error)
    {
        if (error is null)
        {
            waiter.Grant(backend);
        }
        else
        {
            waiter.Fail(error);
        }

        _granted.Enqueue(waiter);
        _grantedCount = _granted.Count;
    }

    /// <summary>Delivers the outcomes decided under the lock, one at a time, off the lock.</summary>
    private void WakeGranted()
    {
        while (Volatile.Read(ref _grantedCount) > 0)
        {
            PoolWaiter w;
            lock (_lock)
            {
                if (!_granted.TryDequeue(out w!))
                {
                    return;
                }

                _grantedCount = _granted.Count;
            }

            w.Wake();
        }
    }

    /// <summary>Under the lock: every waiter fails, each with an error of its own from <paramref name="error"/>.</summary>
    private void FailWaitersLocked(Func<Exception> error)
    {
        while (_waiters.First is { } first)
        {
            _waiters.RemoveFirst();
            DecideLocked(first.Value, null, error());
        }
    }

    private void ServeWaitersLocked()
    {
        while (_waiters.First is { } first && !InBackoffLocked && TryReserveSlotLocked(reserve: false, out _))
        {
            _waiters.RemoveFirst();
            DecideLocked(first.Value, null, null);
        }
    }

    /// <summary>Offers freed shared capacity to this pool's waiters.</summary>
    internal void ServeWaiters()
    {
        lock (_lock)
        {
            ServeWaitersLocked();
        }

        WakeGranted();
    }

    /// <summary>True when clients are waiting.</summary>
    internal bool HasWaiters
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count > 0;
            }
        }
    }

}
