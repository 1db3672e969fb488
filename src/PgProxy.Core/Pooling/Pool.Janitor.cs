using PgProxy.Core.Infrastructure;
using PgProxy.Core.Backend;

namespace PgProxy.Core.Pooling;

/// <summary>The janitor's side of a pool: idle backends past server_lifetime or server_idle_timeout, and evictions for shared limits.</summary>
public sealed partial class Pool
{
    /// <summary>
    /// Janitor: takes idle backends past server_lifetime, and those idle longer than server_idle_timeout while the
    /// pool is above min_pool_size (oldest first). The caller closes them.
    /// </summary>
    internal List<(BackendConnection Backend, Diagnostics.DisconnectReason Reason)> TakeExpiredIdle()
    {
        var taken = new List<(BackendConnection, Diagnostics.DisconnectReason)>();
        long now = Time.GetTimestamp();
        long idleLimit = Settings.Proxy.ServerIdleTimeout > TimeSpan.Zero ? Time.Ticks(Settings.Proxy.ServerIdleTimeout) : long.MaxValue;
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

    /// <summary>
    /// When the janitor next has work here: the earliest time an idle backend reaches server_lifetime or
    /// server_idle_timeout, or soon while the pool is below min_pool_size; <see cref="long.MaxValue"/> for never.
    /// </summary>
    internal long NextJanitorDue()
    {
        lock (_lock)
        {
            long due = long.MaxValue;
            for (LinkedListNode<BackendConnection>? node = _idle.First; node is not null; node = node.Next)
            {
                due = Math.Min(due, IdleExpiryLocked(node.Value));
            }

            if (Settings.MinPoolSize > 0 && !_closed)
            {
                due = Math.Min(due, Time.GetTimestamp() + Time.Ticks(TimeSpan.FromMilliseconds(250)));
            }

            return due;
        }
    }

    /// <summary>The earliest time an idle backend may be closed (lifetime, or idle timeout if the pool is then above its minimum).</summary>
    private long IdleExpiryLocked(BackendConnection backend)
    {
        long due = backend.ExpiresAt;
        if (Settings.Proxy.ServerIdleTimeout > TimeSpan.Zero)
        {
            due = Math.Min(due, backend.LastUsedAt + Time.Ticks(Settings.Proxy.ServerIdleTimeout));
        }

        return due;
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

}
