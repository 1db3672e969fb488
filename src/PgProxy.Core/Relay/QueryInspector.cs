using System.Buffers;
using System.Text;

namespace PgProxy.Core.Relay;

/// <summary>What a simple Query means to a transaction-mode pool.</summary>
public enum QueryKind
{
    /// <summary>Ordinary SQL.</summary>
    Plain,
    /// <summary>DEALLOCATE [PREPARE] name: the proxy forgets the client's name and answers itself.</summary>
    Deallocate,
    /// <summary>DEALLOCATE [PREPARE] ALL.</summary>
    DeallocateAll,
    /// <summary>DISCARD ALL.</summary>
    DiscardAll,
    /// <summary>LISTEN: cannot work when the server changes between transactions.</summary>
    Listen,
}

/// <summary>
/// Looks at the few statements a transaction-mode pool must act on, and at whether a statement leaves session state
/// on the server (which then gets server_reset_query before another client uses it). Works on the raw text; only
/// messages up to <see cref="SessionRelay.MaxInspectedBodyBytes"/> are inspected.
/// </summary>
public static class QueryInspector
{
    private static readonly string[] s_sessionStateMarkers =
    [
        "advisory_lock", "advisory_unlock", "with hold", "temp", "prepare", "set_config", "listen", "declare",
        "load ", "session authorization", "set role",
    ];

    /// <summary>
    /// Every word <see cref="Classify"/> and <see cref="MayLeaveSessionState"/> look for contains one of these, except
    /// a SET or RESET statement, which <see cref="StartsAStatement"/> finds (so UPDATE ... SET does not count).
    /// </summary>
    private static readonly SearchValues<string> s_keywords = SearchValues.Create(
        ["listen", "discard", "deallocate", "temp", "prepare", "hold", "declare", "load", "advisory", "set_config", "authorization", "set role"],
        StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The hot-path filter: false when the UTF-8 text contains none of the words the classifiers look for and no
    /// statement in it begins with SET or RESET, so ordinary statements (UPDATE ... SET included) are relayed without
    /// decoding or allocating. Keywords are ASCII and UTF-8 multi-byte sequences never contain ASCII bytes, so
    /// widening bytes to chars one-to-one keeps every match; a false positive only costs the full check.
    /// </summary>
    public static bool MayMatter(ReadOnlySpan<byte> utf8)
    {
        char[]? rented = null;
        Span<char> chars = utf8.Length <= 512 ? stackalloc char[utf8.Length] : (rented = ArrayPool<char>.Shared.Rent(utf8.Length)).AsSpan(0, utf8.Length);
        Encoding.Latin1.GetChars(utf8, chars);
        bool found = chars.ContainsAny(s_keywords) || StartsAStatement(chars, "set") || StartsAStatement(chars, "reset");
        if (rented is not null)
        {
            ArrayPool<char>.Shared.Return(rented);
        }

        return found;
    }

    /// <summary>True when a statement (the text's start, or after a ';') begins with the word (any case).</summary>
    private static bool StartsAStatement(ReadOnlySpan<char> text, string word)
    {
        int start = 0;
        while (true)
        {
            ReadOnlySpan<char> rest = text[start..].TrimStart();
            if (rest.Length > word.Length && rest.StartsWith(word, StringComparison.OrdinalIgnoreCase) && !char.IsAsciiLetterOrDigit(rest[word.Length]) &&
                rest[word.Length] != '_')
            {
                return true;
            }

            int semicolon = text[start..].IndexOf(';');
            if (semicolon < 0)
            {
                return false;
            }

            start += semicolon + 1;
        }
    }

    /// <summary>Classifies a whole single-statement Query text.</summary>
    public static QueryKind Classify(string sql, out string? name)
    {
        name = null;
        string s = sql.Trim().TrimEnd(';').Trim();
        if (s.Contains(';', StringComparison.Ordinal))
        {
            return QueryKind.Plain;
        }

        string[] words = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            return QueryKind.Plain;
        }

        string first = words[0].ToUpperInvariant();
        if (first == "LISTEN")
        {
            return QueryKind.Listen;
        }

        if (first == "DISCARD" && words.Length == 2 && words[1].Equals("ALL", StringComparison.OrdinalIgnoreCase))
        {
            return QueryKind.DiscardAll;
        }

        if (first == "DEALLOCATE")
        {
            int i = words.Length > 1 && words[1].Equals("PREPARE", StringComparison.OrdinalIgnoreCase) ? 2 : 1;
            if (words.Length == i + 1)
            {
                if (words[i].Equals("ALL", StringComparison.OrdinalIgnoreCase))
                {
                    return QueryKind.DeallocateAll;
                }

                name = Unquote(words[i]);
                return QueryKind.Deallocate;
            }
        }

        return QueryKind.Plain;
    }

    /// <summary>
    /// True when the text may leave session state behind: session-level SET (not SET LOCAL / SET TRANSACTION),
    /// set_config, advisory locks, LISTEN, temp tables, WITH HOLD cursors, SQL-level PREPARE, ... False positives
    /// only cost a reset.
    /// </summary>
    public static bool MayLeaveSessionState(string sql)
    {
        string lower = sql.ToLowerInvariant();
        foreach (string marker in s_sessionStateMarkers)
        {
            if (lower.Contains(marker, StringComparison.Ordinal))
            {
                return true;
            }
        }

        // SET at the start of a statement, unless LOCAL, TRANSACTION, CONSTRAINTS or SESSION CHARACTERISTICS.
        foreach (string statement in lower.Split(';'))
        {
            string t = statement.TrimStart();
            if (t.StartsWith("set ", StringComparison.Ordinal) || t.StartsWith("set\t", StringComparison.Ordinal) ||
                t.StartsWith("reset ", StringComparison.Ordinal))
            {
                string rest = t.Substring(t.IndexOf(' ', StringComparison.Ordinal) + 1).TrimStart();
                if (!rest.StartsWith("local ", StringComparison.Ordinal) && !rest.StartsWith("transaction", StringComparison.Ordinal) &&
                    !rest.StartsWith("constraints", StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static string Unquote(string name) =>
        name.Length >= 2 && name[0] == '"' && name[^1] == '"' ? name[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal) : name.ToLowerInvariant();
}
