using System.Text;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace PgProxy.Core.Configuration.Toml;

/// <summary>
/// Reads a TOML document with Tomlyn into <see cref="TomlTable"/>, keeping each key's line and column for the
/// config binder's errors. Two passes over the text: Tomlyn's syntax parser with validation first (it rejects what
/// its event parser alone would accept: a duplicate key, a redefined table, a table extended by a dotted key),
/// then its event parser to build the tree.
/// </summary>
public static class TomlReader
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

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

    /// <summary>Parses a document; a syntax or structure error throws <see cref="TomlException"/> with its position.</summary>
    public static TomlTable Parse(string text)
    {
        // A byte order mark at the start is Tomlyn's to skip (and a second one is an error).
        DocumentSyntax document = SyntaxParser.Parse(text, null, true);
        if (document.HasErrors)
        {
            DiagnosticMessage first = document.Diagnostics.First(d => d.Kind == DiagnosticMessageKind.Error);
            // Tomlyn writes other positions as (line,column); ours are line:column.
            string reason = System.Text.RegularExpressions.Regex.Replace(first.Message, @"\((\d+),(\d+)\)", "$1:$2");
            throw new TomlException(reason, new TomlPosition(first.Span.Start.Line + 1, first.Span.Start.Column + 1));
        }

        TomlParser parser = TomlParser.Create(text, new TomlParserOptions { Mode = TomlParserMode.Strict });
        var root = new TomlTable { Position = new TomlPosition(1, 1) };
        try
        {
            Expect(parser, TomlParseEventKind.StartDocument);
            Expect(parser, TomlParseEventKind.StartTable);
            ReadTable(parser, root);
        }
        catch (Tomlyn.TomlException ex)
        {
            throw new TomlException(ex.Message, new TomlPosition(Math.Max(1, ex.Line ?? 1), Math.Max(1, ex.Column ?? 1)));
        }

        return root;
    }

    private static void Expect(TomlParser parser, TomlParseEventKind kind)
    {
        if (!parser.MoveNext() || parser.Current.Kind != kind)
        {
            throw new TomlException($"unexpected {parser.Current.Kind} while reading the document", At(parser.Current, new TomlPosition(1, 1)));
        }
    }

    private static TomlPosition At(TomlParseEvent e, TomlPosition fallback) =>
        e.Line > 0 ? new TomlPosition(e.Line, Math.Max(1, e.Column)) : fallback;

    /// <summary>Reads keys and values up to the table's end event.</summary>
    private static void ReadTable(TomlParser parser, TomlTable table)
    {
        while (parser.MoveNext() && parser.Current.Kind != TomlParseEventKind.EndTable)
        {
            TomlPosition at = At(parser.Current, table.Position);
            string key = parser.GetPropertyName();
            if (!parser.MoveNext())
            {
                throw new TomlException($"key '{key}' has no value", at);
            }

            table.TryGetValue(key, out object? existing);
            object value = ReadValue(parser, at, existing);
            if (existing is null)
            {
                table.Add(key, value, at);
            }
        }
    }

    /// <summary>
    /// Reads one value. The event parser reports a table again each time a header or dotted key goes back to it
    /// (and an array of tables again for a later [[header]]); validation has already ruled out every illegal
    /// case, so such a repeat extends <paramref name="existing"/>.
    /// </summary>
    private static object ReadValue(TomlParser parser, TomlPosition at, object? existing = null)
    {
        TomlParseEvent e = parser.Current;
        switch (e.Kind)
        {
            case TomlParseEventKind.StartTable:
                TomlTable table = existing as TomlTable ?? new TomlTable { Position = at };
                ReadTable(parser, table);
                return table;
            case TomlParseEventKind.StartArray:
                TomlArray array = existing as TomlArray ?? [];
                while (parser.MoveNext() && parser.Current.Kind != TomlParseEventKind.EndArray)
                {
                    array.Add(ReadValue(parser, At(parser.Current, at)));
                }

                return array;
            case TomlParseEventKind.String:
                return parser.GetString();
            case TomlParseEventKind.Integer:
                return e.GetInt64();
            case TomlParseEventKind.Float:
                return e.GetDouble();
            case TomlParseEventKind.Boolean:
                return e.GetBoolean();
            case TomlParseEventKind.DateTime:
                Tomlyn.TomlDateTime value = e.GetTomlDateTime();
                TomlDateTimeKind kind = value.Kind switch
                {
                    Tomlyn.TomlDateTimeKind.LocalDateTime => TomlDateTimeKind.LocalDateTime,
                    Tomlyn.TomlDateTimeKind.LocalDate => TomlDateTimeKind.LocalDate,
                    Tomlyn.TomlDateTimeKind.LocalTime => TomlDateTimeKind.LocalTime,
                    _ => TomlDateTimeKind.OffsetDateTime,
                };
                return new TomlDateTime(kind, value.ToString());
            default:
                throw new TomlException($"unexpected {e.Kind} where a value belongs", at);
        }
    }
}
