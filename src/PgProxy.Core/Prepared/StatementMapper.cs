using System.Text;

namespace PgProxy.Core.Prepared;

/// <summary>
/// One client's prepared statements in transaction mode: its names, each mapped to a statement shared through the
/// <see cref="StatementRegistry"/>, looked up from the message bytes without allocating (one lookup for Parse, Bind,
/// Describe and Close). SQL PREPAREs are mapped the same way, to statements of their own kind
/// (<see cref="PreparedStatement.SqlBody"/>), in the same namespace, as PostgreSQL has one per session. Touched only
/// by the client's relay, under its lock.
/// </summary>
public sealed class StatementMapper
{
    private readonly StatementRegistry _registry;
    // Made at the client's first Parse: most clients of a transaction-mode pool (pgbench -S, psql, an idle sidecar
    // fleet) never name a statement, and an idle client should hold nothing it does not use.
    private Dictionary<byte[], PreparedStatement>? _byName;
    private Dictionary<byte[], PreparedStatement>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    /// <summary>A client's mapper; <paramref name="maxPerBackend"/> is max_prepared_statements.</summary>
    public StatementMapper(StatementRegistry registry, int maxPerBackend)
    {
        _registry = registry;
        MaxPerBackend = maxPerBackend;
    }

    /// <summary>max_prepared_statements: statements kept per backend.</summary>
    public int MaxPerBackend { get; }

    /// <summary>The client's named statements (SHOW CLIENTS; read from another thread, so a moment stale at worst).</summary>
    public int Count => _byName?.Count ?? 0;

    /// <summary>The client's statement of that name (UTF-8 bytes, as on the wire).</summary>
    public bool TryGet(ReadOnlySpan<byte> name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? statement)
    {
        statement = null;
        return _byName is not null && _lookup.TryGetValue(name, out statement);
    }

    /// <summary>The client's statement of that name, as SQL names it.</summary>
    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? statement) =>
        TryGet(Encoding.UTF8.GetBytes(name), out statement);

    /// <summary>Registers a Parse of <paramref name="name"/>; false (and nothing changes) when the client already uses the name.</summary>
    public bool TryRegister(ReadOnlySpan<byte> name, ReadOnlySpan<byte> parseTail, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? statement,
        out byte[] key)
    {
        key = [];
        if (_byName is null)
        {
            _byName = new Dictionary<byte[], PreparedStatement>(ByteKeyComparer.Instance);
            _lookup = _byName.GetAlternateLookup<ReadOnlySpan<byte>>();
        }
        else if (_lookup.ContainsKey(name))
        {
            statement = null;
            return false;
        }

        statement = _registry.GetOrAdd(parseTail);
        key = name.ToArray();
        _byName[key] = statement;
        return true;
    }

    /// <summary>
    /// Registers a SQL PREPARE of <paramref name="name"/> whose text after the name is <paramref name="body"/> (the caller
    /// checked the name is free); returns the shared statement and the name's key (to forget it if the PREPARE fails).
    /// </summary>
    public PreparedStatement RegisterSql(string name, ReadOnlySpan<byte> body, out byte[] key)
    {
        if (_byName is null)
        {
            _byName = new Dictionary<byte[], PreparedStatement>(ByteKeyComparer.Instance);
            _lookup = _byName.GetAlternateLookup<ReadOnlySpan<byte>>();
        }

        PreparedStatement statement = _registry.GetOrAddSql(body);
        key = Encoding.UTF8.GetBytes(name);
        _byName[key] = statement;
        return statement;
    }

    /// <summary>Forgets a name (Close, DEALLOCATE, or a Parse the server refused); false when it was not there.</summary>
    public bool Forget(ReadOnlySpan<byte> name) => _byName is not null && _lookup.Remove(name);

    /// <summary>Forgets a name as SQL names it.</summary>
    public bool Forget(string name) => Forget(Encoding.UTF8.GetBytes(name));

    /// <summary>DEALLOCATE ALL, DISCARD ALL: every name goes, protocol and SQL alike.</summary>
    public void Clear() => _byName?.Clear();
}
