using System.Collections.Concurrent;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Pooling;

/// <summary>
/// The admin console's switches by database: PAUSE (everything or one database), DISABLE. A pool created while its
/// database is paused starts paused; a login to a disabled database is refused.
/// </summary>
public sealed partial class PoolManager
{
    private readonly ConcurrentDictionary<string, bool> _pausedDatabases = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _disabledDatabases = new(StringComparer.Ordinal);
    private volatile bool _pausedAll;

    /// <summary>True while PAUSE (with no database) is in force.</summary>
    public bool PausedAll => _pausedAll;

    /// <summary>True while <paramref name="database"/> (the name clients use) is paused, by its own PAUSE or KILL or by a PAUSE of all.</summary>
    public bool IsPaused(string database) => _pausedAll || _pausedDatabases.ContainsKey(database);

    /// <summary>True while <paramref name="database"/> is disabled: new logins are refused.</summary>
    public bool IsDisabled(string database) => _disabledDatabases.ContainsKey(database);

    /// <summary>Pauses every pool of <paramref name="database"/>, or all of them when null.</summary>
    public void Pause(string? database)
    {
        MarkPaused(database);
        ApplyPause();
    }

    private void MarkPaused(string? database)
    {
        if (database is null)
        {
            _pausedAll = true;
        }
        else
        {
            _pausedDatabases[database] = true;
        }
    }

    /// <summary>Resumes <paramref name="database"/>, or everything (every database paused one by one too) when null.</summary>
    public void Resume(string? database)
    {
        if (database is null)
        {
            _pausedAll = false;
            _pausedDatabases.Clear();
        }
        else
        {
            _pausedDatabases.TryRemove(database, out _);
        }

        ApplyPause();
    }

    /// <summary>DISABLE (true) or ENABLE (false) <paramref name="database"/>.</summary>
    public void SetDisabled(string database, bool disabled)
    {
        if (disabled)
        {
            _disabledDatabases[database] = true;
        }
        else
        {
            _disabledDatabases.TryRemove(database, out _);
        }
    }

    /// <summary>KILL: pauses <paramref name="database"/> (or all) and fails its waiting clients; the console closes the rest.</summary>
    public void Kill(string? database, ProxyException error)
    {
        MarkPaused(database); // a pool made later starts paused; these pause as they are killed
        foreach (Pool pool in PoolsOf(database))
        {
            pool.Kill(error);
        }
    }

    /// <summary>The pools of <paramref name="database"/>, or all when null.</summary>
    public IEnumerable<Pool> PoolsOf(string? database) =>
        database is null ? _pools.Values : _pools.Values.Where(p => p.Key.Database == database);

    /// <summary>Every pool paused or resumed as the switches say (re-pausing closes servers that went idle since).</summary>
    public void ApplyPause()
    {
        foreach (Pool pool in _pools.Values)
        {
            if (IsPaused(pool.Key.Database))
            {
                pool.Pause();
            }
            else if (pool.Paused)
            {
                pool.Resume();
            }
        }
    }
}
