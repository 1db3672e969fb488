using System.Security.Cryptography;
using PgProxy.Protocol.Auth;

namespace PgProxy.Core.Cancellation;

/// <summary>
/// Proxy-issued BackendKeyData. Each client gets a crypto-random (pid, secret); a CancelRequest is matched on
/// both (secret compared in fixed time) and forwarded to the backend that client is linked to at that moment.
/// <para>
/// The keys live in one open-addressing table of (pid, secret, target) slots under a lock: about 16-43 bytes per
/// client, where a ConcurrentDictionary kept a 48-byte node and a bucket each (76 B). Logins and logouts take the
/// lock for a few probes; cancel requests are rare.
/// </para>
/// </summary>
public sealed class CancelKeyMap
{
    private const int Empty = 0;      // process ids are positive: 0 never names a client
    private const int Removed = -1;   // a tombstone: probing goes on past it
    private const int InitialSize = 64;

    private readonly object _lock = new();
    private Slot[] _slots = new Slot[InitialSize];
    private int _count;
    private int _used; // live slots and tombstones

    private struct Slot
    {
        public int ProcessId;
        public int Secret;
        public ICancelTarget? Target;
    }

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
            if (pid != Empty && TryAdd(pid, secret, target))
            {
                return (pid, secret);
            }
        }
    }

    /// <summary>Forgets a key.</summary>
    public void Unregister(int processId)
    {
        lock (_lock)
        {
            int i = IndexOf(_slots, processId);
            if (i >= 0)
            {
                _slots[i] = new Slot { ProcessId = Removed };
                _count--;
            }
        }
    }

    /// <summary>Finds the target of a CancelRequest; null when the key does not match.</summary>
    public ICancelTarget? Find(int processId, int secretKey)
    {
        Slot slot;
        lock (_lock)
        {
            int i = IndexOf(_slots, processId);
            if (i < 0)
            {
                return null;
            }

            slot = _slots[i];
        }

        Span<byte> a = stackalloc byte[4];
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(a, slot.Secret);
        BitConverter.TryWriteBytes(b, secretKey);
        return CryptographicOperations.FixedTimeEquals(a, b) ? slot.Target : null;
    }

    /// <summary>Every logged-in client (each has a key), for the shutdown's drain: a snapshot.</summary>
    public IEnumerable<ICancelTarget> Targets
    {
        get
        {
            var targets = new List<ICancelTarget>();
            lock (_lock)
            {
                foreach (Slot slot in _slots)
                {
                    if (slot.ProcessId > 0)
                    {
                        targets.Add(slot.Target!);
                    }
                }
            }

            return targets;
        }
    }

    /// <summary>Number of registered keys.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    private bool TryAdd(int pid, int secret, ICancelTarget target)
    {
        lock (_lock)
        {
            if ((_used + 1) * 4 > _slots.Length * 3)
            {
                // Past three quarters used: rebuild without tombstones, twice as large when live keys need it.
                Rehash(_count * 2 >= _slots.Length ? _slots.Length * 2 : _slots.Length);
            }

            // One probe finds the id if it is taken, and otherwise where it goes.
            int i = Probe(_slots, pid, forInsert: true);
            if (_slots[i].ProcessId == pid)
            {
                return false; // that id is taken: the caller draws another
            }

            if (_slots[i].ProcessId == Empty)
            {
                _used++;
            }

            _slots[i] = new Slot { ProcessId = pid, Secret = secret, Target = target };
            _count++;
            return true;
        }
    }

    private void Rehash(int size)
    {
        Slot[] old = _slots;
        var slots = new Slot[size];
        foreach (Slot slot in old)
        {
            if (slot.ProcessId > 0)
            {
                slots[Probe(slots, slot.ProcessId, forInsert: true)] = slot;
            }
        }

        _slots = slots;
        _used = _count;
    }

    private static int IndexOf(Slot[] slots, int pid)
    {
        int i = Probe(slots, pid, forInsert: false);
        return i >= 0 && slots[i].ProcessId == pid ? i : -1;
    }

    /// <summary>
    /// Linear probing from the id's hash: the slot holding <paramref name="pid"/>, else (for an insert) the first
    /// tombstone or empty slot on the way, else -1. The table always has an empty slot, so the probe ends.
    /// </summary>
    private static int Probe(Slot[] slots, int pid, bool forInsert)
    {
        int mask = slots.Length - 1;
        int i = (int)((uint)pid * 2654435769u >> 7) & mask; // ids are random; the multiply spreads peer-prefixed ones
        int firstFree = -1;
        while (true)
        {
            int id = slots[i].ProcessId;
            if (id == pid)
            {
                return i;
            }

            if (id == Empty)
            {
                return forInsert ? (firstFree >= 0 ? firstFree : i) : -1;
            }

            if (id == Removed && firstFree < 0)
            {
                firstFree = i;
            }

            i = (i + 1) & mask;
        }
    }
}

/// <summary>Something a CancelRequest can reach: a client session.</summary>
public interface ICancelTarget
{
    /// <summary>Forwards a cancel to the backend linked at this moment, if any.</summary>
    ValueTask CancelAsync(CancellationToken ct);
}
