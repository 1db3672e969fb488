namespace PgProxy.Core.Client;

/// <summary>
/// DateStyle as PostgreSQL assigns it (check_datestyle in variable.c): a value may name only the output format
/// (ISO, SQL, Postgres, German) or only the field order (YMD, DMY, MDY and their synonyms), and the half it does not
/// name keeps its current value; German alone also means DMY; DEFAULT is the server's own value. The result is the
/// canonical "ISO, MDY" spelling the server reports. Startup settings are applied one on top of the other in this
/// way, so a client that sends <c>options=-c DateStyle=ISO,DMY</c> and <c>DateStyle=ISO</c> (PgJDBC) gets "ISO, DMY".
/// </summary>
public static class DateStyleSetting
{
    /// <summary>The setting's name (GUC names are case-insensitive).</summary>
    public const string Name = "DateStyle";

    /// <summary>
    /// <paramref name="value"/> applied on top of <paramref name="current"/>, canonical; null when PostgreSQL would
    /// refuse it (unknown word, conflicting formats or orders), so the server reports the error itself.
    /// </summary>
    public static string? Apply(string current, string value, string serverDefault)
    {
        if (!TryParse(current, out string style, out string order))
        {
            style = "ISO";
            order = "MDY";
        }

        bool haveStyle = false;
        bool haveOrder = false;
        foreach (string raw in value.Split(','))
        {
            string word = raw.Trim().Trim('"');
            string? newStyle = null;
            string? newOrder = null;
            if (word.Equals("ISO", StringComparison.OrdinalIgnoreCase))
            {
                newStyle = "ISO";
            }
            else if (word.Equals("SQL", StringComparison.OrdinalIgnoreCase))
            {
                newStyle = "SQL";
            }
            else if (word.StartsWith("POSTGRES", StringComparison.OrdinalIgnoreCase))
            {
                newStyle = "Postgres";
            }
            else if (word.Equals("GERMAN", StringComparison.OrdinalIgnoreCase))
            {
                newStyle = "German";
            }
            else if (word.Equals("YMD", StringComparison.OrdinalIgnoreCase))
            {
                newOrder = "YMD";
            }
            else if (word.Equals("DMY", StringComparison.OrdinalIgnoreCase) || word.StartsWith("EURO", StringComparison.OrdinalIgnoreCase))
            {
                newOrder = "DMY";
            }
            else if (word.Equals("MDY", StringComparison.OrdinalIgnoreCase) || word.Equals("US", StringComparison.OrdinalIgnoreCase) ||
                     word.StartsWith("NONEURO", StringComparison.OrdinalIgnoreCase))
            {
                newOrder = "MDY";
            }
            else if (word.Equals("DEFAULT", StringComparison.OrdinalIgnoreCase))
            {
                if (!TryParse(serverDefault, out string defaultStyle, out string defaultOrder))
                {
                    return null;
                }

                style = haveStyle ? style : defaultStyle;
                order = haveOrder ? order : defaultOrder;
                continue;
            }
            else
            {
                return null;
            }

            if (newStyle is not null)
            {
                if (haveStyle && newStyle != style)
                {
                    return null; // conflicting styles
                }

                style = newStyle;
                haveStyle = true;
                if (newStyle == "German" && !haveOrder)
                {
                    order = "DMY";
                }
            }
            else
            {
                if (haveOrder && newOrder != order)
                {
                    return null; // conflicting orders
                }

                order = newOrder!;
                haveOrder = true;
            }
        }

        return style + ", " + order;
    }

    /// <summary>Reads a canonical "Style, Order" value.</summary>
    private static bool TryParse(string value, out string style, out string order)
    {
        string[] parts = value.Split(',', StringSplitOptions.TrimEntries);
        style = parts.Length == 2 ? parts[0] : "";
        order = parts.Length == 2 ? parts[1] : "";
        return parts.Length == 2 && style is "ISO" or "SQL" or "Postgres" or "German" && order is "YMD" or "DMY" or "MDY";
    }
}
