using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
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

    /// <summary>The socket threads the backends opened from now on are served by, in turn (none: not on a socket thread).</summary>
    public int[] ServingThreads = [];

    public static BackendConnection NewBackend(Pool pool) => NewBackend(pool, out _, out _);

    /// <summary>A backend whose output is <paramref name="toBackend"/>'s writer and whose input is <paramref name="fromBackend"/>'s reader.</summary>
    public static BackendConnection NewBackend(Pool pool, out Pipe toBackend, out Pipe fromBackend, int servingThread = -1)
    {
        toBackend = new Pipe();
        fromBackend = new Pipe();
        var context = new ServedContext(Guid.NewGuid().ToString(), new Duplex(fromBackend.Reader, toBackend.Writer), new Duplex(toBackend.Reader, fromBackend.Writer))
        {
            ServingThreadIndex = servingThread,
        };
        return new BackendConnection(context, "fake", 1, pool);
    }

    /// <summary>The pools' clock: it moves only when a test says so.</summary>
    public FakeTimeProvider Time { get; } = new();

    private readonly List<Pool> _pools = [];

    public Pool CreatePool(PoolSettings settings, params ConnectionLimiter[] limiters)
    {
        var target = new PoolTarget("fake", 1, "db", new BackendCredentials { User = "u" });
        var pool = new Pool(new PoolKey("db", "u"), target, settings, limiters.Length == 0 ? [new ConnectionLimiter(0)] : limiters, OpenAsync,
            NullLogger.Instance, Time);
        _pools.Add(pool);
        return pool;
    }

    /// <summary>
    /// Moves the clock on by <paramref name="by"/> and runs what the pool manager's 100 ms clock runs (waiter
    /// deadlines, the retry after a failed connect), as many times as its ticks would have fired.
    /// </summary>
    public void Advance(TimeSpan by)
    {
        TimeSpan step = TimeSpan.FromMilliseconds(100);
        for (TimeSpan done = TimeSpan.Zero; done < by; done += step)
        {
            Time.Advance(by - done < step ? by - done : step);
            foreach (Pool pool in _pools)
            {
                pool.CheckWaiters();
                pool.RetryIfDue(default);
            }
        }
    }

    /// <summary>A failing connect fails at once (as a refused TCP connect does), so a test's clock steps are deterministic; a success is asynchronous.</summary>
    private async ValueTask<BackendConnection> OpenAsync(Pool pool, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Interlocked.Increment(ref Attempts);
        if (Fail)
        {
            throw new BackendUnavailableException(FailWith, FailWith == SqlState.ConnectionFailure ? "could not connect to server: refused"
                : "server login failed: password authentication failed for user \"u\"");
        }

        await Task.Yield();
        int opened = Interlocked.Increment(ref Opened);
        return NewBackend(pool, out _, out _, ServingThreads.Length == 0 ? -1 : ServingThreads[(opened - 1) % ServingThreads.Length]);
    }

    /// <summary>A connection the way the socket transport's are: served by one socket thread.</summary>
    private sealed class ServedContext(string id, IDuplexPipe transport, IDuplexPipe application)
        : DefaultConnectionContext(id, transport, application), IServedOnThread
    {
        public int ServingThreadIndex { get; init; }
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
