using PgProxy.Core.Auth;

namespace PgProxy.Core.Configuration;

/// <summary>
/// What a reload changes, for its log line: every key whose printed value differs (secrets masked as printed, a
/// changed password named but not shown), databases and users added or removed, and the auth file's users. Keys that
/// only a restart applies keep their running value in the applied config (<see cref="KeepRestartOnly"/>).
/// </summary>
public static class ConfigDiff
{
    /// <summary>Keys a running proxy cannot change: the listen addresses, the I/O threads, the log's setup and the OTLP export.</summary>
    public static bool NeedsRestart(string key) =>
        key is "proxy.listen" or "proxy.io_threads" or "http.listen" || key.StartsWith("log.", StringComparison.Ordinal) || key.StartsWith("otel.", StringComparison.Ordinal);

    /// <summary>The changes from <paramref name="old"/> to <paramref name="next"/>, one line each ("key: old -> new").</summary>
    public static List<string> Changes(ProxyConfig old, UserList oldUsers, ProxyConfig next, UserList nextUsers)
    {
        var before = new Dictionary<string, string>(ConfigPrinter.Entries(old), StringComparer.Ordinal);
        List<KeyValuePair<string, string>> after = ConfigPrinter.Entries(next);
        var beforeSections = new HashSet<string>(before.Keys.Select(Section), StringComparer.Ordinal);
        var afterSections = new HashSet<string>(after.Select(e => Section(e.Key)), StringComparer.Ordinal);
        var changes = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach ((string key, string value) in after)
        {
            seen.Add(key);
            if (!beforeSections.Contains(Section(key)))
            {
                if (seen.Add("[" + Section(key)))
                {
                    changes.Add($"{Section(key)}: added");
                }
            }
            else if (!before.TryGetValue(key, out string? was))
            {
                changes.Add($"{key}: (none) -> {value}");
            }
            else if (was != value)
            {
                changes.Add($"{key}: {was} -> {value}");
            }
        }

        foreach ((string key, string value) in before)
        {
            if (!afterSections.Contains(Section(key)))
            {
                if (seen.Add("[" + Section(key)))
                {
                    changes.Add($"{Section(key)}: removed");
                }
            }
            else if (!seen.Contains(key))
            {
                changes.Add($"{key}: {value} -> (none)");
            }
        }

        foreach (DatabaseConfig db in next.Databases.Values)
        {
            if (old.Databases.TryGetValue(db.Name, out DatabaseConfig? was) && was.Password is not null && db.Password is not null &&
                was.Password != db.Password)
            {
                changes.Add($"databases.{db.Name}.password: changed");
            }
        }

        string[] added = [.. nextUsers.Names.Where(n => oldUsers.Find(n) is null).Order(StringComparer.Ordinal)];
        string[] removed = [.. oldUsers.Names.Where(n => nextUsers.Find(n) is null).Order(StringComparer.Ordinal)];
        int secrets = nextUsers.Names.Count(n => oldUsers.Find(n) is { } was && was.Secret != nextUsers.Find(n)!.Secret);
        if (added.Length > 0)
        {
            changes.Add($"auth file: users added: {string.Join(", ", added)}");
        }

        if (removed.Length > 0)
        {
            changes.Add($"auth file: users removed: {string.Join(", ", removed)}");
        }

        if (secrets > 0)
        {
            changes.Add($"auth file: {secrets} users' secrets changed");
        }

        return changes;
    }

    /// <summary>The section of a printed key (key names have no dots; a quoted section name may).</summary>
    private static string Section(string key) => key[..key.LastIndexOf('.')];

    /// <summary>The keys of <paramref name="next"/> that differ from <paramref name="running"/> and need a restart.</summary>
    public static List<string> RestartOnly(ProxyConfig running, ProxyConfig next)
    {
        var before = new Dictionary<string, string>(ConfigPrinter.Entries(running), StringComparer.Ordinal);
        return [.. ConfigPrinter.Entries(next).Where(e => NeedsRestart(e.Key) && before.GetValueOrDefault(e.Key) != e.Value).Select(e => e.Key)];
    }

    /// <summary><paramref name="next"/> with the running values of the keys only a restart applies.</summary>
    public static ProxyConfig KeepRestartOnly(ProxyConfig running, ProxyConfig next) => next with
    {
        Proxy = next.Proxy with { Listen = running.Proxy.Listen, IoThreads = running.Proxy.IoThreads },
        Http = next.Http with { Listen = running.Http.Listen },
        Log = running.Log,
        Otel = running.Otel,
    };
}
