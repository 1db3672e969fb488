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
        long idleLimit = Settings.Proxy.ServerIdleTimeout > TimeSpan.Zero ? (long)(Settings.Proxy.ServerIdleTimeout.TotalSeconds * Time.TimestampFrequency) : long.MaxValue;
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
