using System.Runtime.CompilerServices;

namespace PgProxy.Core.Sql;

/// <summary>
/// Splits a query string into statements at top-level semicolons (not inside literals, comments or a
/// <c>BEGIN ATOMIC ... END</c> function body) and classifies each by its leading keywords and by the calls it makes
/// (advisory locks, set_config). Allocation-free: a ref struct over the text, one statement per <see cref="MoveNext"/>.
/// </summary>
[SkipLocalsInit]
public ref struct StatementReader
{
    private const int HeadSize = 6;

    private SqlLexer _lexer;

    /// <summary>Reads <paramref name="text"/> (UTF-8) with the server's standard_conforming_strings.</summary>
    public StatementReader(ReadOnlySpan<byte> text, bool standardConformingStrings = true)
    {
        _lexer = new SqlLexer(text, standardConformingStrings);
    }

    /// <summary>The first statement of a text; false when it has none (empty or comments only).</summary>
    public static bool TryReadFirst(ReadOnlySpan<byte> text, bool standardConformingStrings, out SqlStatement statement)
    {
        var reader = new StatementReader(text, standardConformingStrings);
        return reader.MoveNext(out statement);
    }

    [InlineArray(HeadSize)]
    private struct Head
    {
        private SqlToken _first;
    }

    /// <summary>
    /// What a statement's tokens told the slow path: calls, parentheses, set_config arguments, and the per-token
    /// patterns of the few leading keywords that need them. The hot loop of <see cref="MoveNext"/> only counts tokens.
    /// </summary>
    private struct Scan
    {
        public SessionEffects Effects;
        public SqlToken SettingName;
        public int Settings;
        public int Depth;
        public int AtomicDepth;   // inside CREATE FUNCTION ... BEGIN ATOMIC ... END
        public int MarkAt;        // index of the token that started a two-token pattern (BEGIN ATOMIC, pg_temp., INTO TEMP, WITH HOLD)
        public SqlKeyword Mark;
        public bool DeclareDone;  // DECLARE: FOR reached
        // set_config(name, value, is_local): the call being read.
        public int ConfigDepth;
        public int ConfigArg;
        public int ConfigArg2Tokens;
        public SqlToken ConfigName;
        public SqlToken ConfigLocal;
        public bool ConfigNameSimple;
    }

    /// <summary>The next non-empty statement; false at the end of the text.</summary>
    public bool MoveNext(out SqlStatement statement)
    {
        ReadOnlySpan<byte> text = _lexer.Text;
        Head head = default;
        int count = 0; // tokens in this statement
        int start = 0;
        int end = 0;
        SqlKeyword lead = SqlKeyword.None; // first word, after any leading '('
        bool leadSeen = false;
        bool everyToken = false; // the leading keyword has per-token patterns (CREATE, DECLARE)
        bool selectLike = false; // SELECT or WITH: INTO TEMP
        Scan scan = default;
        scan.ConfigDepth = -1;
        scan.MarkAt = -2;
        SqlToken prev = default;

        while (_lexer.Next(out SqlToken token))
        {
            SqlTokenKind kind = token.Kind;
            if (kind == SqlTokenKind.Semicolon && scan.AtomicDepth == 0)
            {
                if (count == 0)
                {
                    continue; // empty statement
                }

                break;
            }

            if (count == 0)
            {
                start = token.Start;
            }

            end = token.End;
            if (count < HeadSize)
            {
                head[count] = token;
            }

            if (!leadSeen)
            {
                if (kind != SqlTokenKind.OpenParen)
                {
                    leadSeen = true;
                    lead = kind == SqlTokenKind.Word ? SqlKeywords.Match(text.Slice(token.Start, token.Length)) : SqlKeyword.None;
                    everyToken = lead is SqlKeyword.Create or SqlKeyword.Declare;
                    selectLike = lead is SqlKeyword.Select or SqlKeyword.With;
                }
                else
                {
                    scan.Depth++;
                }
            }
            else if (everyToken || kind is SqlTokenKind.OpenParen or SqlTokenKind.CloseParen or SqlTokenKind.Comma || scan.ConfigDepth > 0 ||
                     (selectLike && kind == SqlTokenKind.Word && token.Length is 4 or 9))
            {
                SlowToken(text, ref scan, lead, token, prev, count);
            }

            count++;
            prev = token;
        }

        if (count == 0)
        {
            statement = default;
            return false;
        }

        if (scan.ConfigDepth > 0)
        {
            // An unterminated set_config( call: the server rejects it, but assume the worst.
            scan.Effects |= SessionEffects.UnreplayableSetting;
        }

        statement = Classify(text, ref head, Math.Min(count, HeadSize), lead, scan.Effects, scan.Settings, scan.SettingName, start, end);
        return true;
    }

    /// <summary>The tokens that can change a statement's class: calls, parentheses, commas, and the rare leading keywords' words.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SlowToken(ReadOnlySpan<byte> text, ref Scan scan, SqlKeyword lead, SqlToken token, SqlToken prev, int index)
    {
        SqlKeyword keyword = token.Kind == SqlTokenKind.Word ? SqlKeywords.Match(text.Slice(token.Start, token.Length)) : SqlKeyword.None;
        bool afterMark = scan.MarkAt == index - 1;
        switch (token.Kind)
        {
            case SqlTokenKind.OpenParen:
                // A function call: a name, then '('. Definitions inside BEGIN ATOMIC bodies are not calls.
                if (scan.AtomicDepth == 0 && prev.Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier)
                {
                    switch (FunctionName(text, prev))
                    {
                        case SqlKeyword.PgAdvisoryLock or SqlKeyword.PgAdvisoryLockShared or SqlKeyword.PgTryAdvisoryLock or SqlKeyword.PgTryAdvisoryLockShared:
                            scan.Effects |= SessionEffects.AdvisoryLock;
                            break;
                        case SqlKeyword.PgAdvisoryUnlock or SqlKeyword.PgAdvisoryUnlockShared or SqlKeyword.PgAdvisoryUnlockAll:
                            scan.Effects |= SessionEffects.AdvisoryUnlock;
                            break;
                        case SqlKeyword.SetConfig when scan.ConfigDepth < 0:
                            scan.ConfigDepth = scan.Depth + 1;
                            scan.ConfigArg = 0;
                            scan.ConfigArg2Tokens = 0;
                            scan.ConfigName = default;
                            scan.ConfigLocal = default;
                            scan.ConfigNameSimple = false;
                            break;
                        case SqlKeyword.SetConfig:
                            scan.Effects |= SessionEffects.UnreplayableSetting; // nested: not worth reading
                            break;
                    }
                }

                scan.Depth++;
                break;
            case SqlTokenKind.CloseParen:
                if (scan.Depth == scan.ConfigDepth)
                {
                    bool local = scan.ConfigArg == 2 && scan.ConfigArg2Tokens == 1 && IsTrue(text, scan.ConfigLocal);
                    if (!local)
                    {
                        AddSetting(ref scan, scan.ConfigNameSimple ? scan.ConfigName : default, named: scan.ConfigNameSimple);
                    }

                    scan.ConfigDepth = -1;
                }

                scan.Depth = Math.Max(0, scan.Depth - 1);
                break;
            case SqlTokenKind.Comma when scan.Depth == scan.ConfigDepth:
                scan.ConfigArg++;
                break;
            default:
                if (scan.ConfigDepth > 0 && scan.Depth >= scan.ConfigDepth)
                {
                    if (scan.ConfigArg == 0)
                    {
                        scan.ConfigNameSimple = scan.ConfigName.Length == 0 && token.Kind == SqlTokenKind.String && !token.Escaped && text[token.Start] == (byte)'\'';
                        scan.ConfigName = scan.ConfigNameSimple ? token : new SqlToken(SqlTokenKind.Operator, token.Start, 1);
                    }
                    else if (scan.ConfigArg == 2)
                    {
                        scan.ConfigArg2Tokens++;
                        scan.ConfigLocal = token;
                    }
                }

                break;
        }

        switch (lead)
        {
            case SqlKeyword.Create:
                if (afterMark && scan.Mark == SqlKeyword.Begin && keyword == SqlKeyword.Atomic)
                {
                    scan.AtomicDepth = 1;
                }
                else if (scan.AtomicDepth > 0 && keyword == SqlKeyword.Case)
                {
                    scan.AtomicDepth++;
                }
                else if (scan.AtomicDepth > 0 && keyword == SqlKeyword.End)
                {
                    scan.AtomicDepth--;
                }
                else if (afterMark && scan.Mark == SqlKeyword.PgTemp && token.Kind == SqlTokenKind.Dot)
                {
                    scan.Effects |= SessionEffects.TempObject; // CREATE TABLE pg_temp.name
                }

                break;
            case SqlKeyword.Select or SqlKeyword.With:
                if (afterMark && scan.Mark == SqlKeyword.Into && keyword is SqlKeyword.Temp or SqlKeyword.Temporary)
                {
                    scan.Effects |= SessionEffects.TempObject; // SELECT ... INTO TEMP name
                }

                break;
            case SqlKeyword.Declare when !scan.DeclareDone:
                if (keyword == SqlKeyword.For && index > 1)
                {
                    scan.DeclareDone = true;
                }
                else if (afterMark && scan.Mark == SqlKeyword.With && keyword == SqlKeyword.Hold)
                {
                    scan.Effects |= SessionEffects.HoldCursor;
                }

                break;
        }

        if (keyword is SqlKeyword.Begin or SqlKeyword.PgTemp or SqlKeyword.Into or SqlKeyword.With)
        {
            scan.Mark = keyword;
            scan.MarkAt = index;
        }
    }

    /// <summary>The keyword a function name spells: unquoted (folded) or quoted (exact).</summary>
    private static SqlKeyword FunctionName(ReadOnlySpan<byte> text, SqlToken name) => name.Kind == SqlTokenKind.Word
        ? SqlKeywords.Match(text.Slice(name.Start, name.Length))
        : name.Escaped ? SqlKeyword.None : SqlKeywords.MatchExact(text.Slice(name.Start + 1, Math.Max(0, name.Length - 2)));

    private static void AddSetting(ref Scan scan, SqlToken name, bool named)
    {
        scan.Settings++;
        if (!named || scan.Settings > 1)
        {
            scan.Effects = (scan.Effects & ~SessionEffects.Setting) | SessionEffects.UnreplayableSetting;
            return;
        }

        scan.Effects |= SessionEffects.Setting;
        scan.SettingName = name;
    }

    /// <summary>is_local given as a literal true ('t', 'true', 'on', 'yes', '1' or TRUE), the only spelling read as transaction-local.</summary>
    private static bool IsTrue(ReadOnlySpan<byte> text, SqlToken token)
    {
        ReadOnlySpan<byte> t = text.Slice(token.Start, token.Length);
        if (token.Kind == SqlTokenKind.Word)
        {
            return SqlKeywords.Match(t) == SqlKeyword.True;
        }

        if (token.Kind != SqlTokenKind.String || token.Escaped || t.Length < 2 || t[0] != (byte)'\'')
        {
            return false;
        }

        ReadOnlySpan<byte> v = t[1..^1];
        return System.Text.Ascii.EqualsIgnoreCase(v, "t"u8) || System.Text.Ascii.EqualsIgnoreCase(v, "true"u8) ||
               System.Text.Ascii.EqualsIgnoreCase(v, "on"u8) || System.Text.Ascii.EqualsIgnoreCase(v, "yes"u8) || v.SequenceEqual("1"u8);
    }

    private static SqlKeyword KeywordAt(ReadOnlySpan<byte> text, ref Head head, int n, int i) =>
        i < n && head[i].Kind == SqlTokenKind.Word ? SqlKeywords.Match(text.Slice(head[i].Start, head[i].Length)) : SqlKeyword.None;

    private static bool IsName(SqlToken t) => t.Kind is SqlTokenKind.Word or SqlTokenKind.QuotedIdentifier;

    /// <summary>Classifies a statement by its leading keyword and the first <paramref name="n"/> tokens.</summary>
    private static SqlStatement Classify(ReadOnlySpan<byte> text, ref Head head, int n, SqlKeyword lead, SessionEffects effects, int settings,
        SqlToken settingName, int start, int end)
    {
        StatementKind kind = StatementKind.Other;
        SqlToken name = default;
        SettingAlias alias = SettingAlias.None;
        if (lead == SqlKeyword.None)
        {
            // The common case (SELECT without INTO TEMP, INSERT, UPDATE, ...): only its calls count.
        }
        else if (lead is SqlKeyword.Set or SqlKeyword.Reset)
        {
            effects = ClassifySetting(text, ref head, n, lead, effects, settings, out settingName, out alias);
            effects |= lead == SqlKeyword.Reset ? SessionEffects.MayRelease : SessionEffects.None;
            settings = 0;
        }
        else if (lead == SqlKeyword.Discard)
        {
            kind = KeywordAt(text, ref head, n, 1) == SqlKeyword.All && n == 2 ? StatementKind.DiscardAll : StatementKind.Other;
            effects |= SessionEffects.MayRelease;
        }
        else if (lead is SqlKeyword.Close or SqlKeyword.Drop)
        {
            effects |= SessionEffects.MayRelease;
        }
        else if (lead == SqlKeyword.Deallocate)
        {
            effects |= SessionEffects.MayRelease;
            int at = KeywordAt(text, ref head, n, 1) == SqlKeyword.Prepare ? 2 : 1;
            if (at < n && n == at + 1 && KeywordAt(text, ref head, n, at) == SqlKeyword.All)
            {
                kind = StatementKind.DeallocateAll;
            }
            else if (at < n && n == at + 1 && IsName(head[at]))
            {
                kind = StatementKind.Deallocate;
                name = head[at];
            }
        }
        else if (lead == SqlKeyword.Prepare)
        {
            // PREPARE TRANSACTION 'gid' is two-phase commit, not a statement name.
            if (!(KeywordAt(text, ref head, n, 1) == SqlKeyword.Transaction && n > 2 && head[2].Kind == SqlTokenKind.String))
            {
                effects |= SessionEffects.PreparedStatement;
                if (n > 1 && IsName(head[1]))
                {
                    kind = StatementKind.Prepare;
                    name = head[1];
                }
            }
        }
        else if (lead == SqlKeyword.Execute)
        {
            if (n > 1 && IsName(head[1]))
            {
                kind = StatementKind.Execute;
                name = head[1];
            }
        }
        else if (lead == SqlKeyword.Listen)
        {
            kind = StatementKind.Listen;
            effects |= SessionEffects.Listen;
        }
        else if (lead == SqlKeyword.Unlisten)
        {
            kind = StatementKind.Unlisten;
            effects |= SessionEffects.MayRelease;
        }
        else if (lead == SqlKeyword.Create)
        {
            int i = 1;
            if (KeywordAt(text, ref head, n, i) == SqlKeyword.Or && KeywordAt(text, ref head, n, i + 1) == SqlKeyword.Replace)
            {
                i += 2;
            }

            if (KeywordAt(text, ref head, n, i) is SqlKeyword.Global or SqlKeyword.Local)
            {
                i++;
            }

            if (KeywordAt(text, ref head, n, i) is SqlKeyword.Temp or SqlKeyword.Temporary)
            {
                effects |= SessionEffects.TempObject;
            }
        }
        else if (lead == SqlKeyword.Load)
        {
            effects |= SessionEffects.Load;
        }
        else if (lead == SqlKeyword.Do)
        {
            effects |= SessionEffects.Unknown;
        }

        if (settings != 1 || (effects & SessionEffects.UnreplayableSetting) != 0)
        {
            settingName = lead is SqlKeyword.Set or SqlKeyword.Reset ? settingName : default;
        }

        return new SqlStatement(kind, effects, start, end, name, settingName, alias);
    }

    /// <summary>SET and RESET: which setting, at what level.</summary>
    private static SessionEffects ClassifySetting(ReadOnlySpan<byte> text, ref Head head, int n, SqlKeyword lead, SessionEffects effects, int settings,
        out SqlToken name, out SettingAlias alias)
    {
        name = default;
        alias = SettingAlias.None;
        SqlKeyword k1 = KeywordAt(text, ref head, n, 1);
        int nameAt = 1;
        switch (k1)
        {
            case SqlKeyword.Local when lead == SqlKeyword.Set:
            case SqlKeyword.Transaction when lead == SqlKeyword.Set:
            case SqlKeyword.Constraints when lead == SqlKeyword.Set:
                return effects; // ends with the transaction
            case SqlKeyword.Session:
                if (KeywordAt(text, ref head, n, 2) is SqlKeyword.Authorization or SqlKeyword.Characteristics)
                {
                    return effects | SessionEffects.UnreplayableSetting;
                }

                nameAt = 2;
                break;
            case SqlKeyword.Role:
            case SqlKeyword.All when lead == SqlKeyword.Reset:
                return effects | SessionEffects.UnreplayableSetting;
        }

        SqlKeyword kn = KeywordAt(text, ref head, n, nameAt);
        alias = kn == SqlKeyword.Time && KeywordAt(text, ref head, n, nameAt + 1) == SqlKeyword.Zone ? SettingAlias.TimeZone
            : kn == SqlKeyword.Names ? SettingAlias.ClientEncoding
            : kn == SqlKeyword.Schema ? SettingAlias.SearchPath
            : kn == SqlKeyword.Xml ? SettingAlias.XmlOption
            : SettingAlias.None;
        if (settings > 0 || (alias == SettingAlias.None && (nameAt >= n || !IsName(head[nameAt]))))
        {
            // No name, or a SET whose value calls set_config: assume the worst.
            alias = SettingAlias.None;
            return (effects & ~SessionEffects.Setting) | SessionEffects.UnreplayableSetting;
        }

        if (alias == SettingAlias.None)
        {
            name = QualifiedName(ref head, n, nameAt);
        }

        return effects | SessionEffects.Setting;
    }

    /// <summary>A setting name: one word or quoted identifier, or a dotted custom name (myapp.user_id) as one span.</summary>
    private static SqlToken QualifiedName(ref Head head, int n, int at)
    {
        SqlToken first = head[at];
        if (at + 2 < n && head[at + 1].Kind == SqlTokenKind.Dot && IsName(head[at + 2]))
        {
            return new SqlToken(SqlTokenKind.Word, first.Start, head[at + 2].End - first.Start, Escaped: true);
        }

        return first;
    }
}
