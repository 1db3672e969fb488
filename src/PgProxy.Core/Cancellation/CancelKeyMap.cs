using System.Collections.Concurrent;
using System.Security.Cryptography;
using PgProxy.Protocol.Auth;

namespace PgProxy.Core.Cancellation;

/// <summary>
/// Proxy-issued BackendKeyData. Each client gets a crypto-random (pid, secret); a CancelRequest is matched on
/// both (secret compared in fixed time) and forwarded to the backend that client is linked to at that moment.
/// </summary>
public sealed class CancelKeyMap
{
    private readonly ConcurrentDictionary<int, Entry> _byPid = new();

    /// <summary>A struct, kept inside the dictionary's node: one object per client, not two.</summary>
    private readonly record struct Entry(int Secret, ICancelTarget Target);

    /// <summary>Bits of a process id below the peer_id (peering on): 17, so a peer has 131 072 ids for its clients.</summary>
    public const int PeerShift = 17;

    /// <summary>The peer_id a proxy with peering on put in <paramref name="processId"/>.</summary>
    public static int PeerOf(int processId) => processId >> PeerShift;

    /// <summary>
    /// Issues a fresh key for <paramref name="target"/>. With <paramref name="peerId"/> (peering on), the process id
    /// carries it in its top bits, so another replica that receives the key knows whose client it is.
    /// </summary>
    public (int ProcessId, int SecretKey) Register(ICancelTarget target, int peerId = 0)
    {
        while (true)
        {
            int pid = peerId == 0 ? SecureRandom.NextPositive(1) : (peerId << PeerShift) | (SecureRandom.NextPositive(1) & ((1 << PeerShift) - 1));
            int secret = SecureRandom.NextInt32();
            if (_byPid.TryAdd(pid, new Entry(secret, target)))
            {
                return (pid, secret);
            }
        }
    }

    /// <summary>Forgets a key.</summary>
    public void Unregister(int processId) => _byPid.TryRemove(processId, out _);

    /// <summary>Finds the target of a CancelRequest; null when the key does not match.</summary>
    public ICancelTarget? Find(int processId, int secretKey)
    {
        if (!_byPid.TryGetValue(processId, out Entry entry))
        {
            return null;
        }

        Span<byte> a = stackalloc byte[4];
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(a, entry.Secret);
        BitConverter.TryWriteBytes(b, secretKey);
        return CryptographicOperations.FixedTimeEquals(a, b) ? entry.Target : null;
    }

    /// <summary>Every logged-in client (each has a key), for the shutdown's drain.</summary>
    public IEnumerable<ICancelTarget> Targets
    {
        get
        {
            foreach (KeyValuePair<int, Entry> pair in _byPid)
            {
                yield return pair.Value.Target;
            }
        }
    }

    /// <summary>Number of registered keys.</summary>
    public int Count => _byPid.Count;
}

/// <summary>Something a CancelRequest can reach: a client session.</summary>
public interface ICancelTarget
{
    /// <summary>Forwards a cancel to the backend linked at this moment, if any.</summary>
    ValueTask CancelAsync(CancellationToken ct);
}
