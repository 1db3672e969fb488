using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Backend;
using PgProxy.Core.Infrastructure;
using PgProxy.Protocol;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A bounded pool of backends for one (database, user). Idle backends are reused LIFO (or FIFO with
/// server_round_robin); waiting clients are served in arrival order; a client that waited reserve_pool_timeout may
/// open up to reserve_pool_size extra backends; max_db_connections and max_user_connections are shared limiters.
/// Every state change of a backend goes through <see cref="Transition"/>, which keeps the counters.
/// </summary>
public sealed partial class Pool
{
    private readonly Lock _lock = new();
    private readonly LinkedList<BackendConnection> _idle = new();
    private readonly LinkedList<PoolWaiter> _waiters = new();
    private readonly Queue<PoolWaiter> _granted = new();
    private int _grantedCount;
    private readonly int[] _counts = new int[Enum.GetValues<BackendState>().Length];
    private readonly ConnectionLimiter[] _limiters;
    private readonly Func<Pool, CancellationToken, ValueTask<BackendConnection>> _open;
    private readonly ILogger _logger;
    private int _connectingSlots;
    private bool _closed;
    private readonly ConnectBackoff _backoff = new();
    private int _retrying;

    internal Pool(PoolKey key, PoolTarget target, PoolSettings settings, ConnectionLimiter[] limiters,
        Func<Pool, CancellationToken, ValueTask<BackendConnection>> open, ILogger logger)
    {
        Key = key;
        Target = target;
        Settings = settings;
        _limiters = limiters;
        _open = open;
        _logger = logger;
    }

    /// <summary>The shared limiters this pool counts against.</summary>
    internal IReadOnlyList<ConnectionLimiter> Limiters => _limiters;

    /// <summary>The pool's key.</summary>
    public PoolKey Key { get; }

    /// <summary>Where backends connect.</summary>
    public PoolTarget Target { get; }

    /// <summary>Effective settings.</summary>
    public PoolSettings Settings { get; }

    /// <summary>
    /// The ParameterStatus set of the first backend this pool opened: what a client is told at login before any
    /// backend is linked to it (PgBouncer's welcome message). Null until a backend has connected.
    /// </summary>
    public IReadOnlyDictionary<string, string>? WelcomeParameters { get; internal set; }

    /// <summary>Called after a limiter slot was freed, to wake waiters of every pool sharing it.</summary>
    internal Action<ConnectionLimiter[]>? LimiterReleased { get; set; }

    /// <summary>Called when a waiter is blocked by a shared limiter, to evict an idle backend elsewhere.</summary>
    internal Action<Pool, ConnectionLimiter>? LimiterBlocked { get; set; }

    /// <summary>
    /// True when another pool sharing a full limiter has clients waiting: a backend about to go idle here should
    /// close instead, so the waiting pool gets the slot.
    /// </summary>
    internal Func<Pool, bool>? ShouldYieldSlot { get; set; }

    /// <summary>Called to close a backend off the caller's path (logging included).</summary>
    internal Func<BackendConnection, Diagnostics.DisconnectReason, ValueTask>? CloseBackend { get; set; }

    /// <summary>
    /// The shared instance of a client settings view: clients with equal settings hold one object, so idle clients
    /// cost little and a backend's synced key usually matches by reference. Bounded: past the cap views are not
    /// shared (correct, just larger).
    /// </summary>
    public Client.ClientSettings Intern(Client.ClientSettings view)
    {
        lock (_settingsViews)
        {
            if (_settingsViews.TryGetValue(view.Key, out Client.ClientSettings? shared))
            {
                return shared;
            }

            if (_settingsViews.Count < MaxSharedSettingsViews)
            {
                _settingsViews[view.Key] = view;
            }

            return view;
        }
    }

    private const int MaxSharedSettingsViews = 1024;
    private readonly Dictionary<string, Client.ClientSettings> _settingsViews = new(StringComparer.Ordinal);

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
                return _backoff.Refusal(Stopwatch.GetTimestamp());
            }
        }
    }

    private bool InBackoffLocked => _backoff.IsWaiting(Stopwatch.GetTimestamp());

    /// <summary>Counters, consistent with each other.</summary>
    public PoolCounts Counts
    {
        get
        {
            lock (_lock)
            {
                return CountsLocked();
            }
        }
    }

    private PoolCounts CountsLocked() => new(
        _counts[(int)BackendState.Active], _counts[(int)BackendState.Idle], _counts[(int)BackendState.Used], _connectingSlots, _waiters.Count);

    private int TotalLocked => _connectingSlots + _counts[(int)BackendState.Active] + _counts[(int)BackendState.Idle] + _counts[(int)BackendState.Used];

    /// <summary>The one place a backend changes state; keeps the counters.</summary>
    private void Transition(BackendConnection backend, BackendState to)
    {
        if (backend.State != BackendState.Connecting)
        {
            _counts[(int)backend.State]--;
        }

        backend.State = to;
        if (to is not (BackendState.Connecting or BackendState.Closing))
        {
            _counts[(int)to]++;
        }
    }

    /// <summary>
    /// Gets a backend for a client: an idle one at once, a new one while under pool_size, otherwise waits in line
    /// until query_wait_timeout (then throws a 53300 error that names the timeout).
    /// </summary>
    public ValueTask<BackendConnection> AcquireAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (_waiters.Count == 0 && TryTakeIdleLocked(out BackendConnection? idle))
            {
                return new ValueTask<BackendConnection>(idle);
            }
        }

        return AcquireSlowAsync(ct);
    }

    /// <summary>
    /// An idle backend has nothing to say. If its socket holds bytes (PostgreSQL's FATAL on pg_terminate_backend or
    /// shutdown) or has closed, it is dead: the receive loop keeps reading idle sockets, so this needs no round trip.
    /// </summary>
    private static bool IsDeadWhileIdle(BackendConnection backend)
    {
        if (backend.IsClosed)
        {
            return true;
        }

        if (!backend.Input.TryRead(out System.IO.Pipelines.ReadResult read))
        {
            return false;
        }

        bool dead = !read.Buffer.IsEmpty || read.IsCompleted;
        backend.Input.AdvanceTo(read.Buffer.Start);
        return dead;
    }

    private async ValueTask<BackendConnection> AcquireSlowAsync(CancellationToken ct)
    {
        long started = Stopwatch.GetTimestamp();
        bool mustWait = false;
        while (true)
        {
            PoolWaiter? waiter = null;
            ConnectionLimiter? blockedBy = null;
            lock (_lock)
            {
                ThrowIfClosed();
                if (_waiters.Count == 0 && TryTakeIdleLocked(out BackendConnection? idle))
                {
                    return idle;
                }

                if (mustWait || _waiters.Count > 0 || InBackoffLocked || !TryReserveSlotLocked(reserve: false, out blockedBy))
                {
                    // A waiter keeps the time the client started waiting: query_wait_timeout counts from there.
                    waiter = new PoolWaiter(started, ct);
                    _waiters.AddLast(waiter.Node);
                }
            }

            if (waiter is not null)
            {
                if (blockedBy is not null)
                {
                    LimiterBlocked?.Invoke(this, blockedBy);
                }

                BackendConnection? handed = await waiter.Outcome.ConfigureAwait(false);
                if (handed is not null)
                {
                    return handed;
                }
            }

            try
            {
                return await OpenInSlotAsync(ct).ConfigureAwait(false);
            }
            catch (BackendUnavailableException ex) when (!ex.IsLoginRefused && !ct.IsCancellationRequested)
            {
                // The server is down or restarting: wait in line for the pool's retry, up to query_wait_timeout,
                // rather than fail a client the server may serve in a moment.
                mustWait = true;
            }
        }
    }

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
                TimeSpan waited = Stopwatch.GetElapsedTime(w.EnqueuedAt);
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

    /// <summary>Opens a backend in a slot already counted in _connectingSlots.</summary>
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
            _connectingSlots--;
            Transition(backend, BackendState.Active);
        }

        return backend;
    }

    private void ReleaseSlot()
    {
        lock (_lock)
        {
            _connectingSlots--;
            ReleaseLimitersLocked();
            ServeWaitersLocked();
        }

        WakeGranted();
        LimiterReleased?.Invoke(_limiters);
    }

    /// <summary>
    /// Gives a backend back. A reusable one goes to the first waiter or to the idle list; otherwise it is closed
    /// and its slot is offered to the first waiter.
    /// </summary>
    public async ValueTask ReleaseAsync(BackendConnection backend, bool reusable, Diagnostics.DisconnectReason reason = Diagnostics.DisconnectReason.DirtyOnRelease)
    {
        bool close;
        // Asked before taking our lock: it looks at other pools' queues (lock order is never pool-to-pool).
        bool yieldSlot = reusable && ShouldYieldSlot?.Invoke(this) == true;
        lock (_lock)
        {
            bool expired = reusable && Stopwatch.GetTimestamp() >= backend.ExpiresAt;
            close = !reusable || _closed || backend.IsClosed || expired || (yieldSlot && _waiters.Count == 0);
            if (close)
            {
                if (reusable && !_closed && !backend.IsClosed)
                {
                    reason = expired ? Diagnostics.DisconnectReason.Lifetime : Diagnostics.DisconnectReason.Evicted;
                }

                RetireLocked(backend);
                ServeWaitersLocked();
            }
            else
            {
                backend.LastUsedAt = Stopwatch.GetTimestamp();
                IdleOrHandOffLocked(backend);
            }
        }

        WakeGranted();
        if (close)
        {
            LimiterReleased?.Invoke(_limiters);
            await CloseOffPoolAsync(backend, _closed ? Diagnostics.DisconnectReason.PoolClosed : reason).ConfigureAwait(false);
        }
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

            _backoff.Failed(failure, Stopwatch.GetTimestamp(), Settings.Proxy.ServerLoginRetry);
            if (failure.IsLoginRefused)
            {
                while (_waiters.First is { } first)
                {
                    _waiters.RemoveFirst();
                    DecideLocked(first.Value, null, new BackendUnavailableException(failure.SqlState, failure.Message, failure.Detail, null, failure.ServerError));
                }
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
            _connectingSlots--;
            backend.LastUsedAt = Stopwatch.GetTimestamp();
            IdleOrHandOffLocked(backend);
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
            backend.ExpiresAt = backend.CreatedAt + (long)(Settings.Proxy.ServerLifetime.TotalSeconds * factor * Stopwatch.Frequency);
        }
    }

    /// <summary>
    /// Janitor: takes idle backends past server_lifetime, and those idle longer than server_idle_timeout while the
    /// pool is above min_pool_size (oldest first). The caller closes them.
    /// </summary>
    internal List<(BackendConnection Backend, Diagnostics.DisconnectReason Reason)> TakeExpiredIdle()
    {
        var taken = new List<(BackendConnection, Diagnostics.DisconnectReason)>();
        long now = Stopwatch.GetTimestamp();
        long idleLimit = Settings.Proxy.ServerIdleTimeout > TimeSpan.Zero ? (long)(Settings.Proxy.ServerIdleTimeout.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        lock (_lock)
        {
            LinkedListNode<BackendConnection>? node = _idle.First;
            while (node is not null)
            {
                LinkedListNode<BackendConnection>? next = node.Next;
                BackendConnection b = node.Value;
                Diagnostics.DisconnectReason? reason = now >= b.ExpiresAt ? Diagnostics.DisconnectReason.Lifetime
                    : now - b.LastUsedAt > idleLimit && TotalLocked > Settings.MinPoolSize ? Diagnostics.DisconnectReason.IdleTimeout
                    : null;
                if (reason is { } r)
                {
                    _idle.Remove(node);
                    RetireLocked(b);
                    taken.Add((b, r));
                }

                node = next;
            }
        }

        return taken;
    }

    /// <summary>Marks a linked backend as being cleaned (reset query) after its client left.</summary>
    public void MarkUsed(BackendConnection backend)
    {
        lock (_lock)
        {
            Transition(backend, BackendState.Used);
        }
    }

    private void IdleOrHandOffLocked(BackendConnection backend)
    {
        if (_waiters.First is { } first)
        {
            _waiters.RemoveFirst();
            Transition(backend, BackendState.Active);
            DecideLocked(first.Value, backend, null);
            return;
        }

        Transition(backend, BackendState.Idle);
        _idle.AddLast(backend.IdleNode); // the backend's own node: going idle allocates nothing
    }

    private bool TryTakeIdleLocked([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BackendConnection? backend)
    {
        while (true)
        {
            LinkedListNode<BackendConnection>? node = Settings.Proxy.ServerRoundRobin ? _idle.First : _idle.Last;
            if (node is null)
            {
                backend = null;
                return false;
            }

            _idle.Remove(node);
            backend = node.Value;
            if (IsDeadWhileIdle(backend))
            {
                // Dropped here, closed off the lock; its slot frees for this very acquire to open a new one.
                RetireLocked(backend);
                BackendConnection dead = backend;
                _ = Task.Run(async () =>
                {
                    await CloseOffPoolAsync(dead, Diagnostics.DisconnectReason.BackendClosed).ConfigureAwait(false);
                    LimiterReleased?.Invoke(_limiters);
                });
                continue;
            }

            Transition(backend, BackendState.Active);
            return true;
        }
    }

    private bool TryReserveSlotLocked(bool reserve, out ConnectionLimiter? blockedBy)
    {
        blockedBy = null;
        if (_closed)
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

        _connectingSlots++;
        return true;
    }

    /// <summary>Takes a backend out of the pool's accounting (state Closing) and frees its shared-limit slots.</summary>
    private void RetireLocked(BackendConnection backend)
    {
        Transition(backend, BackendState.Closing);
        ReleaseLimitersLocked();
    }

    /// <summary>Closes a retired backend through the manager (which logs why), or directly when there is none.</summary>
    private ValueTask CloseOffPoolAsync(BackendConnection backend, Diagnostics.DisconnectReason reason) =>
        CloseBackend is { } closer ? closer(backend, reason) : backend.CloseAsync();

    private void ReleaseLimitersLocked()
    {
        foreach (ConnectionLimiter limiter in _limiters)
        {
            limiter.Release();
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

    /// <summary>Closes one idle backend (oldest first) so another pool may use its shared slot.</summary>
    internal BackendConnection? TryEvictIdle()
    {
        lock (_lock)
        {
            if (_idle.First is not { } node)
            {
                return null;
            }

            _idle.Remove(node);
            RetireLocked(node.Value);
            return node.Value;
        }
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

    /// <summary>Closes the pool: idle backends close now, linked ones when released; waiters get an error.</summary>
    internal async Task CloseAsync()
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _closed = true;
            idle = [.. _idle];
            _idle.Clear();
            foreach (BackendConnection b in idle)
            {
                RetireLocked(b);
            }

            while (_waiters.First is { } first)
            {
                _waiters.RemoveFirst();
                DecideLocked(first.Value, null, new BackendUnavailableException(SqlState.AdminShutdown, "the pooler is shutting down"));
            }
        }

        WakeGranted();

        foreach (BackendConnection b in idle)
        {
            await CloseOffPoolAsync(b, Diagnostics.DisconnectReason.PoolClosed).ConfigureAwait(false);
        }
    }

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new BackendUnavailableException(SqlState.AdminShutdown, "the pooler is shutting down");
        }
    }

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.PoolWaitTimeout, Level = LogLevel.Warning,
        Message = "Pool {Database}/{User}: a client waited longer than query_wait_timeout ({Seconds}s) with {Active} servers active")]
    private static partial void LogWaitTimeout(ILogger logger, string database, string user, double seconds, int active);
}
