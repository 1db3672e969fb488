using Microsoft.Extensions.Logging;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Infrastructure;
using PgProxy.Protocol;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A bounded pool of backends for one (database, user). Idle backends are reused LIFO (or FIFO with
/// server_round_robin); waiting clients are served in arrival order (<c>Pool.Waiters.cs</c>); a client that waited
/// reserve_pool_timeout may open up to reserve_pool_size extra backends; max_db_connections and max_user_connections
/// are shared limiters; connects and their failures are in <c>Pool.Connect.cs</c>, the janitor's work in
/// <c>Pool.Janitor.cs</c>, the settings views its clients share in <c>Pool.Views.cs</c>. Every state change of a backend goes through <see cref="Transition"/>, which keeps the
/// counters; a slot reserved for a connect counts as <see cref="BackendState.Connecting"/>.
/// </summary>
public sealed partial class Pool
{
    private readonly Lock _lock = new();
    private readonly LinkedList<BackendConnection> _idle = new();
    private readonly int[] _counts = new int[Enum.GetValues<BackendState>().Length];
    private readonly int[] _clients = new int[Enum.GetValues<ClientState>().Length];
    private readonly ConnectionLimiter[] _limiters;
    private readonly Func<Pool, CancellationToken, ValueTask<BackendConnection>> _open;
    private readonly ILogger _logger;
    private bool _closed;

    internal Pool(PoolKey key, PoolTarget target, PoolSettings settings, ConnectionLimiter[] limiters,
        Func<Pool, CancellationToken, ValueTask<BackendConnection>> open, ILogger logger, TimeProvider? time = null,
        PoolInstruments? instruments = null)
    {
        Key = key;
        _target = target;
        _settings = settings;
        _limiters = limiters;
        _open = open;
        _logger = logger;
        Time = time ?? TimeProvider.System;
        _loginViews = new Dictionary<string, ClientSettings>(StringComparer.Ordinal);
        _loginViewsBySpan = _loginViews.GetAlternateLookup<ReadOnlySpan<char>>();
        Stats = new PoolStats(Time.TimestampFrequency, instruments, [new("database", key.Database), new("user", key.User)]);
    }

    /// <summary>
    /// The shared limiters this pool counts against. A span, not a list interface: a foreach over the interface
    /// allocates an enumerator, and every released transaction looks at them (PoolManager.OthersWaitOnAFullLimiter).
    /// </summary>
    internal ReadOnlySpan<ConnectionLimiter> Limiters => _limiters;

    /// <summary>The pool's key.</summary>
    public PoolKey Key { get; }

    private PoolTarget _target;
    private PoolSettings _settings;

    /// <summary>Where backends connect (replaced whole by a reload).</summary>
    public PoolTarget Target => Volatile.Read(ref _target);

    /// <summary>Effective settings (replaced whole by a reload: sizes and timeouts apply from the next read).</summary>
    public PoolSettings Settings => Volatile.Read(ref _settings);

    /// <summary>The clock: every timestamp of this pool and its backends comes from it (a fake one in tests).</summary>
    public TimeProvider Time { get; }

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

    /// <summary>Called when a client starts waiting: the manager's waiter clock runs while anyone waits.</summary>
    internal Action? WaiterQueued { get; set; }

    /// <summary>Called when an idle backend may expire at the given timestamp: the janitor is due by then.</summary>
    internal Action<long>? JanitorDueBy { get; set; }

    /// <summary>Called to close a backend off the caller's path (logging included).</summary>
    internal Func<BackendConnection, Diagnostics.DisconnectReason, ValueTask>? CloseBackend { get; set; }

    /// <summary>Running totals: transactions, queries, bytes, times (SHOW STATS_TOTALS, /metrics).</summary>
    public PoolStats Stats { get; }

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
        _counts[(int)BackendState.Active], _counts[(int)BackendState.Idle], _counts[(int)BackendState.Used], _counts[(int)BackendState.Connecting],
        _waiters.Count, _counts[(int)BackendState.Testing]);

    private int TotalLocked =>
        _counts[(int)BackendState.Connecting] + _counts[(int)BackendState.Active] + _counts[(int)BackendState.Idle] + _counts[(int)BackendState.Used] +
        _counts[(int)BackendState.Testing];

    /// <summary>How long the longest-waiting client has waited for a backend (zero when none waits): PgBouncer's maxwait.</summary>
    public TimeSpan MaxWait
    {
        get
        {
            lock (_lock)
            {
                return _waiters.First is { } first ? Time.GetElapsedTime(first.Value.EnqueuedAt) : TimeSpan.Zero;
            }
        }
    }

    /// <summary>Logged-in clients of this pool: active, waiting or idle.</summary>
    public int LoggedInClients => ClientCount(ClientState.Active) + ClientCount(ClientState.Waiting) + ClientCount(ClientState.Idle);

    /// <summary>Clients of this pool in <paramref name="state"/> now (read without a lock: each counter is exact, a set of them may be a moment apart).</summary>
    public int ClientCount(ClientState state) => Volatile.Read(ref _clients[(int)state]);

    /// <summary>Moves a client between states in the counters (called by its relay's one state-change method).</summary>
    internal void CountClient(ClientState state, int delta) => Interlocked.Add(ref _clients[(int)state], delta);

    private int _pinnedClients;
    private (string User, byte[] Query)? _pinProbe;

    /// <summary>Clients pinned to their servers now, or about to be (they sent a statement that creates session state).</summary>
    public int PinnedClients => Volatile.Read(ref _pinnedClients);

    /// <summary>
    /// max_pinned_clients_per_pool for this pool: the setting, or half the pool size, rounded down, so pins always leave
    /// at least one server to the other clients (a pool of one pins no one).
    /// </summary>
    public int MaxPinnedClients => Settings.Proxy.MaxPinnedClientsPerPool ?? Settings.PoolSize / 2;

    /// <summary>Counts a client as pinned if the pool is below its limit; false at the limit.</summary>
    internal bool TryCountPin()
    {
        int limit = MaxPinnedClients;
        while (true)
        {
            int now = Volatile.Read(ref _pinnedClients);
            if (now >= limit)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _pinnedClients, now + 1, now) == now)
            {
                return true;
            }
        }
    }

    /// <summary>Counts a client as pinned whatever the limit (state the server reported that no statement announced).</summary>
    internal void CountPin() => Interlocked.Increment(ref _pinnedClients);

    /// <summary>A pinned client let go of its server (or left).</summary>
    internal void UncountPin() => Interlocked.Decrement(ref _pinnedClients);

    /// <summary>The pin probe's Query message for this pool's servers (<see cref="Relay.PinProbe"/>).</summary>
    internal byte[] PinProbeQuery
    {
        get
        {
            string user = Target.Credentials.User;
            if (_pinProbe is not { } probe || probe.User != user)
            {
                probe = (user, Relay.PinProbe.QueryMessage(user));
                _pinProbe = probe;
            }

            return probe.Query;
        }
    }

    /// <summary>The one place a backend changes state; keeps the counters. A backend leaving Connecting gives up its slot's count.</summary>
    private void Transition(BackendConnection backend, BackendState to)
    {
        TrackLocked(backend, backend.State, to);
        if (backend.State != BackendState.Closing)
        {
            _counts[(int)backend.State]--;
        }

        backend.State = to;
        if (to != BackendState.Closing)
        {
            _counts[(int)to]++;
        }
    }

    /// <summary>
    /// Gets a backend for a client: an idle one at once, a new one while under pool_size, otherwise waits in line
    /// until query_wait_timeout (then throws a 53300 error that names the timeout).
    /// </summary>
    public ValueTask<BackendConnection> AcquireAsync(CancellationToken ct) =>
        TryAcquireIdle(out BackendConnection? idle) ? new ValueTask<BackendConnection>(idle) : AcquireSlowAsync(ct);

    /// <summary>
    /// <see cref="AcquireAsync"/>'s fast path alone: an idle backend now, when one is free and nobody waits. A caller
    /// whose cancellation token costs something to make (a client connection's ConnectionClosed makes a cancellation
    /// source, kept for the connection's life) asks this first and makes the token only to wait.
    /// </summary>
    public bool TryAcquireIdle([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BackendConnection? backend)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            if (!_paused && _waiters.Count == 0 && TryTakeIdleLocked(out backend))
            {
                Stats.Assigned(0);
                return true;
            }
        }

        backend = null;
        return false;
    }

    /// <summary>
    /// <see cref="AcquireAsync"/> without its fast path, for a caller whose <see cref="TryAcquireIdle"/> just missed (it
    /// looks at the idle list once more itself, under the lock, before it opens a backend or waits).
    /// </summary>
    internal async ValueTask<BackendConnection> AcquireSlowAsync(CancellationToken ct)
    {
        long started = Time.GetTimestamp();
        bool mustWait = false;
        while (true)
        {
            PoolWaiter? waiter = null;
            ConnectionLimiter? blockedBy = null;
            lock (_lock)
            {
                ThrowIfClosed();
                if (!_paused && _waiters.Count == 0 && TryTakeIdleLocked(out BackendConnection? idle))
                {
                    return Assigned(idle, started);
                }

                if (mustWait || _waiters.Count > 0 || InBackoffLocked || !TryReserveSlotLocked(reserve: false, out blockedBy))
                {
                    // A waiter keeps the time the client started waiting: query_wait_timeout counts from there.
                    waiter = new PoolWaiter(started, ct);
                    _waiters.AddLast(waiter.Node);
                    WaiterQueued?.Invoke();
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
                    return Assigned(handed, started);
                }
            }

            try
            {
                return Assigned(await OpenInSlotAsync(ct).ConfigureAwait(false), started);
            }
            catch (BackendUnavailableException ex) when (!ex.IsLoginRefused && !ct.IsCancellationRequested)
            {
                // The server is down or restarting: wait in line for the pool's retry, up to query_wait_timeout,
                // rather than fail a client the server may serve in a moment.
                mustWait = true;
            }
        }
    }

    private BackendConnection Assigned(BackendConnection backend, long waitingSince)
    {
        Stats.Assigned(Time.GetTimestamp() - waitingSince);
        return backend;
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
            if (backend.State == BackendState.Closing)
            {
                return; // already retired (it died while idle and its pump gave it up)
            }

            bool expired = reusable && Time.GetTimestamp() >= backend.ExpiresAt;
            bool stale = backend.Generation != _generation;
            bool surplus = _removed || TotalLocked > Settings.PoolSize + Settings.ReservePoolSize; // a reload shrank or removed the pool
            close = !reusable || _closed || backend.IsClosed || expired || stale || _paused || surplus || (yieldSlot && _waiters.Count == 0);
            if (close)
            {
                if (reusable && !_closed && !backend.IsClosed)
                {
                    reason = expired ? Diagnostics.DisconnectReason.Lifetime
                        : stale ? Diagnostics.DisconnectReason.Reconnect
                        : _paused ? Diagnostics.DisconnectReason.Paused
                        : surplus ? Diagnostics.DisconnectReason.ConfigChanged
                        : Diagnostics.DisconnectReason.Evicted;
                }

                RetireLocked(backend);
                ServeWaitersLocked();
            }
            else
            {
                backend.LastUsedAt = Time.GetTimestamp();
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
    /// A backend's pump heard its server go while no client was linked (a FATAL on terminate or shutdown, or the close).
    /// An idle one leaves the pool now; one a client has just taken is closed, and its holder finds out.
    /// </summary>
    internal async ValueTask OnIdleBackendLostAsync(BackendConnection backend)
    {
        bool retired = false;
        lock (_lock)
        {
            if (backend.State == BackendState.Idle)
            {
                _idle.Remove(backend.IdleNode);
                RetireLocked(backend);
                ServeWaitersLocked(); // its slot may open a backend for a waiter
                retired = true;
            }
        }

        WakeGranted();
        if (retired)
        {
            LimiterReleased?.Invoke(_limiters);
            await CloseOffPoolAsync(backend, Diagnostics.DisconnectReason.BackendClosed).ConfigureAwait(false);
        }
        else
        {
            await backend.CloseAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Marks a backend taken by a client as running the proxy's cleanup (ROLLBACK, server_reset_query).</summary>
    public void MarkUsed(BackendConnection backend) => Mark(backend, BackendState.Used);

    /// <summary>Marks a backend as running the pre-ping (server_check_query) before a client gets it.</summary>
    public void MarkTesting(BackendConnection backend) => Mark(backend, BackendState.Testing);

    /// <summary>Marks a backend as a client's again (after the pre-ping).</summary>
    public void MarkActive(BackendConnection backend) => Mark(backend, BackendState.Active);

    private void Mark(BackendConnection backend, BackendState state)
    {
        lock (_lock)
        {
            if (backend.State != BackendState.Closing)
            {
                Transition(backend, state);
            }
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
        if (IdleExpiryLocked(backend) is var expiry and not long.MaxValue)
        {
            JanitorDueBy?.Invoke(expiry);
        }
    }

    /// <summary>How far back from the most recently used idle backend the pool looks for one on the caller's thread.</summary>
    private const int SameThreadLookBack = 4;

    private bool TryTakeIdleLocked([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BackendConnection? backend)
    {
        while (true)
        {
            LinkedListNode<BackendConnection>? node = Settings.Proxy.ServerRoundRobin ? _idle.First : SameThreadOrLast();
            if (node is null)
            {
                backend = null;
                return false;
            }

            _idle.Remove(node);
            backend = node.Value;
            if (backend.IsClosed)
            {
                // Closed by its pump a moment ago (the server went away); its slot frees for this very acquire.
                RetireLocked(backend);
                continue;
            }

            Transition(backend, BackendState.Active);
            return true;
        }
    }

    /// <summary>
    /// The most recently used idle backend (LIFO), unless one of the few used just before it is served by the caller's
    /// own socket thread (<see cref="ServingThread"/>): the client's query and the backend's reply are then handled by
    /// one thread, without waking the other.
    /// </summary>
    private LinkedListNode<BackendConnection>? SameThreadOrLast()
    {
        LinkedListNode<BackendConnection>? last = _idle.Last;
        int thread = ServingThread.Current;
        if (thread < 0)
        {
            return last;
        }

        LinkedListNode<BackendConnection>? node = last;
        for (int i = 0; i < SameThreadLookBack && node is not null; i++, node = node.Previous)
        {
            if (node.Value.ServingThreadIndex == thread)
            {
                return node;
            }
        }

        return last;
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

    /// <summary>Closes the pool: idle backends close now, linked ones when released; waiters get an error.</summary>
    internal async Task CloseAsync()
    {
        List<BackendConnection> idle;
        lock (_lock)
        {
            _closed = true;
            idle = TakeAllIdleLocked();
            FailWaitersLocked(() => new BackendUnavailableException(SqlState.AdminShutdown, "the pooler is shutting down"));
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

    /// <summary>A backend's pump failed unexpectedly (a bug): logged, and the backend is given up.</summary>
    /// <summary>The pool's logger (a relay logs its client's pins with it).</summary>
    internal ILogger Logger => _logger;

    internal void ReportPumpFailure(BackendConnection backend, Exception ex) => LogPumpFailed(_logger, ex, backend.Id, Key.Database, Key.User);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.BackendPumpFailed, Level = LogLevel.Error, Message = "Backend {BackendId} for {Database}/{User}: unexpected error")]
    private static partial void LogPumpFailed(ILogger logger, Exception ex, long backendId, string database, string user);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.PoolWaitTimeout, Level = LogLevel.Warning,
        Message = "Pool {Database}/{User}: a client waited longer than query_wait_timeout ({Seconds}s) with {Active} servers active")]
    private static partial void LogWaitTimeout(ILogger logger, string database, string user, double seconds, int active);
}
