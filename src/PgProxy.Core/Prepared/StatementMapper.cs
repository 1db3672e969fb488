using System.Text;

namespace PgProxy.Core.Prepared;

/// <summary>
/// One client's prepared statements in transaction mode: its names, each mapped to a statement shared through the
/// <see cref="StatementRegistry"/>, looked up from the message bytes without allocating (one lookup for Parse, Bind,
/// Describe and Close). SQL PREPAREs are mapped the same way, to statements of their own kind
/// (<see cref="PreparedStatement.SqlBody"/>), in the same namespace, as PostgreSQL has one per session. Touched only
/// by the client's relay, under its lock.
/// <para>
/// A client starts with the pool manager's shared empty mapper (<see cref="Empty"/>), which only answers "none", and
/// gets one of its own (<see cref="Own"/>) at its first named statement: most clients of a transaction-mode pool
/// (pgbench -S, psql, an idle sidecar fleet) never name one, and an idle client should hold nothing it does not use.
/// </para>
/// </summary>
public sealed class StatementMapper
{
    private readonly StatementRegistry _registry;
    private readonly bool _shared;
    // Made at the client's first named statement.
    private Dictionary<byte[], PreparedStatement>? _byName;
    private Dictionary<byte[], PreparedStatement>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    /// <summary>A client's mapper; <paramref name="maxPerBackend"/> is max_prepared_statements.</summary>
    public StatementMapper(StatementRegistry registry, int maxPerBackend)
        : this(registry, maxPerBackend, shared: false)
    {
    }

    private StatementMapper(StatementRegistry registry, int maxPerBackend, bool shared)
    {
        _registry = registry;
        MaxPerBackend = maxPerBackend;
        _shared = shared;
    }

    /// <summary>
    /// An empty mapper to share among clients that have named no statement: it finds, forgets and clears nothing, and
    /// refuses to register; a client takes <see cref="Own"/> before its first registration.
    /// </summary>
    public static StatementMapper Empty(StatementRegistry registry, int maxPerBackend) => new(registry, maxPerBackend, shared: true);

    /// <summary>This mapper, or a new one of the client's own when this is the shared empty one.</summary>
    public StatementMapper Own() => _shared ? new StatementMapper(_registry, MaxPerBackend) : this;

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
        ThrowIfShared();
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
        ThrowIfShared();
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

    private void ThrowIfShared()
    {
        if (_shared)
        {
            throw new InvalidOperationException("the shared empty statement mapper registers nothing: take Own() first");
        }
    }
}
