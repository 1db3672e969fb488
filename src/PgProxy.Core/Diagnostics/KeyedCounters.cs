using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace PgProxy.Core.Diagnostics;

/// <summary>
/// Counters by a key from a small set (SQLSTATEs): an interlocked increment once the key has its box; read as a copy.
/// The callers count rare events (errors, refused logins), never one per message.
/// </summary>
public sealed class KeyedCounters
{
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counts = new(StringComparer.Ordinal);

    /// <summary>Counts one event of <paramref name="key"/>.</summary>
    public void Increment(string key)
    {
        if (!_counts.TryGetValue(key, out StrongBox<long>? count))
        {
            count = _counts.GetOrAdd(key, _ => new StrongBox<long>());
        }

        Interlocked.Increment(ref count.Value);
    }

    /// <summary>Every key's count now (a copy).</summary>
    public KeyValuePair<string, long>[] Read() =>
        [.. _counts.Select(c => new KeyValuePair<string, long>(c.Key, Volatile.Read(ref c.Value.Value)))];
}
