namespace PgProxy.Core.Prepared;

/// <summary>
/// What one backend has prepared, least recently used first, capped by max_prepared_statements. Statements used
/// since the backend was last linked are pinned (a portal may depend on them), so the cap may be exceeded for the
/// length of one transaction rather than break it. Touched only by whoever holds the backend.
/// </summary>
public sealed class BackendStatements
{
    private readonly LinkedList<(PreparedStatement Statement, long Generation)> _lru = new();
    private readonly Dictionary<UInt128, LinkedListNode<(PreparedStatement Statement, long Generation)>> _byId = [];
    private long _generation;

    /// <summary>Statements prepared on the backend.</summary>
    public int Count => _byId.Count;

    /// <summary>True when the backend has <paramref name="statement"/>; marks it used now.</summary>
    public bool Touch(PreparedStatement statement)
    {
        if (!_byId.TryGetValue(statement.Id, out var node))
        {
            return false;
        }

        if (node.Value.Generation != _generation || node != _lru.Last)
        {
            _lru.Remove(node);
            node.Value = (node.Value.Statement, _generation);
            _lru.AddLast(node);
        }

        return true;
    }

    /// <summary>Records a statement as prepared (optimistically, before the server answers).</summary>
    public void Add(PreparedStatement statement)
    {
        if (!Touch(statement))
        {
            _byId[statement.Id] = _lru.AddLast((statement, _generation));
        }
    }

    /// <summary>Forgets a statement (its Parse failed, or it was closed).</summary>
    public void Remove(PreparedStatement statement)
    {
        if (_byId.Remove(statement.Id, out var node))
        {
            _lru.Remove(node);
        }
    }

    /// <summary>Picks the least recently used statement not pinned by the current link, if the set is at <paramref name="capacity"/>.</summary>
    public bool TryPickVictim(int capacity, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? victim)
    {
        victim = null;
        if (_byId.Count < capacity || _lru.First is not { } oldest || oldest.Value.Generation == _generation)
        {
            return false;
        }

        victim = oldest.Value.Statement;
        return true;
    }

    /// <summary>A new link begins: earlier uses no longer pin.</summary>
    public void NextGeneration() => _generation++;

    /// <summary>The server dropped everything (DISCARD ALL, DEALLOCATE ALL).</summary>
    public void Clear()
    {
        _lru.Clear();
        _byId.Clear();
    }
}
