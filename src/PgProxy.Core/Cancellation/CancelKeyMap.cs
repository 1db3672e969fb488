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

    /// <summary>Issues a fresh key for <paramref name="target"/>.</summary>
    public (int ProcessId, int SecretKey) Register(ICancelTarget target)
    {
        while (true)
        {
            int pid = SecureRandom.NextPositive(1);
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
