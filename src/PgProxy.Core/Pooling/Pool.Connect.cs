using PgProxy.Core.Backend;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Pooling;

/// <summary>Opening backends: slots, the connect itself, the backoff after failures (<see cref="ConnectBackoff"/>) and min_pool_size.</summary>
public sealed partial class Pool
{
    private readonly ConnectBackoff _backoff = new();
    private int _retrying;

    /// <summary>The last connect failure, while the pool waits to dial again; else null.</summary>
    public string? RecentConnectFailure
    {
        get
        {
            lock (_lock)
            {
                return InBackoffLocked ? _backoff.LastFailure?.Message : null;
            }
        }
    }

    /// <summary>
    /// The server's own error while it refuses this pool's logins (wrong password, unknown database, no permission) and
    /// server_login_retry has not passed: a new client is told at once instead of waiting. Null otherwise, also while the
    /// server is merely down or restarting, when clients wait for it.
    /// </summary>
    public BackendUnavailableException? LoginRefusal
    {
        get
        {
            lock (_lock)
            {
                return _backoff.Refusal(Time.GetTimestamp());
            }
        }
    }

    private bool InBackoffLocked => _backoff.IsWaiting(Time.GetTimestamp());

    /// <summary>
    /// The pool manager's clock: after a failed connect, when clients wait and the retry time has come, dial one backend
    /// for them (off the clock's thread). Clients queue instead of each dialing a server that is down; one success
    /// lets every waiter dial.
    /// </summary>
    internal void RetryIfDue(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_waiters.Count == 0 || _backoff.LastFailure is null || InBackoffLocked || _retrying != 0)
            {
                return;
            }

            _retrying = 1;
        }

        _ = RetryForWaitersAsync(ct);
    }

    /// <summary>Opens a backend in a slot already reserved (counted as Connecting).</summary>
    private async ValueTask<BackendConnection> OpenInSlotAsync(CancellationToken ct)
    {
        BackendConnection backend;
        try
        {
            backend = await _open(this, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (ex is BackendUnavailableException failure)
            {
                RecordConnectResult(failure);
            }

            ReleaseSlot();
            throw;
        }

        RecordConnectResult(null);
        SetExpiry(backend);
        lock (_lock)
        {
            Transition(backend, BackendState.Active); // its slot's Connecting count goes with it
        }

        return backend;
    }

    private void ReleaseSlot()
    {
        lock (_lock)
        {
            _counts[(int)BackendState.Connecting]--;
            ReleaseLimitersLocked();
            ServeWaitersLocked();
        }

        WakeGranted();
        LimiterReleased?.Invoke(_limiters);
    }

    /// <summary>
    /// Records a connect's outcome for the backoff. A login the server refused fails every waiting client now with
    /// the server's error: waiting longer would not help them.
    /// </summary>
    private void RecordConnectResult(BackendUnavailableException? failure)
    {
        lock (_lock)
        {
            if (failure is null)
            {
                _backoff.Succeeded();
                return;
            }

            _backoff.Failed(failure, Time.GetTimestamp(), Time.TimestampFrequency, Settings.Proxy.ServerLoginRetry);
            if (failure.IsLoginRefused)
            {
                FailWaitersLocked(failure.Copy);
            }
        }

        WakeGranted();
    }

    /// <summary>Dials one backend for the waiters after a failure (<see cref="RetryIfDue"/>); on success every waiter may dial.</summary>
    internal async Task RetryForWaitersAsync(CancellationToken ct)
    {
        try
        {
            lock (_lock)
            {
                if (_waiters.Count == 0 || _backoff.LastFailure is null || InBackoffLocked || !TryReserveSlotLocked(reserve: false, out _))
                {
                    return;
                }
            }

            if (await OpenIntoPoolAsync(ct).ConfigureAwait(false))
            {
                lock (_lock)
                {
                    ServeWaitersLocked(); // the server is back: let the other waiters dial too
                }

                WakeGranted();
            }
        }
        finally
        {
            Volatile.Write(ref _retrying, 0);
        }
    }

    /// <summary>
    /// Opens a backend in a slot already reserved and gives it to the first waiter or the idle list (janitor work:
    /// retries after a failure, min_pool_size). Records the outcome for server_login_retry.
    /// </summary>
    private async Task<bool> OpenIntoPoolAsync(CancellationToken ct)
    {
        BackendConnection backend;
        try
        {
            backend = await _open(this, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is BackendUnavailableException or OperationCanceledException)
        {
            if (ex is BackendUnavailableException failure)
            {
                RecordConnectResult(failure);
            }

            ReleaseSlot();
            return false;
        }

        RecordConnectResult(null);
        SetExpiry(backend);
        lock (_lock)
        {
            backend.LastUsedAt = Time.GetTimestamp();
            IdleOrHandOffLocked(backend); // its slot's Connecting count goes with it
        }

        WakeGranted();
        return true;
    }

    /// <summary>server_lifetime less up to 10% random jitter, so backends opened together do not all reconnect together.</summary>
    private void SetExpiry(BackendConnection backend)
    {
        if (Settings.Proxy.ServerLifetime > TimeSpan.Zero)
        {
            double factor = 1 - Random.Shared.NextDouble() * 0.1;
            backend.ExpiresAt = backend.CreatedAt + (long)(Settings.Proxy.ServerLifetime.TotalSeconds * factor * Time.TimestampFrequency);
        }
    }

    private bool TryReserveSlotLocked(bool reserve, out ConnectionLimiter? blockedBy)
    {
        blockedBy = null;
        if (_closed || _paused)
        {
            return false;
        }

        int limit = Settings.PoolSize + (reserve ? Settings.ReservePoolSize : 0);
        if (TotalLocked >= limit)
        {
            return false;
        }

        for (int i = 0; i < _limiters.Length; i++)
        {
            if (!_limiters[i].TryAcquire())
            {
                for (int j = 0; j < i; j++)
                {
                    _limiters[j].Release();
                }

                blockedBy = _limiters[i];
                return false;
            }
        }

        _counts[(int)BackendState.Connecting]++;
        return true;
    }

    /// <summary>Opens backends up to min_pool_size ahead of demand (called by the janitor).</summary>
    internal async Task EnsureMinimumAsync(CancellationToken ct)
    {
        while (true)
        {
            lock (_lock)
            {
                if (_closed || InBackoffLocked || TotalLocked >= Settings.MinPoolSize || !TryReserveSlotLocked(reserve: false, out _))
                {
                    return;
                }
            }

            if (!await OpenIntoPoolAsync(ct).ConfigureAwait(false))
            {
                return;
            }
        }
    }

}
