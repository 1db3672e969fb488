namespace PgProxy.Logging;

/// <summary>
/// What the log writer made of each message template so far (Serilog's parse for JSON, <see cref="MessageText"/>'s
/// pieces for text), per thread: only the writer thread renders. Bounded, in case some caller builds its templates:
/// full, it starts over.
/// </summary>
internal static class TemplateCache<T>
{
    private const int MaxTemplates = 1000;

    [ThreadStatic]
    private static Dictionary<string, T>? t_templates;

    /// <summary>The value made for <paramref name="template"/>, made now by <paramref name="make"/> the first time.</summary>
    public static T GetOrAdd(string template, Func<string, T> make)
    {
        Dictionary<string, T> templates = t_templates ??= new(StringComparer.Ordinal);
        if (!templates.TryGetValue(template, out T? value))
        {
            if (templates.Count >= MaxTemplates)
            {
                templates.Clear();
            }

            value = make(template);
            templates[template] = value;
        }

        return value;
    }
}
