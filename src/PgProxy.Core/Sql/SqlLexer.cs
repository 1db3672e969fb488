namespace PgProxy.Core.Sql;

/// <summary>Token kinds the classifier tells apart.</summary>
public enum SqlTokenKind : byte
{
    /// <summary>An unquoted word: keyword or identifier (letters, digits, _, $ and any non-ASCII byte).</summary>
    Word,
    /// <summary>A double-quoted identifier ("..." or U&amp;"..."); <see cref="SqlToken.Start"/> is at the opening quote.</summary>
    QuotedIdentifier,
    /// <summary>A string constant: '...', E'...', B'...', X'...', N'...', U&amp;'...' or $tag$...$tag$.</summary>
    String,
    /// <summary>A numeric constant.</summary>
    Number,
    /// <summary>A positional parameter ($1).</summary>
    Parameter,
    /// <summary>A statement separator.</summary>
    Semicolon,
    /// <summary>(</summary>
    OpenParen,
    /// <summary>)</summary>
    CloseParen,
    /// <summary>,</summary>
    Comma,
    /// <summary>.</summary>
    Dot,
    /// <summary>Any other operator or punctuation character.</summary>
    Operator,
}

/// <summary>One token: its kind and where it is in the text.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Start">Offset of its first byte.</param>
/// <param name="Length">Its length in bytes, quotes and prefixes included.</param>
/// <param name="Escaped">A string or quoted identifier containing doubled quotes or backslash escapes (its content is not its text).</param>
public readonly record struct SqlToken(SqlTokenKind Kind, int Start, int Length, bool Escaped = false)
{
    /// <summary>Offset just past the token.</summary>
    public int End => Start + Length;
}

/// <summary>
/// PostgreSQL's lexical structure ("SQL Syntax: Lexical Structure") over UTF-8 bytes, as far as a pooler needs it:
/// whitespace, <c>--</c> and nested <c>/* */</c> comments are skipped; string constants (standard, E'' escape strings,
/// B/X/N/U&amp; prefixes, dollar quoting), quoted identifiers, words, numbers, parameters and punctuation come back as
/// tokens. It never allocates and never fails: an unterminated string or comment runs to the end of the text (the
/// server reports the error). Keywords are ASCII, and UTF-8 never puts an ASCII byte inside a multi-byte character,
/// so working on bytes loses nothing.
/// </summary>
[System.Runtime.CompilerServices.SkipLocalsInit]
public ref struct SqlLexer
{
    private readonly ReadOnlySpan<byte> _text;
    private readonly bool _standardConformingStrings;
    private int _pos;

    /// <summary>Starts at the beginning of <paramref name="text"/>.</summary>
    /// <param name="text">The SQL, UTF-8.</param>
    /// <param name="standardConformingStrings">The server's standard_conforming_strings: when off, backslash escapes in '' strings too.</param>
    public SqlLexer(ReadOnlySpan<byte> text, bool standardConformingStrings = true)
    {
        _text = text;
        _standardConformingStrings = standardConformingStrings;
        _pos = 0;
    }

    /// <summary>The text being lexed.</summary>
    public readonly ReadOnlySpan<byte> Text => _text;

    /// <summary>Reads the next token; false at the end of the text.</summary>
    public bool Next(out SqlToken token)
    {
        // Positions live in locals and the helpers are static: the JIT keeps them in registers, and _pos is written once.
        ReadOnlySpan<byte> t = _text;
        int start = SkipTrivia(t, _pos);
        if (start >= t.Length)
        {
            _pos = start;
            token = default;
            return false;
        }

        byte c = t[start];
        bool escaped = false;
        SqlTokenKind kind;
        int end;
        if ((Classes[c] & WordStartClass) != 0)
        {
            (kind, end) = ReadWordOrPrefixed(t, start, _standardConformingStrings, ref escaped);
        }
        else if ((Classes[c] & DigitClass) != 0)
        {
            end = SkipNumber(t, start + 1);
            kind = SqlTokenKind.Number;
        }
        else
        {
            end = start + 1;
            switch (c)
            {
                case (byte)'\'':
                    end = SkipQuoted(t, start + 1, (byte)'\'', backslashEscapes: !_standardConformingStrings, ref escaped);
                    kind = SqlTokenKind.String;
                    break;
                case (byte)'"':
                    end = SkipQuoted(t, start + 1, (byte)'"', backslashEscapes: false, ref escaped);
                    kind = SqlTokenKind.QuotedIdentifier;
                    break;
                case (byte)'$':
                    if (end < t.Length && IsDigit(t[end]))
                    {
                        end = SkipDigits(t, end);
                        kind = SqlTokenKind.Parameter;
                    }
                    else if (TryDollarTag(t, start, out int tagLength))
                    {
                        end = SkipDollarBody(t, start, tagLength);
                        kind = SqlTokenKind.String;
                    }
                    else
                    {
                        kind = SqlTokenKind.Operator;
                    }

                    break;
                case (byte)';':
                    kind = SqlTokenKind.Semicolon;
                    break;
                case (byte)'(':
                    kind = SqlTokenKind.OpenParen;
                    break;
                case (byte)')':
                    kind = SqlTokenKind.CloseParen;
                    break;
                case (byte)',':
                    kind = SqlTokenKind.Comma;
                    break;
                case (byte)'.':
                    if (end < t.Length && IsDigit(t[end]))
                    {
                        end = SkipNumber(t, end);
                        kind = SqlTokenKind.Number;
                    }
                    else
                    {
                        kind = SqlTokenKind.Dot;
                    }

                    break;
                default:
                    kind = SqlTokenKind.Operator;
                    break;
            }
        }

        _pos = end;
        token = new SqlToken(kind, start, end - start, escaped);
        return true;
    }

    /// <summary>A word; or, when it is a string prefix (E, B, X, N, U&amp;) glued to a quote, the prefixed constant.</summary>
    private static (SqlTokenKind Kind, int End) ReadWordOrPrefixed(ReadOnlySpan<byte> t, int start, bool standardConformingStrings, ref bool escaped)
    {
        int next = start + 1;
        if (next < t.Length && t[next] is (byte)'\'' or (byte)'&')
        {
            byte c = (byte)(t[start] | 0x20);
            if (t[next] == (byte)'\'')
            {
                if (c == (byte)'e')
                {
                    return (SqlTokenKind.String, SkipQuoted(t, next + 1, (byte)'\'', backslashEscapes: true, ref escaped));
                }

                if (c is (byte)'b' or (byte)'x' or (byte)'n')
                {
                    return (SqlTokenKind.String, SkipQuoted(t, next + 1, (byte)'\'', backslashEscapes: !standardConformingStrings, ref escaped));
                }
            }
            else if (c == (byte)'u' && next + 1 < t.Length && t[next + 1] is (byte)'\'' or (byte)'"')
            {
                byte quote = t[next + 1];
                escaped = true; // Unicode escapes: the content is not the text
                int end = SkipQuoted(t, next + 2, quote, backslashEscapes: false, ref escaped);
                return (quote == (byte)'"' ? SqlTokenKind.QuotedIdentifier : SqlTokenKind.String, end);
            }
        }

        return (SqlTokenKind.Word, SkipWord(t, next));
    }

    private static int SkipTrivia(ReadOnlySpan<byte> t, int pos)
    {
        while (pos < t.Length)
        {
            byte c = t[pos];
            if (IsSpace(c))
            {
                pos++;
            }
            else if (c == (byte)'-' && pos + 1 < t.Length && t[pos + 1] == (byte)'-')
            {
                int eol = t[pos..].IndexOfAny((byte)'\n', (byte)'\r');
                pos = eol < 0 ? t.Length : pos + eol + 1;
            }
            else if (c == (byte)'/' && pos + 1 < t.Length && t[pos + 1] == (byte)'*')
            {
                pos = SkipBlockComment(t, pos + 2);
            }
            else
            {
                break;
            }
        }

        return pos;
    }

    /// <summary>Block comments nest in PostgreSQL (unlike the SQL standard's first */ ends it).</summary>
    private static int SkipBlockComment(ReadOnlySpan<byte> t, int pos)
    {
        int depth = 1;
        while (pos < t.Length)
        {
            int i = t[pos..].IndexOfAny((byte)'*', (byte)'/');
            if (i < 0)
            {
                return t.Length;
            }

            pos += i;
            if (t[pos] == (byte)'*' && pos + 1 < t.Length && t[pos + 1] == (byte)'/')
            {
                pos += 2;
                if (--depth == 0)
                {
                    return pos;
                }
            }
            else if (t[pos] == (byte)'/' && pos + 1 < t.Length && t[pos + 1] == (byte)'*')
            {
                pos += 2;
                depth++;
            }
            else
            {
                pos++;
            }
        }

        return t.Length;
    }

    /// <summary>Past the closing quote; a doubled quote is part of the content, and so is a backslash-escaped byte when escapes apply.</summary>
    private static int SkipQuoted(ReadOnlySpan<byte> t, int pos, byte quote, bool backslashEscapes, ref bool escaped)
    {
        while (pos < t.Length)
        {
            int i = backslashEscapes ? t[pos..].IndexOfAny(quote, (byte)'\\') : t[pos..].IndexOf(quote);
            if (i < 0)
            {
                return t.Length;
            }

            pos += i;
            if (t[pos] == (byte)'\\')
            {
                escaped = true;
                pos += 2;
                continue;
            }

            if (pos + 1 < t.Length && t[pos + 1] == quote)
            {
                escaped = true;
                pos += 2;
                continue;
            }

            return pos + 1;
        }

        return t.Length;
    }

    /// <summary>$tag$ where the tag is empty or an identifier without $ ("Dollar-Quoted String Constants").</summary>
    private static bool TryDollarTag(ReadOnlySpan<byte> t, int start, out int tagLength)
    {
        tagLength = 0;
        int pos = start + 1;
        if (pos < t.Length && t[pos] != (byte)'$' && !IsWordStart(t[pos]))
        {
            return false;
        }

        while (pos < t.Length && t[pos] != (byte)'$')
        {
            if (!IsWordByte(t[pos]))
            {
                return false;
            }

            pos++;
        }

        if (pos >= t.Length)
        {
            return false;
        }

        tagLength = pos - start + 1; // both dollars included
        return true;
    }

    private static int SkipDollarBody(ReadOnlySpan<byte> t, int start, int tagLength)
    {
        ReadOnlySpan<byte> tag = t.Slice(start, tagLength);
        int bodyStart = start + tagLength;
        int close = t[bodyStart..].IndexOf(tag);
        return close < 0 ? t.Length : bodyStart + close + tagLength;
    }

    private static int SkipDigits(ReadOnlySpan<byte> t, int pos)
    {
        while (pos < t.Length && IsDigit(t[pos]))
        {
            pos++;
        }

        return pos;
    }

    /// <summary>Numbers are only skipped, so 1.5e10, 0x1F and 1_000 need no grammar: word bytes and dots.</summary>
    private static int SkipNumber(ReadOnlySpan<byte> t, int pos)
    {
        while (pos < t.Length && (IsWordByte(t[pos]) || t[pos] == (byte)'.'))
        {
            pos++;
        }

        return pos;
    }

    private static int SkipWord(ReadOnlySpan<byte> t, int pos)
    {
        while (pos < t.Length && IsWordByte(t[pos]))
        {
            pos++;
        }

        return pos;
    }

    private const byte WordStartClass = 1; // a-z A-Z _ and every non-ASCII byte
    private const byte WordClass = 2;      // word start, digits, $
    private const byte DigitClass = 4;
    private const byte SpaceClass = 8;

    /// <summary>Byte classes, one lookup per byte instead of a chain of comparisons.</summary>
    private static ReadOnlySpan<byte> Classes =>
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 0, 0, 0, 0, 0, 0,
        0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 3,
        0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    ];

    private static bool IsDigit(byte b) => (Classes[b] & DigitClass) != 0;

    private static bool IsWordStart(byte b) => (Classes[b] & WordStartClass) != 0;

    private static bool IsWordByte(byte b) => (Classes[b] & WordClass) != 0;

    private static bool IsSpace(byte b) => (Classes[b] & SpaceClass) != 0;
}
