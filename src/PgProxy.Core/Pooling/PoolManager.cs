using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Auth;
using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Pooling;

/// <summary>
/// The map of pools, created on first use from the config snapshot; the shared limiters; the SCRAM keys captured
/// at client login (for SCRAM passthrough to backends); and the janitor that keeps min_pool_size backends open.
/// </summary>
public sealed partial class PoolManager : IAsyncDisposable
{
    private readonly ConcurrentDictionary<PoolKey, Pool> _pools = new();
    private readonly ConcurrentDictionary<string, ConnectionLimiter> _dbLimiters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConnectionLimiter> _userLimiters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _scramKeys = new(StringComparer.Ordinal);
    private readonly Lock _createLock = new();
    private readonly BackendConnector _connector;
    private readonly ILogger<PoolManager> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Deadline _waiterClock;
    private readonly Deadline _janitorClock;
    private readonly Deadline _statsClock;
    private long _statsOlderAt;
    private long _statsNewerAt;
    private Task _janitor = Task.CompletedTask;
    private int _janitorRunning;
    private int _disposed;

    /// <summary>Creates a manager.</summary>
    public PoolManager(ProxyConfig config, UserList users, BackendConnector connector, ILogger<PoolManager> logger, TimeProvider? time = null)
    {
        _config = config;
        _users = users;
        _connector = connector;
        _logger = logger;
        Time = time ?? TimeProvider.System;
        Deadlines = new DeadlineQueue(Time);
        _waiterClock = new Deadline(OnWaiterClock);
        _janitorClock = new Deadline(_ => OnJanitorClock());
        _statsClock = new Deadline(OnStatsClock);
        _statsOlderAt = _statsNewerAt = Time.GetTimestamp();
    }

    /// <summary>The clock of every pool, waiter and timeout.</summary>
    public TimeProvider Time { get; }

    /// <summary>Every deadline of the process (waiters, the janitor, client timeouts) on one timer.</summary>
    public DeadlineQueue Deadlines { get; }

    /// <summary>Protocol-level statements shared by all clients (transaction mode): each text is held once.</summary>
    public Prepared.StatementRegistry Statements { get; } = new();

    private Prepared.StatementMapper? _emptyMapper;

    /// <summary>
    /// The empty statement mapper a client starts with (shared: it registers nothing; the client's relay takes one of
    /// its own at the first named statement), for max_prepared_statements = <paramref name="maxPerBackend"/>.
    /// </summary>
    public Prepared.StatementMapper EmptyStatementMapper(int maxPerBackend)
    {
        Prepared.StatementMapper? empty = Volatile.Read(ref _emptyMapper);
        if (empty is null || empty.MaxPerBackend != maxPerBackend)
        {
            // After a reload that changed the setting; two logins racing here make one each, which is harmless.
            empty = Prepared.StatementMapper.Empty(Statements, maxPerBackend);
            Volatile.Write(ref _emptyMapper, empty);
        }

        return empty;
    }

    private ProxyConfig _config;
    private UserList _users;

    /// <summary>The config snapshot in force (replaced whole by a reload).</summary>
    public ProxyConfig Config => Volatile.Read(ref _config);

    /// <summary>The client secrets (replaced whole by a reload).</summary>
    public UserList Users => Volatile.Read(ref _users);

    /// <summary>
    /// A reload: the new config and secrets are in force from now on. Every pool takes its new settings (sizes and
    /// timeouts live; servers over a smaller size close as they come back); a pool whose destination or secret changed
    /// reconnects (servers close when given back); a pool whose database is gone is removed (no server goes idle
    /// again; the caller closes its clients at their transaction boundaries). Returns what it did, for the log.
    /// </summary>
    public IReadOnlyList<string> Apply(ProxyConfig config, UserList users)
    {
        var notes = new List<string>();
        var changed = new List<(Pool Pool, PoolTarget Target, PoolSettings Settings, bool Moved)>();
        lock (_createLock)
        {
            Volatile.Write(ref _config, config);
            Volatile.Write(ref _users, users);
            foreach ((string database, ConnectionLimiter limiter) in _dbLimiters)
            {
                DatabaseConfig? db = config.FindDatabase(database);
                limiter.SetMax(db?.MaxDbConnections ?? config.Proxy.MaxDbConnections);
            }

            foreach ((string user, ConnectionLimiter limiter) in _userLimiters)
            {
                limiter.SetMax(config.Users.TryGetValue(user, out UserConfig? u) ? u.MaxUserConnections : 0);
            }

            foreach (Pool pool in _pools.Values)
            {
                if (config.FindDatabase(pool.Key.Database) is not { } db)
                {
                    if (!pool.Removed)
                    {
                        pool.Remove();
                        notes.Add($"pool {pool.Key}: its database is no longer configured; its clients are closed at their transaction boundaries");
                    }

                    continue;
                }

                (PoolSettings settings, PoolTarget target, _, _) = Resolve(config, users, pool.Key, db);
                changed.Add((pool, target, settings, !SameDestination(pool.Target, target)));
            }
        }

        foreach ((Pool pool, PoolTarget target, PoolSettings settings, bool moved) in changed)
        {
            pool.Update(target, settings, moved);
            if (moved)
            {
                notes.Add($"pool {pool.Key}: server destination or credentials changed; servers reconnect as they are given back");
            }

            if (settings.MinPoolSize > 0)
            {
                Deadlines.ScheduleBy(_janitorClock, Deadlines.After(JanitorMinimumPeriod));
            }
        }

        OnLimiterReleased([.. _dbLimiters.Values, .. _userLimiters.Values]); // a raised limit may let waiters in
        return notes;
    }

    private static bool SameDestination(PoolTarget a, PoolTarget b) =>
        a.Host == b.Host && a.Port == b.Port && a.DbName == b.DbName && a.Credentials.User == b.Credentials.User &&
        a.Credentials.Password == b.Credentials.Password && a.Credentials.Md5Hash == b.Credentials.Md5Hash &&
        a.Credentials.ScramVerifier?.ToString() == b.Credentials.ScramVerifier?.ToString() &&
        a.Tls == b.Tls; // new TLS settings (mode, files, versions): servers are replaced as they come back; renewed files are not a change

    /// <summary>The connector (its transport also sends cancel requests).</summary>
    public BackendConnector Connector => _connector;

    /// <summary>The meter's histograms, set by <see cref="ProxyMetrics"/> when it is made (before any pool is).</summary>
    public PoolInstruments? Instruments { get; set; }

    /// <summary>All pools.</summary>
    public IEnumerable<Pool> Pools => _pools.Values;

    /// <summary>Remembers the ClientKey proven by a client's SCRAM login, for logging that user in to backends.</summary>
    public void RememberScramKey(string user, byte[] clientKey) => _scramKeys[user] = clientKey;

    /// <summary>The pool for a client of <paramref name="database"/> (config entry <paramref name="db"/>) as <paramref name="user"/>.</summary>
    public Pool GetOrCreate(DatabaseConfig db, string database, string user)
    {
        var key = new PoolKey(database, user);
        if (_pools.TryGetValue(key, out Pool? pool))
        {
            return pool;
        }

        lock (_createLock)
        {
            if (_pools.TryGetValue(key, out pool))
            {
                return pool;
            }

            pool = CreatePool(key, db);
            if (IsPaused(key.Database))
            {
                pool.Pause();
            }

            _pools[key] = pool;
        }

        Deadlines.ScheduleBy(_statsClock, Deadlines.After(Config.Proxy.StatsPeriod)); // a no-op once it runs
        LogPoolCreated(_logger, key.Database, key.User, pool.Target.Host, pool.Target.Port, pool.Target.DbName, pool.Settings.PoolSize, pool.Settings.Mode);
        if (pool.Settings.MinPoolSize > 0)
        {
            _ = pool.EnsureMinimumAsync(_stopping.Token);
            Deadlines.ScheduleBy(_janitorClock, Deadlines.After(JanitorMinimumPeriod)); // then the janitor keeps it up
        }

        return pool;
    }

    /// <summary>A pool's settings, target and shared limits as <paramref name="config"/> and <paramref name="users"/> give them.</summary>
    private (PoolSettings Settings, PoolTarget Target, int MaxDb, int MaxUser) Resolve(ProxyConfig config, UserList users, PoolKey key, DatabaseConfig db)
    {
        ProxySection p = config.Proxy;
        config.Users.TryGetValue(key.User, out UserConfig? userConfig);
        var settings = new PoolSettings
        {
            Mode = userConfig?.PoolMode ?? db.PoolMode ?? p.PoolMode,
            PoolSize = db.PoolSize ?? p.DefaultPoolSize,
            MinPoolSize = db.MinPoolSize ?? p.MinPoolSize,
            ReservePoolSize = db.ReservePoolSize ?? p.ReservePoolSize,
            Proxy = p,
        };

        string backendUser = db.User ?? key.User;
        UserSecret? secret = users.Find(backendUser);
        var credentials = new BackendCredentials
        {
            User = backendUser,
            Password = db.Password ?? (secret?.Kind == SecretKind.Plain ? secret.Secret : null),
            Md5Hash = secret?.Md5Hash,
            ScramVerifier = secret?.Kind == SecretKind.Scram ? secret.Verifier : null,
            ScramClientKey = () => _scramKeys.TryGetValue(backendUser, out byte[]? k) ? k : null,
        };
        var target = new PoolTarget(db.Host, db.Port, db.BackendDbName(key.Database), credentials, db.ServerTls.Over(p.ServerTls));
        return (settings, target, db.MaxDbConnections ?? p.MaxDbConnections, userConfig?.MaxUserConnections ?? 0);
    }

    private Pool CreatePool(PoolKey key, DatabaseConfig db)
    {
        (PoolSettings settings, PoolTarget target, int maxDb, int maxUser) = Resolve(Config, Users, key, db);
        var limiters = new List<ConnectionLimiter>();
        limiters.Add(_dbLimiters.GetOrAdd(key.Database, _ => new ConnectionLimiter(maxDb)));
        limiters.Add(_userLimiters.GetOrAdd(key.User, _ => new ConnectionLimiter(maxUser)));

        var pool = new Pool(key, target, settings, [.. limiters], OpenAsync, _logger, Time, Instruments)
        {
            LimiterReleased = OnLimiterReleased,
            LimiterBlocked = OnLimiterBlocked,
            ShouldYieldSlot = OthersWaitOnAFullLimiter,
            CloseBackend = CloseBackendAsync,
            WaiterQueued = () => Deadlines.ScheduleBy(_waiterClock, Deadlines.After(WaiterClockPeriod)),
            JanitorDueBy = due => Deadlines.ScheduleBy(_janitorClock, Math.Max(due, Deadlines.After(JanitorMinimumPeriod))),
        };
        foreach (ConnectionLimiter limiter in limiters)
        {
            lock (limiter.Pools)
            {
                limiter.Pools.Add(pool);
            }
        }

        return pool;
    }

    private async ValueTask<BackendConnection> OpenAsync(Pool pool, CancellationToken ct)
    {
        pool.Stats.ConnectAttempt();
        try
        {
            BackendConnection backend = await _connector.ConnectAsync(pool, pool.Settings.Proxy.ServerConnectTimeout, ct).ConfigureAwait(false);
            LogBackendConnected(_logger, backend.Id, pool.Key.Database, pool.Key.User, backend.Host, backend.Port, backend.ProcessId, backend.HowLoggedIn);
            pool.WelcomeParameters ??= new Dictionary<string, string>(backend.Parameters, StringComparer.OrdinalIgnoreCase);
            return backend;
        }
        catch (Infrastructure.BackendUnavailableException ex)
        {
            pool.Stats.ConnectFailed(ex.Failure ?? (ex.IsLoginRefused ? ConnectFailure.LoginRefused
                : ex.ServerError is not null ? ConnectFailure.ServerError : ConnectFailure.Other));
            LogBackendConnectFailed(_logger, pool.Key.Database, pool.Key.User, pool.Target.Host, pool.Target.Port, ex.Message);
            throw;
        }
    }

    /// <summary>Closes a backend and logs why.</summary>
    public async ValueTask CloseBackendAsync(BackendConnection backend, DisconnectReason reason)
    {
        await backend.CloseAsync().ConfigureAwait(false);
        LogBackendClosed(_logger, backend.Id, backend.Pool.Key.Database, backend.Pool.Key.User, backend.ProcessId, reason);
    }

    private static void OnLimiterReleased(ConnectionLimiter[] limiters)
    {
        foreach (ConnectionLimiter limiter in limiters)
        {
            if (limiter.Max == 0)
            {
                continue;
            }

            Pool[] pools;
            lock (limiter.Pools)
            {
                pools = [.. limiter.Pools];
            }

            foreach (Pool pool in pools)
            {
                pool.ServeWaiters();
            }
        }
    }

    private static bool OthersWaitOnAFullLimiter(Pool pool)
    {
        foreach (ConnectionLimiter limiter in pool.Limiters)
        {
            if (limiter.Max == 0 || limiter.Count < limiter.Max)
            {
                continue;
            }

            Pool[] pools;
            lock (limiter.Pools)
            {
                pools = [.. limiter.Pools];
            }

            foreach (Pool other in pools)
            {
                if (other != pool && other.HasWaiters)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private void OnLimiterBlocked(Pool blocked, ConnectionLimiter limiter)
    {
        Pool[] pools;
        lock (limiter.Pools)
        {
            pools = [.. limiter.Pools];
        }

        foreach (Pool pool in pools)
        {
            if (pool != blocked && pool.TryEvictIdle() is { } victim)
            {
                _ = EvictAsync(victim, limiter);
                return;
            }
        }
    }

    private async Task EvictAsync(BackendConnection victim, ConnectionLimiter limiter)
    {
        await CloseBackendAsync(victim, DisconnectReason.Evicted).ConfigureAwait(false);
        OnLimiterReleased([limiter]);
    }

    private static readonly TimeSpan WaiterClockPeriod = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan JanitorMinimumPeriod = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The background clocks run only while they have work (nothing to start: the pools arm them). While clients wait, every 100 ms: waiter
    /// deadlines (query_wait_timeout, reserve_pool_timeout, clients gone) and, after a failed connect, the retry for
    /// waiting clients once its time has come (dialed off the clock's thread, so a slow connect never delays a
    /// deadline). The janitor, when an idle backend reaches server_idle_timeout (above min_pool_size) or
    /// server_lifetime, and every 250 ms while a pool has a min_pool_size to keep: it closes the expired backends and
    /// tops pools up. Neither touches a linked backend; with no waiters and no expiry in sight nothing runs.
    /// </summary>
    private void OnWaiterClock(long now)
    {
        bool waiting = false;
        foreach (Pool pool in _pools.Values)
        {
            pool.CheckWaiters();
            pool.RetryIfDue(_stopping.Token);
            waiting |= pool.Counts.Waiting > 0;
        }

        if (waiting && !_stopping.IsCancellationRequested)
        {
            Deadlines.Schedule(_waiterClock, now + Time.Ticks(WaiterClockPeriod));
        }
    }

    /// <summary>
    /// When the pools' totals were snapshotted the time before last (PgBouncer's old_stamp): the averages of SHOW STATS
    /// run from there to now, against each pool's <see cref="PoolStats.Older"/>.
    /// </summary>
    public long StatsWindowStart => Volatile.Read(ref _statsOlderAt);

    /// <summary>The stats_period clock, armed with the first pool: every pool's totals are snapshotted, one pass per period.</summary>
    private void OnStatsClock(long now)
    {
        foreach (Pool pool in _pools.Values)
        {
            pool.Stats.Shift(Time);
        }

        Volatile.Write(ref _statsOlderAt, _statsNewerAt);
        _statsNewerAt = now;
        if (!_stopping.IsCancellationRequested)
        {
            Deadlines.Schedule(_statsClock, now + Time.Ticks(Config.Proxy.StatsPeriod));
        }
    }

    private void OnJanitorClock()
    {
        if (_stopping.IsCancellationRequested || Interlocked.Exchange(ref _janitorRunning, 1) != 0)
        {
            return;
        }

        _janitor = RunJanitorAsync();
    }

    private async ValueTask JanitorTickAsync()
    {
        foreach (Pool pool in _pools.Values)
        {
            foreach ((BackendConnection backend, DisconnectReason reason) in pool.TakeExpiredIdle())
            {
                await CloseBackendAsync(backend, reason).ConfigureAwait(false);
                OnLimiterReleased([.. pool.Limiters]);
            }

            if (pool.Settings.MinPoolSize > 0)
            {
                await pool.EnsureMinimumAsync(_stopping.Token).ConfigureAwait(false);
            }
        }
    }

    private async Task RunJanitorAsync()
    {
        try
        {
            await JanitorTickAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException && _stopping.IsCancellationRequested)
        {
            return;
        }
        finally
        {
            Volatile.Write(ref _janitorRunning, 0);
        }

        long next = long.MaxValue;
        foreach (Pool pool in _pools.Values)
        {
            next = Math.Min(next, pool.NextJanitorDue());
        }

        if (next != long.MaxValue && !_stopping.IsCancellationRequested)
        {
            Deadlines.ScheduleBy(_janitorClock, Math.Max(next, Deadlines.After(JanitorMinimumPeriod)));
        }
    }

    /// <summary>Stops the janitor and closes every pool's idle backends.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        Deadlines.Dispose();
        await _janitor.ConfigureAwait(false);

        foreach (Pool pool in _pools.Values)
        {
            await pool.CloseAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    [LoggerMessage(EventId = ProxyEventIds.PoolCreated, Level = LogLevel.Information,
        Message = "Pool {Database}/{User} created: server {Host}:{Port} database {DbName}, pool_size {PoolSize}, mode {Mode}")]
    private static partial void LogPoolCreated(ILogger logger, string database, string user, string host, int port, string dbName, int poolSize, PoolMode mode);

    [LoggerMessage(EventId = ProxyEventIds.BackendConnected, Level = LogLevel.Information,
        Message = "Backend {BackendId} connected for {Database}/{User} to {Host}:{Port} (server pid {ServerPid}, {Auth})")]
    private static partial void LogBackendConnected(ILogger logger, long backendId, string database, string user, string host, int port, int serverPid, string auth);

    [LoggerMessage(EventId = ProxyEventIds.BackendClosed, Level = LogLevel.Information,
        Message = "Backend {BackendId} for {Database}/{User} closed (server pid {ServerPid}): {Reason}")]
    private static partial void LogBackendClosed(ILogger logger, long backendId, string database, string user, int serverPid, DisconnectReason reason);

    [LoggerMessage(EventId = ProxyEventIds.BackendConnectFailed, Level = LogLevel.Warning,
        Message = "Backend connect for {Database}/{User} to {Host}:{Port} failed: {Reason}")]
    private static partial void LogBackendConnectFailed(ILogger logger, string database, string user, string host, int port, string reason);
}
