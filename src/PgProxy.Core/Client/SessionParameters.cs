using PgProxy.Core.Infrastructure;
using PgProxy.Protocol;

namespace PgProxy.Core.Client;

/// <summary>
/// A client's session settings from its StartupMessage: every parameter except user, database and replication,
/// plus each <c>-c name=value</c> / <c>--name=value</c> in <c>options</c> (applied first, as PostgreSQL does).
/// </summary>
public static class SessionParameters
{
    /// <summary>Parameters that are not settings.</summary>
    private static readonly HashSet<string> s_notSettings = new(StringComparer.Ordinal) { "user", "database", "replication", "options" };

    /// <summary>
    /// Extracts the settings in the order PostgreSQL applies them (process_startup_options): every <c>-c</c> of
    /// "options" first, then the other parameters as the packet lists them. A name may come more than once; each one
    /// is applied on top of the value before it (<see cref="ClientSettings.AtLogin"/>). Throws a 08P01 error for
    /// unsupported options.
    /// </summary>
    public static List<KeyValuePair<string, string>> FromStartup(IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        // Indexed, not foreach: enumerating the interface would box an enumerator per pass, per login.
        var result = new List<KeyValuePair<string, string>>(parameters.Count);
        for (int i = 0; i < parameters.Count; i++)
        {
            if (parameters[i].Key == "options")
            {
                result.AddRange(ParseOptions(parameters[i].Value));
            }
        }

        for (int i = 0; i < parameters.Count; i++)
        {
            KeyValuePair<string, string> p = parameters[i];
            if (!s_notSettings.Contains(p.Key) && !IsProtocolOption(p.Key))
            {
                result.Add(p);
            }
        }

        return result;
    }

    /// <summary>A protocol option ("_pq_." prefix): not a setting; the proxy refuses it with NegotiateProtocolVersion.</summary>
    public static bool IsProtocolOption(string name) => name.StartsWith("_pq_.", StringComparison.Ordinal);

    /// <summary>Splits "options" like pg_split_opts: whitespace separates, backslash escapes the next character.</summary>
    public static List<KeyValuePair<string, string>> ParseOptions(string options)
    {
        var words = new List<string>();
        var current = new System.Text.StringBuilder();
        bool inWord = false;
        for (int i = 0; i < options.Length; i++)
        {
            char c = options[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(current.ToString());
                    current.Clear();
                    inWord = false;
                }

                continue;
            }

            inWord = true;
            if (c == '\\' && i + 1 < options.Length)
            {
                current.Append(options[++i]);
            }
            else
            {
                current.Append(c);
            }
        }

        if (inWord)
        {
            words.Add(current.ToString());
        }

        var settings = new List<KeyValuePair<string, string>>();
        for (int i = 0; i < words.Count; i++)
        {
            string word = words[i];
            string? assignment = null;
            if (word == "-c" && i + 1 < words.Count)
            {
                assignment = words[++i];
            }
            else if (word.StartsWith("-c", StringComparison.Ordinal) && word.Length > 2)
            {
                assignment = word.Substring(2);
            }
            else if (word.StartsWith("--", StringComparison.Ordinal) && word.Length > 2)
            {
                assignment = word.Substring(2);
            }

            int eq = assignment?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            if (assignment is null || eq <= 0)
            {
                throw new ProxyException(SqlState.ProtocolViolation,
                    $"unsupported startup option \"{word}\" in \"options\"",
                    "only -c name=value and --name=value are supported");
            }

            settings.Add(new(assignment.Substring(0, eq).Replace('-', '_'), assignment.Substring(eq + 1)));
        }

        return settings;
    }

    /// <summary>
    /// The statement that makes a backend match <paramref name="wanted"/>: one SELECT of set_config() calls. A
    /// setting the backend reports (ParameterStatus) is skipped when it already has the value; other settings are
    /// compared with what the proxy last applied on that backend, and those the client does not want any more are put
    /// back to the backend's own default (pg_settings.reset_val). Null when nothing needs doing.
    /// </summary>
    public static string? BuildSync(IEnumerable<KeyValuePair<string, string>> wanted,
        IReadOnlyDictionary<string, string> reported, IReadOnlyDictionary<string, string> applied)
    {
        // set_config() takes the raw GUC string exactly as startup processing does ("a,b" stays a list for
        // search_path), where SET would need per-setting syntax. Arguments go through the one quoting helper.
        var sb = new System.Text.StringBuilder();
        var wantedNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, string> p in wanted)
        {
            wantedNames.Add(p.Key);
            if ((reported.TryGetValue(p.Key, out string? r) && r == p.Value) ||
                (applied.TryGetValue(p.Key, out string? a) && a == p.Value))
            {
                continue;
            }

            sb.Append(sb.Length == 0 ? "SELECT " : ", ");
            sb.Append("pg_catalog.set_config(").Append(SqlQuote.Literal(p.Key)).Append(", ").Append(SqlQuote.Literal(p.Value)).Append(", false)");
        }

        foreach (string name in applied.Keys)
        {
            if (!wantedNames.Contains(name))
            {
                sb.Append(sb.Length == 0 ? "SELECT " : ", ");
                sb.Append("(SELECT pg_catalog.set_config(name, reset_val, false) FROM pg_catalog.pg_settings WHERE name = ")
                  .Append(SqlQuote.Literal(name.ToLowerInvariant())).Append(')');
            }
        }

        return sb.Length == 0 ? null : sb.ToString();
    }
}
