using System.Text;

namespace PgProxy.Core.Sql;

/// <summary>Turns name tokens into the names PostgreSQL would use. Only called for statements the pooler acts on.</summary>
public static class SqlNames
{
    /// <summary>
    /// The name a token stands for: an unquoted word folded to lower case (ASCII only, as PostgreSQL's
    /// downcase_identifier does for UTF-8), a quoted identifier or string constant without its quotes and with doubled
    /// quotes undone.
    /// </summary>
    public static string Decode(ReadOnlySpan<byte> text, SqlToken token)
    {
        ReadOnlySpan<byte> t = text.Slice(token.Start, token.Length);
        switch (token.Kind)
        {
            case SqlTokenKind.Word:
                Span<byte> lower = t.Length <= 256 ? stackalloc byte[t.Length] : new byte[t.Length];
                for (int i = 0; i < t.Length; i++)
                {
                    byte b = t[i];
                    lower[i] = b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;
                }

                return Encoding.UTF8.GetString(lower);
            case SqlTokenKind.QuotedIdentifier or SqlTokenKind.String when t.Length >= 2:
                byte quote = t[^1];
                int open = t.IndexOf(quote);
                string inner = Encoding.UTF8.GetString(t[(open + 1)..^1]);
                return token.Escaped ? inner.Replace(quote == (byte)'"' ? "\"\"" : "''", quote == (byte)'"' ? "\"" : "'", StringComparison.Ordinal) : inner;
            default:
                return Encoding.UTF8.GetString(t);
        }
    }
}
