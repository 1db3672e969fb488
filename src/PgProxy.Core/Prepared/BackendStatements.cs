namespace PgProxy.Core.Prepared;

/// <summary>
/// What one backend has prepared, least recently used first, capped by max_prepared_statements. Statements used
/// since the backend was last linked are pinned (a portal may depend on them), so the cap may be exceeded for the
/// length of one transaction rather than break it. Touched only by the session that holds the backend.
/// </summary>
public sealed class BackendStatements
{
    private readonly LinkedList<(string Name, long Generation)> _lru = new();
    private readonly Dictionary<string, LinkedListNode<(string Name, long Generation)>> _byName = new(StringComparer.Ordinal);
    private long _generation;

    /// <summary>Statements prepared on the backend.</summary>
    public int Count => _byName.Count;

    /// <summary>True when the backend has <paramref name="name"/>; marks it used now.</summary>
    public bool Touch(string name)
    {
        if (!_byName.TryGetValue(name, out var node))
        {
            return false;
        }

        _lru.Remove(node);
        node.Value = (name, _generation);
        _lru.AddLast(node);
        return true;
    }

    /// <summary>Records a statement as prepared (optimistically, before the server answers).</summary>
    public void Add(string name)
    {
        if (!Touch(name))
        {
            _byName[name] = _lru.AddLast((name, _generation));
        }
    }

    /// <summary>Forgets a statement (its Parse failed, or it was closed).</summary>
    public void Remove(string name)
    {
        if (_byName.Remove(name, out var node))
        {
            _lru.Remove(node);
        }
    }

    /// <summary>Picks the least recently used statement not pinned by the current link, if the set is at <paramref name="capacity"/>.</summary>
    public bool TryPickVictim(int capacity, out string victim)
    {
        victim = "";
        if (_byName.Count < capacity || _lru.First is not { } oldest || oldest.Value.Generation == _generation)
        {
            return false;
        }

        victim = oldest.Value.Name;
        return true;
    }

    /// <summary>A new link begins: earlier uses no longer pin.</summary>
    public void NextGeneration() => _generation++;

    /// <summary>The server dropped everything (DISCARD ALL, DEALLOCATE ALL).</summary>
    public void Clear()
    {
        _lru.Clear();
        _byName.Clear();
    }
}
