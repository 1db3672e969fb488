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
    private readonly Dictionary<byte[], PreparedStatement> _bySql = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], PreparedStatement>.AlternateLookup<ReadOnlySpan<byte>> _sqlLookup;

    /// <summary>Creates a registry holding at most <paramref name="capacity"/> statements.</summary>
    public StatementRegistry(int capacity = 10_000)
    {
        Capacity = capacity;
        _lookup = _byTail.GetAlternateLookup<ReadOnlySpan<byte>>();
        _sqlLookup = _bySql.GetAlternateLookup<ReadOnlySpan<byte>>();
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
    public PreparedStatement GetOrAdd(ReadOnlySpan<byte> parseTail) =>
        GetOrAdd(_byTail, _lookup, parseTail, static t => PreparedStatement.FromParseTail(t), static s => s.ParseTail);

    /// <summary>The shared statement of a SQL PREPARE (by the text after its name), created on first sight; apart from Parse tails.</summary>
    public PreparedStatement GetOrAddSql(ReadOnlySpan<byte> body) =>
        GetOrAdd(_bySql, _sqlLookup, body, static b => PreparedStatement.FromSql(b), static s => s.SqlBody!);

    private PreparedStatement GetOrAdd(Dictionary<byte[], PreparedStatement> map, Dictionary<byte[], PreparedStatement>.AlternateLookup<ReadOnlySpan<byte>> lookup,
        ReadOnlySpan<byte> key, SpanFunc create, Func<PreparedStatement, byte[]> keyOf)
    {
        lock (_lock)
        {
            if (lookup.TryGetValue(key, out PreparedStatement? known))
            {
                return known;
            }
        }

        PreparedStatement created = create(key); // hashing outside the lock
        lock (_lock)
        {
            if (lookup.TryGetValue(key, out PreparedStatement? raced))
            {
                return raced;
            }

            if (map.Count >= Capacity)
            {
                using Dictionary<byte[], PreparedStatement>.Enumerator first = map.GetEnumerator();
                if (first.MoveNext())
                {
                    map.Remove(first.Current.Key);
                }
            }

            map[keyOf(created)] = created;
            return created;
        }
    }

    private delegate PreparedStatement SpanFunc(ReadOnlySpan<byte> key);
}
