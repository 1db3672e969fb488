using System.Text;

namespace PgProxy.Core.Infrastructure;

/// <summary>
/// The one audited place that quotes values into SQL the proxy sends itself. Literals use E'' with backslashes
/// doubled, so the result is the same whatever the backend's standard_conforming_strings is.
/// </summary>
public static class SqlQuote
{
    /// <summary>Quotes a string literal.</summary>
    public static string Literal(string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("NUL cannot be sent in SQL", nameof(value));
        }

        var sb = new StringBuilder(value.Length + 4);
        sb.Append("E'");
        foreach (char c in value)
        {
            if (c == '\'' || c == '\\')
            {
                sb.Append(c);
            }

            sb.Append(c);
        }

        return sb.Append('\'').ToString();
    }

    /// <summary>Quotes an identifier.</summary>
    public static string Identifier(string name)
    {
        if (name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("NUL cannot be sent in SQL", nameof(name));
        }

        return "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
