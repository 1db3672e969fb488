using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Backend;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;

namespace PgProxy.Core.Tests.Pooling;

/// <summary>Pools whose backends are in-memory pipes: no sockets, no PostgreSQL.</summary>
internal sealed class FakeBackends
{
    public int Opened;
    public int Attempts;
    public bool Fail;
    public string FailWith = SqlState.ConnectionFailure;

    public static BackendConnection NewBackend(Pool pool) => NewBackend(pool, out _, out _);

    /// <summary>A backend whose output is <paramref name="toBackend"/>'s writer and whose input is <paramref name="fromBackend"/>'s reader.</summary>
    public static BackendConnection NewBackend(Pool pool, out Pipe toBackend, out Pipe fromBackend)
    {
        toBackend = new Pipe();
        fromBackend = new Pipe();
        var context = new DefaultConnectionContext(Guid.NewGuid().ToString(), new Duplex(fromBackend.Reader, toBackend.Writer), new Duplex(toBackend.Reader, fromBackend.Writer));
        return new BackendConnection(context, "fake", 1, pool);
    }

    public Pool CreatePool(PoolSettings settings, params ConnectionLimiter[] limiters)
    {
        var target = new PoolTarget("fake", 1, "db", new BackendCredentials { User = "u" });
        var pool = new Pool(new PoolKey("db", "u"), target, settings, limiters.Length == 0 ? [new ConnectionLimiter(0)] : limiters, OpenAsync,
            NullLogger.Instance);
        // The pool manager's clock, faster: waiter deadlines are checked by it, not by the waiters.
        _clocks.Add(new Timer(_ =>
        {
            pool.CheckWaiters();
            pool.RetryIfDue(default);
        }, null, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10)));
        return pool;
    }

    private readonly List<Timer> _clocks = [];

    private async ValueTask<BackendConnection> OpenAsync(Pool pool, CancellationToken ct)
    {
        await Task.Yield();
        ct.ThrowIfCancellationRequested();
        Interlocked.Increment(ref Attempts);
        if (Fail)
        {
            throw new BackendUnavailableException(FailWith, FailWith == SqlState.ConnectionFailure ? "could not connect to server: refused"
                : "server login failed: password authentication failed for user \"u\"");
        }

        Interlocked.Increment(ref Opened);
        return NewBackend(pool);
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
