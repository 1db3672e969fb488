namespace PgProxy.Core.Prepared;

/// <summary>
/// The proxy-wide set of protocol-level statements, keyed by their Parse tail (text and parameter types): a client that
/// prepares a statement some client already prepared gets the same object, so each text is held once. Bounded: past
/// <see cref="Capacity"/> an arbitrary entry is dropped, which only stops sharing it (clients keep their references,
/// and backends know statements by name). Thread-safe; a hit allocates nothing.
/// </summary>
public sealed class StatementRegistry
{
    private readonly Lock _lock = new();
    private readonly Dictionary<byte[], PreparedStatement> _byTail = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], PreparedStatement>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    /// <summary>Creates a registry holding at most <paramref name="capacity"/> statements.</summary>
    public StatementRegistry(int capacity = 10_000)
    {
        Capacity = capacity;
        _lookup = _byTail.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>The most statements held.</summary>
    public int Capacity { get; }

    /// <summary>Statements held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byTail.Count;
            }
        }
    }

    /// <summary>The shared statement for a Parse tail, created on first sight.</summary>
    public PreparedStatement GetOrAdd(ReadOnlySpan<byte> parseTail)
    {
        lock (_lock)
        {
            if (_lookup.TryGetValue(parseTail, out PreparedStatement? known))
            {
                return known;
            }
        }

        PreparedStatement created = PreparedStatement.FromParseTail(parseTail); // hashing outside the lock
        lock (_lock)
        {
            if (_lookup.TryGetValue(parseTail, out PreparedStatement? raced))
            {
                return raced;
            }

            if (_byTail.Count >= Capacity)
            {
                using Dictionary<byte[], PreparedStatement>.Enumerator first = _byTail.GetEnumerator();
                if (first.MoveNext())
                {
                    _byTail.Remove(first.Current.Key);
                }
            }

            _byTail[created.ParseTail] = created;
            return created;
        }
    }
}
