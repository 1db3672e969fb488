using System.Collections.Concurrent;

namespace PgProxy.Core.Cancellation;

/// <summary>
/// Peering: the cancel keys being forwarded to a peer right now. Forwarding waits for the peer to close the
/// connection, so a key that comes back while its forward is still in flight (two replicas configured with the same
/// peer_id would pass it to and fro) is a loop, and is not forwarded again. Two cancels of one client in a row are not:
/// the first is done before the second arrives.
/// </summary>
public sealed class PeerCancelGuard
{
    private readonly ConcurrentDictionary<long, byte> _inFlight = new();

    /// <summary>True when the key may be forwarded now (then <see cref="End"/> after); false when it is already on its way.</summary>
    public bool TryBegin(int processId, int secretKey) => _inFlight.TryAdd(Key(processId, secretKey), 0);

    /// <summary>The forward of the key is done.</summary>
    public void End(int processId, int secretKey) => _inFlight.TryRemove(Key(processId, secretKey), out _);

    private static long Key(int processId, int secretKey) => ((long)processId << 32) | (uint)secretKey;
}
