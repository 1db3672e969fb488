using System.Collections;
using System.Globalization;
using System.Text;

namespace PgProxy.Logging;

/// <summary>
/// A logger call's message written straight into the log writer's batch: the template's text and each argument in
/// its place, as <c>LoggerMessage</c>'s own formatting renders them (invariant culture, null as "(null)"), but without
/// its argument array and its intermediate string. A login and a logout each log a line, so under a connect storm that
/// was most of what the log writer allocated. Messages this does not render (no template, format specifiers, escaped
/// braces, a list argument) are left to the logger's formatter (<see cref="TryAppend"/> returns false).
/// </summary>
internal static class MessageText
{
    /// <summary>A template's pieces: literal text, or (Text null) the argument named Hole.</summary>
    internal readonly record struct Piece(string? Text, string? Hole);

    /// <summary>Pieces a template may have here (the arguments' places are kept on the stack).</summary>
    private const int MaxPieces = 64;

    private const string NullText = "(null)";

    /// <summary>Appends the message of <paramref name="state"/> to <paramref name="to"/>; false (nothing appended) when it cannot.</summary>
    public static bool TryAppend<TState>(StringBuilder to, TState state)
    {
        if (state is not IReadOnlyList<KeyValuePair<string, object?>> values || values.Count == 0 ||
            values[values.Count - 1] is not { Key: "{OriginalFormat}", Value: string template} ||
            Split(template) is not { Length: <= MaxPieces } pieces)
        {
            return false;
        }

        // Looked up by name, as the logger's formatter does: the template may name its arguments in another order.
        Span<int> at = stackalloc int[pieces.Length];
        for (int i = 0; i < pieces.Length; i++)
        {
            if (pieces[i].Hole is { } name &&
                ((at[i] = IndexOf(values, name)) < 0 || values[at[i]].Value is IEnumerable and not string))
            {
                return false;
            }
        }

        for (int i = 0; i < pieces.Length; i++)
        {
            if (pieces[i].Text is { } text)
            {
                to.Append(text);
                continue;
            }

            switch (values[at[i]].Value)
            {
                case null:
                    to.Append(NullText);
                    break;
                case string value:
                    to.Append(value);
                    break;
                case var value:
                    // The handler formats an ISpanFormattable (numbers, enums) in place, anything else by its ToString.
                    to.Append(CultureInfo.InvariantCulture, $"{value}");
                    break;
            }
        }

        return true;
    }

    private static int IndexOf(IReadOnlyList<KeyValuePair<string, object?>> values, string name)
    {
        for (int i = 0; i < values.Count - 1; i++)
        {
            if (values[i].Key == name)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The pieces of <paramref name="template"/>; null when it has braces this does not render, or a name twice.</summary>
    private static Piece[]? Split(string template) => TemplateCache<Piece[]?>.GetOrAdd(template, Parse);

    private static Piece[]? Parse(string template)
    {
        var pieces = new List<Piece>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        int at = 0;
        while (at < template.Length)
        {
            int open = template.IndexOfAny(['{', '}'], at);
            if (open < 0)
            {
                pieces.Add(new Piece(template[at..], null));
                break;
            }

            int close = template[open] == '{' ? template.IndexOf('}', open + 1) : -1;
            if (close < 0 || template.AsSpan(open + 1, close - open - 1).IndexOfAny("{:,") >= 0 || close == open + 1)
            {
                return null; // an escaped or stray brace, a format or alignment, an empty hole: the formatter's business
            }

            if (open > at)
            {
                pieces.Add(new Piece(template[at..open], null));
            }

            string name = template[(open + 1)..close];
            if (!names.Add(name))
            {
                return null;
            }

            pieces.Add(new Piece(null, name));
            at = close + 1;
        }

        return [.. pieces];
    }
}
