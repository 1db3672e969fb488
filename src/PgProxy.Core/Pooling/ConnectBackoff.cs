using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A pool's memory of failed connects, and when to dial again. A failure the server is only passing through
/// (connection refused, a timeout, 57P03 starting up or shutting down, too many connections) is retried after 100 ms,
/// doubling up to half a second, or server_login_retry if that is shorter: a restarted server is used again within a
/// moment of accepting connections, and its clients wait meanwhile. A login the server refuses (wrong password,
/// unknown database, no permission) waits the full server_login_retry, and clients are told the server's error at
/// once. Not thread-safe: the pool calls it under its lock. Times are timestamps of the pool's clock.
/// </summary>
internal sealed class ConnectBackoff
{
    /// <summary>The first retry after a passing failure.</summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between retries after passing failures.</summary>
    public static readonly TimeSpan MaxTransientRetry = TimeSpan.FromMilliseconds(500);

    private TimeSpan _delay;
    private long _nextAttemptAt;

    /// <summary>The last connect failure; null after a success.</summary>
    public BackendUnavailableException? LastFailure { get; private set; }

    /// <summary>True while the pool should not dial (a failure, and its retry time not reached).</summary>
    public bool IsWaiting(long now) => LastFailure is not null && now < _nextAttemptAt;

    /// <summary>The server refused the login and the retry time is not reached: new clients get its error at once.</summary>
    public BackendUnavailableException? Refusal(long now) => IsWaiting(now) && LastFailure!.IsLoginRefused ? LastFailure : null;

    /// <summary>Records a failed connect at <paramref name="now"/>.</summary>
    public void Failed(BackendUnavailableException failure, long now, long frequency, TimeSpan serverLoginRetry)
    {
        TimeSpan cap = serverLoginRetry < MaxTransientRetry ? serverLoginRetry : MaxTransientRetry;
        _delay = failure.IsLoginRefused ? serverLoginRetry
            : _delay <= TimeSpan.Zero || LastFailure?.IsLoginRefused == true ? (FirstRetry < cap ? FirstRetry : cap)
            : _delay * 2 < cap ? _delay * 2 : cap;
        LastFailure = failure;
        _nextAttemptAt = now + (long)(_delay.TotalSeconds * frequency);
    }

    /// <summary>Records a successful connect: the next failure starts the backoff again.</summary>
    public void Succeeded()
    {
        LastFailure = null;
        _delay = TimeSpan.Zero;
    }
}
