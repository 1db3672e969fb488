using PgProxy.Core.Backend;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A client waiting for a backend. It sits in its pool's FIFO queue until it is granted either an idle backend
/// (hand-off) or a free slot to open one itself. Queue membership and the grant both change under the pool lock,
/// so a waiter that leaves the queue on timeout can never also be granted.
/// </summary>
internal sealed class PoolWaiter
{
    private readonly TaskCompletionSource<BackendConnection?> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PoolWaiter(long enqueuedAt)
    {
        Node = new LinkedListNode<PoolWaiter>(this);
        EnqueuedAt = enqueuedAt;
    }

    public LinkedListNode<PoolWaiter> Node { get; }

    public long EnqueuedAt { get; }

    /// <summary>Completes with a backend (hand-off) or null (a slot was reserved: open a backend yourself).</summary>
    public Task<BackendConnection?> Task => _tcs.Task;

    public bool IsQueued => Node.List is not null;

    public void Hand(BackendConnection backend) => _tcs.SetResult(backend);

    public void GrantSlot() => _tcs.SetResult(null);
}
