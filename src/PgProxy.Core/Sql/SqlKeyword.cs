namespace PgProxy.Core.Sql;

/// <summary>
/// The words the statement classifier acts on: leading keywords, the few words after them that change a
/// statement's meaning, and the function names whose calls leave session state. One table, matched on the UTF-8
/// bytes of an unquoted word (ASCII case-insensitive), so ordinary SQL is classified without decoding it.
/// </summary>
public enum SqlKeyword : byte
{
    /// <summary>Not a word the classifier knows.</summary>
    None,
    All,
    As,
    Atomic,
    Authorization,
    Begin,
    Case,
    Characteristics,
    Close,
    Constraints,
    Create,
    Cursor,
    Deallocate,
    Declare,
    Discard,
    Do,
    Drop,
    End,
    Execute,
    For,
    Global,
    Hold,
    Into,
    Listen,
    Load,
    Local,
    Names,
    Or,
    Prepare,
    Replace,
    Reset,
    Role,
    Schema,
    Select,
    Session,
    Set,
    Temp,
    Temporary,
    Time,
    Transaction,
    True,
    Unlisten,
    Unlogged,
    With,
    Without,
    Xml,
    Zone,
    // Functions: calls outside literals.
    PgAdvisoryLock,
    PgAdvisoryLockShared,
    PgTryAdvisoryLock,
    PgTryAdvisoryLockShared,
    PgAdvisoryUnlock,
    PgAdvisoryUnlockShared,
    PgAdvisoryUnlockAll,
    SetConfig,
    PgTemp,
}

/// <summary>The one keyword table: spelling (lower case) of every <see cref="SqlKeyword"/>.</summary>
public static class SqlKeywords
{
    private static readonly (string Text, SqlKeyword Keyword)[] s_table =
    [
        ("all", SqlKeyword.All), ("as", SqlKeyword.As), ("atomic", SqlKeyword.Atomic), ("authorization", SqlKeyword.Authorization),
        ("begin", SqlKeyword.Begin), ("case", SqlKeyword.Case), ("characteristics", SqlKeyword.Characteristics), ("close", SqlKeyword.Close), ("constraints", SqlKeyword.Constraints),
        ("create", SqlKeyword.Create), ("cursor", SqlKeyword.Cursor), ("deallocate", SqlKeyword.Deallocate), ("declare", SqlKeyword.Declare),
        ("discard", SqlKeyword.Discard), ("do", SqlKeyword.Do), ("drop", SqlKeyword.Drop), ("end", SqlKeyword.End), ("execute", SqlKeyword.Execute), ("for", SqlKeyword.For),
        ("global", SqlKeyword.Global), ("hold", SqlKeyword.Hold), ("into", SqlKeyword.Into), ("listen", SqlKeyword.Listen), ("load", SqlKeyword.Load),
        ("local", SqlKeyword.Local), ("names", SqlKeyword.Names), ("or", SqlKeyword.Or), ("prepare", SqlKeyword.Prepare),
        ("replace", SqlKeyword.Replace), ("reset", SqlKeyword.Reset), ("role", SqlKeyword.Role), ("schema", SqlKeyword.Schema), ("select", SqlKeyword.Select),
        ("session", SqlKeyword.Session), ("set", SqlKeyword.Set), ("temp", SqlKeyword.Temp), ("temporary", SqlKeyword.Temporary),
        ("time", SqlKeyword.Time), ("transaction", SqlKeyword.Transaction), ("true", SqlKeyword.True), ("unlisten", SqlKeyword.Unlisten),
        ("unlogged", SqlKeyword.Unlogged), ("with", SqlKeyword.With), ("without", SqlKeyword.Without), ("xml", SqlKeyword.Xml),
        ("zone", SqlKeyword.Zone),
        ("pg_advisory_lock", SqlKeyword.PgAdvisoryLock), ("pg_advisory_lock_shared", SqlKeyword.PgAdvisoryLockShared),
        ("pg_try_advisory_lock", SqlKeyword.PgTryAdvisoryLock), ("pg_try_advisory_lock_shared", SqlKeyword.PgTryAdvisoryLockShared),
        ("pg_advisory_unlock", SqlKeyword.PgAdvisoryUnlock), ("pg_advisory_unlock_shared", SqlKeyword.PgAdvisoryUnlockShared),
        ("pg_advisory_unlock_all", SqlKeyword.PgAdvisoryUnlockAll), ("set_config", SqlKeyword.SetConfig), ("pg_temp", SqlKeyword.PgTemp),
    ];

    private static readonly int s_maxLength = s_table.Max(e => e.Text.Length);

    /// <summary>Entries by length and first letter, as UTF-8 bytes: a lookup compares one or two candidates at most.</summary>
    private static readonly (byte[] Text, SqlKeyword Keyword)[][] s_buckets = BuildBuckets();

    private static int Bucket(int length, byte first) => length * 26 + (first - (byte)'a');

    private static (byte[], SqlKeyword)[][] BuildBuckets()
    {
        var buckets = new (byte[], SqlKeyword)[(s_maxLength + 1) * 26][];
        for (int i = 0; i < buckets.Length; i++)
        {
            buckets[i] = [];
        }

        foreach ((string text, SqlKeyword keyword) in s_table)
        {
            int b = Bucket(text.Length, (byte)text[0]);
            buckets[b] = [.. buckets[b], (System.Text.Encoding.ASCII.GetBytes(text), keyword)];
        }

        return buckets;
    }

    /// <summary>The keyword an unquoted word spells (ASCII case-insensitive, as PostgreSQL folds unquoted names).</summary>
    public static SqlKeyword Match(ReadOnlySpan<byte> word)
    {
        if (word.Length == 0 || word.Length > s_maxLength)
        {
            return SqlKeyword.None;
        }

        byte first = (byte)(word[0] | 0x20);
        if (first is < (byte)'a' or > (byte)'z')
        {
            return SqlKeyword.None;
        }

        foreach ((byte[] text, SqlKeyword keyword) in s_buckets[Bucket(word.Length, first)])
        {
            if (System.Text.Ascii.EqualsIgnoreCase(word, text))
            {
                return keyword;
            }
        }

        return SqlKeyword.None;
    }

    /// <summary>The keyword a quoted identifier's content spells exactly (quoted names are not folded).</summary>
    public static SqlKeyword MatchExact(ReadOnlySpan<byte> word)
    {
        SqlKeyword keyword = Match(word);
        return keyword != SqlKeyword.None && !word.ContainsAnyInRange((byte)'A', (byte)'Z') ? keyword : SqlKeyword.None;
    }
}
