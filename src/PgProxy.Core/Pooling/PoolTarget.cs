using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Pooling;

/// <summary>Where a pool's backends connect and how they log in.</summary>
public sealed record PoolTarget(string Host, int Port, string DbName, BackendCredentials Credentials);

/// <summary>A pool's effective settings, resolved once from [proxy], [databases.X] and [users.Y].</summary>
public sealed record PoolSettings
{
    /// <summary>Pool mode.</summary>
    public PoolMode Mode { get; init; } = PoolMode.Session;
    /// <summary>Backends before the reserve.</summary>
    public int PoolSize { get; init; } = 20;
    /// <summary>Backends kept open even when idle.</summary>
    public int MinPoolSize { get; init; }
    /// <summary>Extra backends after <see cref="ReservePoolTimeout"/>.</summary>
    public int ReservePoolSize { get; init; }
    /// <summary>Wait before the reserve may be used.</summary>
    public TimeSpan ReservePoolTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Longest wait for a backend; zero = forever.</summary>
    public TimeSpan QueryWaitTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Backoff after a failed connect before the pool dials again.</summary>
    public TimeSpan ServerLoginRetry { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Bound on connect + login, and on the proxy's own control queries.</summary>
    public TimeSpan ServerConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Backends older than this (less jitter) are closed when released; zero = never.</summary>
    public TimeSpan ServerLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Idle backends above the minimum close after this long; zero = never.</summary>
    public TimeSpan ServerIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Pre-ping backends idle longer than this; zero = always.</summary>
    public TimeSpan ServerCheckDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The pre-ping query; empty = no pre-ping.</summary>
    public string ServerCheckQuery { get; init; } = ";";

    /// <summary>Run before a backend is reused by another client; empty = none.</summary>
    public string ServerResetQuery { get; init; } = "DISCARD ALL";
    /// <summary>Protocol-level prepared statements kept per backend in transaction/statement mode; 0 = no mapping.</summary>
    public int MaxPreparedStatements { get; init; } = 200;

    /// <summary>FIFO reuse of idle backends instead of LIFO.</summary>
    public bool RoundRobin { get; init; }
}
