using System.Globalization;
using System.Text;

namespace PgProxy.Core.Configuration.Toml;

/// <summary>
/// A strict TOML 1.0.0 reader (https://toml.io/en/v1.0.0). It accepts every valid document of the toml-test
/// suite and rejects every invalid one; errors carry line and column. Recursive descent over the decoded text.
/// </summary>
public sealed class TomlReader
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly string _text;
    private int _pos;
    private readonly TomlTable _root;
    private TomlTable _current;

    private TomlReader(string text)
    {
        _text = text;
        _root = new TomlTable { Origin = TomlTableOrigin.Root, Position = new TomlPosition(1, 1) };
        _current = _root;
    }

    /// <summary>Parses UTF-8 bytes.</summary>
    public static TomlTable Parse(byte[] utf8)
    {
        string text;
        try
        {
            text = s_strictUtf8.GetString(utf8);
        }
        catch (DecoderFallbackException)
        {
            throw new TomlException("invalid UTF-8", new TomlPosition(1, 1));
        }

        return Parse(text);
    }

    /// <summary>Parses a document.</summary>
    public static TomlTable Parse(string text)
    {
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text.Substring(1);
        }

        var reader = new TomlReader(text);
        reader.ParseDocument();
        return reader._root;
    }

    private bool AtEnd => _pos >= _text.Length;

    private char Cur => _pos < _text.Length ? _text[_pos] : '\0';

    private char Peek(int offset) => _pos + offset < _text.Length ? _text[_pos + offset] : '\0';

    private TomlPosition PositionAt(int index)
    {
        int line = 1, col = 1;
        for (int i = 0; i < index && i < _text.Length; i++)
        {
            if (_text[i] == '\n')
            {
                line++;
                col = 1;
            }
            else
            {
                col++;
            }
        }

        return new TomlPosition(line, col);
    }

    private TomlException Error(string message) => new(message, PositionAt(_pos));

    private TomlException ErrorAt(int index, string message) => new(message, PositionAt(index));

    private void ParseDocument()
    {
        while (true)
        {
            SkipWhitespace();
            if (AtEnd)
            {
                return;
            }

            char c = Cur;
            if (c == '#')
            {
                SkipComment();
                ExpectNewlineOrEnd();
            }
            else if (c == '\n' || c == '\r')
            {
                ExpectNewlineOrEnd();
            }
            else if (c == '[')
            {
                ParseTableHeader();
            }
            else
            {
                ParseKeyValue(_current, inline: false);
                SkipWhitespace();
                if (Cur == '#')
                {
                    SkipComment();
                }

                ExpectNewlineOrEnd();
            }
        }
    }

    private void SkipWhitespace()
    {
        while (!AtEnd && (Cur == ' ' || Cur == '\t'))
        {
            _pos++;
        }
    }

    private void SkipComment()
    {
        _pos++; // '#'
        while (!AtEnd && Cur != '\n')
        {
            char c = Cur;
            if (c == '\r' && Peek(1) == '\n')
            {
                return;
            }

            if (IsControl(c) && c != '\t')
            {
                throw Error("control character in comment");
            }

            if (char.IsSurrogate(c))
            {
                // Decoding from UTF-8 only yields well-formed pairs; skip both halves.
                _pos++;
            }

            _pos++;
        }
    }

    private static bool IsControl(char c) => c < 0x20 || c == 0x7F;

    private void ExpectNewlineOrEnd()
    {
        if (AtEnd)
        {
            return;
        }

        if (Cur == '\n')
        {
            _pos++;
            return;
        }

        if (Cur == '\r' && Peek(1) == '\n')
        {
            _pos += 2;
            return;
        }

        throw Error(Cur == '\r' ? "bare carriage return" : $"expected a newline or end of file, found '{Describe(Cur)}'");
    }

    private static string Describe(char c) => c < 0x20 || c == 0x7F ? $"U+{(int)c:X4}" : c.ToString();

    // ---- tables -------------------------------------------------------------------------------------------

    private void ParseTableHeader()
    {
        int start = _pos;
        bool array = Peek(1) == '[';
        _pos += array ? 2 : 1;
        SkipWhitespace();
        List<(string Key, int Index)> keys = ParseKey();
        SkipWhitespace();
        if (array)
        {
            if (Cur != ']' || Peek(1) != ']')
            {
                throw Error("expected ']]' to close the array-of-tables header");
            }

            _pos += 2;
        }
        else
        {
            if (Cur != ']')
            {
                throw Error("expected ']' to close the table header");
            }

            _pos++;
        }

        SkipWhitespace();
        if (Cur == '#')
        {
            SkipComment();
        }

        ExpectNewlineOrEnd();

        TomlTable table = _root;
        for (int i = 0; i < keys.Count - 1; i++)
        {
            (string key, int index) = keys[i];
            if (!table.TryGetValue(key, out object? existing))
            {
                var created = new TomlTable { Origin = TomlTableOrigin.Implicit, Position = PositionAt(index) };
                table.Add(key, created, PositionAt(index));
                table = created;
                continue;
            }

            table = existing switch
            {
                TomlTable { Frozen: true } => throw ErrorAt(index, $"cannot extend inline table '{key}'"),
                TomlTable t => t,
                TomlArray { IsArrayOfTables: true } a => (TomlTable)a[^1],
                _ => throw ErrorAt(index, $"key '{key}' is not a table"),
            };
        }

        (string last, int lastIndex) = keys[^1];
        TomlPosition pos = PositionAt(start);
        if (array)
        {
            var element = new TomlTable { Origin = TomlTableOrigin.Header, Position = pos };
            if (!table.TryGetValue(last, out object? existing))
            {
                var created = new TomlArray { IsArrayOfTables = true };
                created.Add(element);
                table.Add(last, created, PositionAt(lastIndex));
            }
            else if (existing is TomlArray { IsArrayOfTables: true } aot)
            {
                aot.Add(element);
            }
            else
            {
                throw ErrorAt(lastIndex, $"cannot define '{last}' as an array of tables: it is already defined");
            }

            _current = element;
        }
        else
        {
            if (!table.TryGetValue(last, out object? existing))
            {
                var created = new TomlTable { Origin = TomlTableOrigin.Header, Position = pos };
                table.Add(last, created, PositionAt(lastIndex));
                _current = created;
            }
            else if (existing is TomlTable { Origin: TomlTableOrigin.Implicit } implicitTable)
            {
                implicitTable.Origin = TomlTableOrigin.Header;
                implicitTable.Position = pos;
                _current = implicitTable;
            }
            else
            {
                throw ErrorAt(lastIndex, $"table '{last}' is defined more than once");
            }
        }
    }

    // ---- keys ---------------------------------------------------------------------------------------------

    private List<(string Key, int Index)> ParseKey()
    {
        var keys = new List<(string, int)>();
        while (true)
        {
            int index = _pos;
            keys.Add((ParseSimpleKey(), index));
            SkipWhitespace();
            if (Cur != '.')
            {
                return keys;
            }

            _pos++;
            SkipWhitespace();
        }
    }

    private string ParseSimpleKey()
    {
        char c = Cur;
        if (c == '"')
        {
            if (Peek(1) == '"' && Peek(2) == '"')
            {
                throw Error("multi-line strings cannot be keys");
            }

            return ParseBasicString();
        }

        if (c == '\'')
        {
            if (Peek(1) == '\'' && Peek(2) == '\'')
            {
                throw Error("multi-line strings cannot be keys");
            }

            return ParseLiteralString();
        }

        int start = _pos;
        while (!AtEnd && IsBareKeyChar(Cur))
        {
            _pos++;
        }

        if (_pos == start)
        {
            throw Error(AtEnd ? "expected a key, found end of file" : $"expected a key, found '{Describe(Cur)}'");
        }

        return _text.Substring(start, _pos - start);
    }

    private static bool IsBareKeyChar(char c) => c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-';

    private void ParseKeyValue(TomlTable table, bool inline)
    {
        List<(string Key, int Index)> keys = ParseKey();
        SkipWhitespace();
        if (Cur != '=')
        {
            throw Error(AtEnd ? "expected '=' after the key, found end of file" : $"expected '=' after the key, found '{Describe(Cur)}'");
        }

        _pos++;
        SkipWhitespace();

        for (int i = 0; i < keys.Count - 1; i++)
        {
            (string key, int index) = keys[i];
            if (!table.TryGetValue(key, out object? existing))
            {
                var created = new TomlTable { Origin = TomlTableOrigin.Dotted, Position = PositionAt(index), Frozen = inline && table.Frozen };
                table.Add(key, created, PositionAt(index));
                table = created;
            }
            else if (existing is TomlTable { Origin: TomlTableOrigin.Dotted } dotted && !(dotted.Frozen && !inline))
            {
                table = dotted;
            }
            else
            {
                throw ErrorAt(index, $"cannot add to '{key}' with a dotted key: it is already defined");
            }
        }

        (string last, int lastIndex) = keys[^1];
        if (table.TryGetValue(last, out _))
        {
            throw ErrorAt(lastIndex, $"duplicate key '{last}'");
        }

        object value = ParseValue();
        table.Add(last, value, PositionAt(lastIndex));
    }

    // ---- values -------------------------------------------------------------------------------------------

    private object ParseValue()
    {
        if (AtEnd)
        {
            throw Error("expected a value, found end of file");
        }

        char c = Cur;
        switch (c)
        {
            case '"':
                return Peek(1) == '"' && Peek(2) == '"' ? ParseMultilineBasicString() : ParseBasicString();
            case '\'':
                return Peek(1) == '\'' && Peek(2) == '\'' ? ParseMultilineLiteralString() : ParseLiteralString();
            case '[':
                return ParseArray();
            case '{':
                return ParseInlineTable();
            case 't':
                return ParseKeyword("true", true);
            case 'f':
                return ParseKeyword("false", false);
            case 'i':
            case 'n':
                return ParseNumber();
        }

        if (c == '+' || c == '-')
        {
            return ParseNumber();
        }

        if (c is >= '0' and <= '9')
        {
            if (IsDigitAt(0) && IsDigitAt(1) && Peek(2) == ':')
            {
                return ParseTime(TomlDateTimeKind.LocalTime, _pos);
            }

            if (IsDigitAt(0) && IsDigitAt(1) && IsDigitAt(2) && IsDigitAt(3) && Peek(4) == '-')
            {
                return ParseDateTime();
            }

            return ParseNumber();
        }

        throw Error($"expected a value, found '{Describe(c)}'");
    }

    private bool IsDigitAt(int offset) => Peek(offset) is >= '0' and <= '9';

    private object ParseKeyword(string word, bool value)
    {
        if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) != 0)
        {
            throw Error($"expected a value, found '{Describe(Cur)}'");
        }

        _pos += word.Length;
        return value;
    }

    private TomlArray ParseArray()
    {
        _pos++; // '['
        var array = new TomlArray();
        while (true)
        {
            SkipArrayFiller();
            if (Cur == ']')
            {
                _pos++;
                return array;
            }

            array.Add(ParseValue());
            SkipArrayFiller();
            if (Cur == ',')
            {
                _pos++;
                continue;
            }

            if (Cur == ']')
            {
                _pos++;
                return array;
            }

            throw Error(AtEnd ? "unterminated array" : $"expected ',' or ']' in array, found '{Describe(Cur)}'");
        }
    }

    private void SkipArrayFiller()
    {
        while (!AtEnd)
        {
            char c = Cur;
            if (c == ' ' || c == '\t')
            {
                _pos++;
            }
            else if (c == '\n')
            {
                _pos++;
            }
            else if (c == '\r')
            {
                ExpectNewlineOrEnd();
            }
            else if (c == '#')
            {
                SkipComment();
            }
            else
            {
                return;
            }
        }
    }

    private TomlTable ParseInlineTable()
    {
        var table = new TomlTable { Origin = TomlTableOrigin.Inline, Frozen = true, Position = PositionAt(_pos) };
        _pos++; // '{'
        SkipWhitespace();
        if (Cur == '}')
        {
            _pos++;
            return table;
        }

        while (true)
        {
            SkipWhitespace();
            ParseKeyValue(table, inline: true);
            SkipWhitespace();
            if (Cur == ',')
            {
                _pos++;
                SkipWhitespace();
                if (Cur == '}')
                {
                    throw Error("trailing comma in inline table");
                }

                continue;
            }

            if (Cur == '}')
            {
                _pos++;
                FreezeAll(table);
                return table;
            }

            throw Error(AtEnd ? "unterminated inline table" : $"expected ',' or '}}' in inline table, found '{Describe(Cur)}'");
        }
    }

    private static void FreezeAll(TomlTable table)
    {
        table.Frozen = true;
        foreach (string key in table.Keys)
        {
            if (table[key] is TomlTable child)
            {
                FreezeAll(child);
            }
        }
    }

    // ---- strings ------------------------------------------------------------------------------------------

    private string ParseBasicString()
    {
        _pos++; // '"'
        var sb = new StringBuilder();
        while (true)
        {
            if (AtEnd)
            {
                throw Error("unterminated string");
            }

            char c = Cur;
            if (c == '"')
            {
                _pos++;
                return sb.ToString();
            }

            if (c == '\\')
            {
                ParseEscape(sb);
                continue;
            }

            if (c == '\n' || c == '\r')
            {
                throw Error("newline in a single-line string");
            }

            if (IsControl(c) && c != '\t')
            {
                throw Error($"control character {Describe(c)} in string");
            }

            sb.Append(c);
            _pos++;
        }
    }

    private void ParseEscape(StringBuilder sb)
    {
        int start = _pos;
        _pos++; // '\'
        char e = Cur;
        _pos++;
        switch (e)
        {
            case 'b': sb.Append('\b'); return;
            case 't': sb.Append('\t'); return;
            case 'n': sb.Append('\n'); return;
            case 'f': sb.Append('\f'); return;
            case 'r': sb.Append('\r'); return;
            case '"': sb.Append('"'); return;
            case '\\': sb.Append('\\'); return;
            case 'u':
                AppendCodePoint(sb, ParseHex(4, start), start);
                return;
            case 'U':
                AppendCodePoint(sb, ParseHex(8, start), start);
                return;
            default:
                throw ErrorAt(start, $"invalid escape sequence '\\{Describe(e)}'");
        }
    }

    private int ParseHex(int digits, int start)
    {
        int value = 0;
        for (int i = 0; i < digits; i++)
        {
            char h = Cur;
            int d = h switch
            {
                >= '0' and <= '9' => h - '0',
                >= 'a' and <= 'f' => h - 'a' + 10,
                >= 'A' and <= 'F' => h - 'A' + 10,
                _ => throw ErrorAt(start, "invalid unicode escape: expected hex digits"),
            };
            if (value > 0x7FFFFFF)
            {
                throw ErrorAt(start, "invalid unicode escape: out of range");
            }

            value = (value << 4) | d;
            _pos++;
        }

        return value;
    }

    private void AppendCodePoint(StringBuilder sb, int cp, int start)
    {
        if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        {
            throw ErrorAt(start, "invalid unicode escape: not a Unicode scalar value");
        }

        sb.Append(char.ConvertFromUtf32(cp));
    }

    private string ParseMultilineBasicString()
    {
        _pos += 3;
        SkipNewlineAfterOpening();
        var sb = new StringBuilder();
        while (true)
        {
            if (AtEnd)
            {
                throw Error("unterminated multi-line string");
            }

            char c = Cur;
            if (c == '"' && Peek(1) == '"' && Peek(2) == '"')
            {
                int quotes = CountQuotes('"');
                if (quotes > 5)
                {
                    throw Error("too many quotes at the end of a multi-line string");
                }

                sb.Append('"', quotes - 3);
                _pos += quotes;
                return sb.ToString();
            }

            if (c == '\\')
            {
                // Line-ending backslash: trims whitespace and newlines up to the next non-blank.
                int look = _pos + 1;
                while (look < _text.Length && (_text[look] == ' ' || _text[look] == '\t'))
                {
                    look++;
                }

                if (look < _text.Length && (_text[look] == '\n' || (_text[look] == '\r' && look + 1 < _text.Length && _text[look + 1] == '\n')))
                {
                    _pos = look;
                    while (!AtEnd && (Cur == ' ' || Cur == '\t' || Cur == '\n' || (Cur == '\r' && Peek(1) == '\n')))
                    {
                        _pos++;
                    }

                    continue;
                }

                ParseEscape(sb);
                continue;
            }

            AppendMultilineChar(sb, c);
        }
    }

    private string ParseMultilineLiteralString()
    {
        _pos += 3;
        SkipNewlineAfterOpening();
        var sb = new StringBuilder();
        while (true)
        {
            if (AtEnd)
            {
                throw Error("unterminated multi-line literal string");
            }

            char c = Cur;
            if (c == '\'' && Peek(1) == '\'' && Peek(2) == '\'')
            {
                int quotes = CountQuotes('\'');
                if (quotes > 5)
                {
                    throw Error("too many quotes at the end of a multi-line literal string");
                }

                sb.Append('\'', quotes - 3);
                _pos += quotes;
                return sb.ToString();
            }

            AppendMultilineChar(sb, c);
        }
    }

    private void AppendMultilineChar(StringBuilder sb, char c)
    {
        if (c == '\r')
        {
            if (Peek(1) != '\n')
            {
                throw Error("bare carriage return in string");
            }

            sb.Append('\n');
            _pos += 2;
            return;
        }

        if (c != '\n' && c != '\t' && IsControl(c))
        {
            throw Error($"control character {Describe(c)} in string");
        }

        sb.Append(c);
        _pos++;
    }

    private void SkipNewlineAfterOpening()
    {
        if (Cur == '\n')
        {
            _pos++;
        }
        else if (Cur == '\r' && Peek(1) == '\n')
        {
            _pos += 2;
        }
    }

    private int CountQuotes(char q)
    {
        int n = 0;
        while (Peek(n) == q)
        {
            n++;
        }

        return n;
    }

    private string ParseLiteralString()
    {
        _pos++; // '\''
        int start = _pos;
        while (true)
        {
            if (AtEnd)
            {
                throw Error("unterminated literal string");
            }

            char c = Cur;
            if (c == '\'')
            {
                string s = _text.Substring(start, _pos - start);
                _pos++;
                return s;
            }

            if (c == '\n' || c == '\r')
            {
                throw Error("newline in a single-line literal string");
            }

            if (IsControl(c) && c != '\t')
            {
                throw Error($"control character {Describe(c)} in literal string");
            }

            _pos++;
        }
    }

    // ---- numbers ------------------------------------------------------------------------------------------

    private object ParseNumber()
    {
        int start = _pos;
        while (!AtEnd && IsNumberChar(Cur))
        {
            _pos++;
        }

        string token = _text.Substring(start, _pos - start);
        if (token.Length == 0)
        {
            throw ErrorAt(start, $"expected a value, found '{Describe(Cur)}'");
        }

        string unsigned = token[0] is '+' or '-' ? token.Substring(1) : token;
        bool negative = token[0] == '-';
        switch (unsigned)
        {
            case "inf":
                return negative ? double.NegativeInfinity : double.PositiveInfinity;
            case "nan":
                return double.NaN;
        }

        if (unsigned.Length > 1 && unsigned[0] == '0' && unsigned[1] is 'x' or 'o' or 'b')
        {
            if (token[0] is '+' or '-')
            {
                throw ErrorAt(start, "a sign is not allowed on hexadecimal, octal or binary integers");
            }

            return ParseRadixInteger(unsigned, start);
        }

        bool isFloat = unsigned.IndexOfAny(['.', 'e', 'E']) >= 0;
        if (!isFloat)
        {
            ValidateDecimalDigits(unsigned, start, allowLeadingZero: false);
            if (!long.TryParse(token.Replace("_", "", StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            {
                throw ErrorAt(start, $"integer '{token}' is out of the 64-bit range");
            }

            return value;
        }

        int exp = unsigned.IndexOfAny(['e', 'E']);
        string mantissa = exp >= 0 ? unsigned.Substring(0, exp) : unsigned;
        string? exponent = exp >= 0 ? unsigned.Substring(exp + 1) : null;
        int dot = mantissa.IndexOf('.', StringComparison.Ordinal);
        string intPart = dot >= 0 ? mantissa.Substring(0, dot) : mantissa;
        ValidateDecimalDigits(intPart, start, allowLeadingZero: false);
        if (dot >= 0)
        {
            ValidateDecimalDigits(mantissa.Substring(dot + 1), start, allowLeadingZero: true);
        }

        if (exponent is not null)
        {
            string e = exponent.Length > 0 && exponent[0] is '+' or '-' ? exponent.Substring(1) : exponent;
            ValidateDecimalDigits(e, start, allowLeadingZero: true);
        }

        return double.Parse(token.Replace("_", "", StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    private static bool IsNumberChar(char c) =>
        c is (>= '0' and <= '9') or (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or '_' or '+' or '-' or '.';

    private void ValidateDecimalDigits(string digits, int start, bool allowLeadingZero)
    {
        if (digits.Length == 0)
        {
            throw ErrorAt(start, "invalid number: missing digits");
        }

        for (int i = 0; i < digits.Length; i++)
        {
            char c = digits[i];
            if (c == '_')
            {
                if (i == 0 || i == digits.Length - 1 || digits[i - 1] == '_' || !char.IsAsciiDigit(digits[i + 1]))
                {
                    throw ErrorAt(start, "invalid number: '_' must stand between digits");
                }
            }
            else if (!char.IsAsciiDigit(c))
            {
                throw ErrorAt(start, $"invalid number: unexpected '{Describe(c)}'");
            }
        }

        if (!allowLeadingZero && digits.Length > 1 && digits[0] == '0')
        {
            throw ErrorAt(start, "invalid number: leading zeros are not allowed");
        }
    }

    private long ParseRadixInteger(string text, int start)
    {
        int radix = text[1] switch { 'x' => 16, 'o' => 8, _ => 2 };
        string digits = text.Substring(2);
        if (digits.Length == 0)
        {
            throw ErrorAt(start, "invalid integer: missing digits");
        }

        ulong value = 0;
        for (int i = 0; i < digits.Length; i++)
        {
            char c = digits[i];
            if (c == '_')
            {
                if (i == 0 || i == digits.Length - 1 || digits[i - 1] == '_')
                {
                    throw ErrorAt(start, "invalid number: '_' must stand between digits");
                }

                continue;
            }

            int d = c switch
            {
                >= '0' and <= '9' => c - '0',
                >= 'a' and <= 'f' => c - 'a' + 10,
                >= 'A' and <= 'F' => c - 'A' + 10,
                _ => 99,
            };
            if (d >= radix)
            {
                throw ErrorAt(start, $"invalid digit '{Describe(c)}' in base-{radix} integer");
            }

            if (value > (ulong.MaxValue - (ulong)d) / (ulong)radix)
            {
                throw ErrorAt(start, "integer is out of the 64-bit range");
            }

            value = value * (ulong)radix + (ulong)d;
        }

        if (value > long.MaxValue)
        {
            throw ErrorAt(start, "integer is out of the 64-bit range");
        }

        return (long)value;
    }

    // ---- dates and times ----------------------------------------------------------------------------------

    private TomlDateTime ParseDateTime()
    {
        int start = _pos;
        int year = ReadDigits(4, start);
        Expect('-', start);
        int month = ReadDigits(2, start);
        Expect('-', start);
        int day = ReadDigits(2, start);
        if (month < 1 || month > 12 || day < 1 || day > DateTime.DaysInMonth(Math.Max(year, 1), month))
        {
            throw ErrorAt(start, "invalid date");
        }

        char sep = Cur;
        bool hasTime = (sep == 'T' || sep == 't') ||
                       (sep == ' ' && IsDigitAt(1) && IsDigitAt(2) && Peek(3) == ':');
        if (!hasTime)
        {
            return new TomlDateTime(TomlDateTimeKind.LocalDate, _text.Substring(start, _pos - start));
        }

        _pos++;
        TomlDateTime time = ParseTime(TomlDateTimeKind.LocalDateTime, start);
        return time;
    }

    private TomlDateTime ParseTime(TomlDateTimeKind kind, int start)
    {
        int timeStart = _pos;
        int hour = ReadDigits(2, timeStart);
        Expect(':', timeStart);
        int minute = ReadDigits(2, timeStart);
        Expect(':', timeStart);
        int second = ReadDigits(2, timeStart);
        if (hour > 23 || minute > 59 || second > 60)
        {
            throw ErrorAt(timeStart, "invalid time");
        }

        if (Cur == '.')
        {
            _pos++;
            int fracStart = _pos;
            while (IsDigitAt(0))
            {
                _pos++;
            }

            if (_pos == fracStart)
            {
                throw ErrorAt(timeStart, "invalid time: missing fractional digits");
            }
        }

        if (kind == TomlDateTimeKind.LocalDateTime)
        {
            if (Cur == 'Z' || Cur == 'z')
            {
                _pos++;
                kind = TomlDateTimeKind.OffsetDateTime;
            }
            else if (Cur == '+' || Cur == '-')
            {
                _pos++;
                int oh = ReadDigits(2, timeStart);
                Expect(':', timeStart);
                int om = ReadDigits(2, timeStart);
                if (oh > 23 || om > 59)
                {
                    throw ErrorAt(timeStart, "invalid time offset");
                }

                kind = TomlDateTimeKind.OffsetDateTime;
            }
        }

        if (IsBareKeyChar(Cur) || Cur == '.' || Cur == ':' || Cur == '+')
        {
            throw Error($"invalid date-time: unexpected '{Describe(Cur)}'");
        }

        return new TomlDateTime(kind, _text.Substring(start, _pos - start));
    }

    private int ReadDigits(int count, int start)
    {
        int value = 0;
        for (int i = 0; i < count; i++)
        {
            if (!IsDigitAt(0))
            {
                throw ErrorAt(start, "invalid date-time: expected a digit");
            }

            value = value * 10 + (Cur - '0');
            _pos++;
        }

        return value;
    }

    private void Expect(char c, int start)
    {
        if (Cur != c)
        {
            throw ErrorAt(start, $"invalid date-time: expected '{c}'");
        }

        _pos++;
    }
}
