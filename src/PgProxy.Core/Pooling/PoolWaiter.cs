using System.Threading.Tasks.Sources;
using PgProxy.Core.Backend;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A client waiting for a backend. It sits in its pool's FIFO queue until it is granted either an idle backend
/// (hand-off) or a free slot to open one itself, or fails (query_wait_timeout, client gone, pool closed). The outcome
/// is decided under the pool lock, so a waiter that leaves the queue can never also be granted; it is delivered by
/// <see cref="Wake"/> after the lock is released.
/// <para>
/// Delivery runs the waiting session's continuation on the releasing thread (no thread-pool hop; PgBouncer hands a
/// server to the next client inside its event loop the same way). A chain of hand-offs on one thread (clients that
/// end at once and release again) is cut by queueing past a small depth, so the stack stays bounded. Timeouts are
/// checked by the pool manager's clock (<see cref="Pool.CheckWaiters"/>), not by a timer per wait.
/// </para>
/// </summary>
internal sealed class PoolWaiter : IValueTaskSource<BackendConnection?>
{
    private const int MaxInlineDepth = 8;

    [ThreadStatic]
    private static int t_depth;

    private ManualResetValueTaskSourceCore<BackendConnection?> _core;
    private BackendConnection? _backend;
    private Exception? _error;

    public PoolWaiter(long enqueuedAt, CancellationToken clientGone)
    {
        Node = new LinkedListNode<PoolWaiter>(this);
        EnqueuedAt = enqueuedAt;
        ClientGone = clientGone;
    }

    public LinkedListNode<PoolWaiter> Node { get; }

    public long EnqueuedAt { get; }

    /// <summary>Cancelled when the waiting client disconnects (seen by the clock).</summary>
    public CancellationToken ClientGone { get; }

    /// <summary>A backend (hand-off), null (a slot was reserved: open a backend yourself), or the failure.</summary>
    public ValueTask<BackendConnection?> Outcome => new(this, _core.Version);

    /// <summary>Under the pool lock: the waiter gets this backend, or a slot when null.</summary>
    public void Grant(BackendConnection? backend) => _backend = backend;

    /// <summary>Under the pool lock: the waiter fails with this error.</summary>
    public void Fail(Exception error) => _error = error;

    /// <summary>Off the pool lock: delivers the outcome.</summary>
    public void Wake()
    {
        if (t_depth >= MaxInlineDepth)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static w => w.Complete(), this, preferLocal: true);
            return;
        }

        t_depth++;
        try
        {
            Complete();
        }
        finally
        {
            t_depth--;
        }
    }

    private void Complete()
    {
        if (_error is null)
        {
            _core.SetResult(_backend);
        }
        else
        {
            _core.SetException(_error);
        }
    }

    BackendConnection? IValueTaskSource<BackendConnection?>.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<BackendConnection?>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<BackendConnection?>.OnCompleted(Action<object?> continuation, object? state, short token,
        ValueTaskSourceOnCompletedFlags flags) => _core.OnCompleted(continuation, state, token, flags);
}
