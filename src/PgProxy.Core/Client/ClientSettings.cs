namespace PgProxy.Core.Client;

/// <summary>
/// A client's view of its session settings, immutable and shared: every reported parameter as the client was told
/// it (ParameterStatus), plus the startup settings PostgreSQL does not report. Clients with the same settings share
/// one instance (interned per pool), so an idle client costs a reference, and a backend already in line with a
/// client's settings is recognised by comparing <see cref="Key"/> (usually the same string instance).
/// </summary>
public sealed class ClientSettings
{
    /// <summary>Reported parameters PostgreSQL owns (not settable by a client).</summary>
    private static readonly HashSet<string> s_serverOwned = new(StringComparer.OrdinalIgnoreCase)
    {
        "server_version", "server_encoding", "integer_datetimes", "is_superuser", "session_authorization", "in_hot_standby",
        "scram_iterations",
    };

    private readonly Dictionary<string, string> _told;

    /// <summary>True for a reported parameter the server owns: parameter sync does not carry it to another backend.</summary>
    public static bool IsServerOwned(string name) => s_serverOwned.Contains(name);

    private ClientSettings(Dictionary<string, string> told, IReadOnlyList<KeyValuePair<string, string>> unreported)
    {
        _told = told;
        Unreported = unreported;
        var key = new System.Text.StringBuilder();
        foreach (KeyValuePair<string, string> p in Desired())
        {
            key.Append(p.Key.ToLowerInvariant()).Append('\0').Append(p.Value).Append('\0');
        }

        Key = key.ToString();
    }

    /// <summary>Every reported parameter as the client last heard it.</summary>
    public IReadOnlyDictionary<string, string> Told => _told;

    private byte[]? _welcome;

    /// <summary>
    /// <see cref="Told"/> as the ParameterStatus messages a login sends, encoded once per (shared) view: every client
    /// that logs in with the same settings gets the same bytes.
    /// </summary>
    public ReadOnlySpan<byte> WelcomeMessages
    {
        get
        {
            if (_welcome is null)
            {
                var b = new PgProxy.Protocol.Framing.PgMessageBuilder(512);
                foreach (KeyValuePair<string, string> p in _told)
                {
                    PgProxy.Protocol.Backend.BackendMessages.ParameterStatus(b, p.Key, p.Value);
                }

                _welcome = b.Written.ToArray();
            }

            return _welcome;
        }
    }

    /// <summary>Startup settings PostgreSQL does not report back (search_path before PG 18, work_mem, ...).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Unreported { get; }

    /// <summary>Canonical text of <see cref="Desired"/>: equal keys mean equal settings.</summary>
    public string Key { get; }

    /// <summary>
    /// The client's view at login: the pool's welcome parameters (the server's own values), then each startup
    /// setting applied in PostgreSQL's order, on top of the value before it: the later one wins, except that a
    /// DateStyle naming only one half keeps the other (<see cref="DateStyleSetting"/>).
    /// </summary>
    public static ClientSettings AtLogin(IReadOnlyDictionary<string, string> welcome, IReadOnlyList<KeyValuePair<string, string>> startup)
    {
        var told = new Dictionary<string, string>(welcome, StringComparer.OrdinalIgnoreCase);
        var unreported = new List<KeyValuePair<string, string>>();
        var unreportedAt = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, string> setting in startup)
        {
            if (told.TryGetValue(setting.Key, out string? current))
            {
                told[setting.Key] = setting.Key.Equals(DateStyleSetting.Name, StringComparison.OrdinalIgnoreCase) &&
                                    welcome.TryGetValue(DateStyleSetting.Name, out string? serverDefault)
                    ? DateStyleSetting.Apply(current, setting.Value, serverDefault) ?? setting.Value
                    : setting.Value;
            }
            else if (unreportedAt.TryGetValue(setting.Key, out int at))
            {
                unreported[at] = new(unreported[at].Key, setting.Value);
            }
            else
            {
                unreportedAt[setting.Key] = unreported.Count;
                unreported.Add(setting);
            }
        }

        return new ClientSettings(told, unreported);
    }

    /// <summary>This view with the given reported values (what a backend told the client); itself when nothing differs.</summary>
    public ClientSettings With(IReadOnlyDictionary<string, string> reported)
    {
        Dictionary<string, string>? told = null;
        foreach (KeyValuePair<string, string> p in reported)
        {
            if (!_told.TryGetValue(p.Key, out string? value) || value != p.Value)
            {
                told ??= new Dictionary<string, string>(_told, StringComparer.OrdinalIgnoreCase);
                told[p.Key] = p.Value;
            }
        }

        return told is null ? this : new ClientSettings(told, Unreported);
    }

    /// <summary>The settings a backend must match: the client-settable reported ones, then the unreported ones.</summary>
    public IEnumerable<KeyValuePair<string, string>> Desired()
    {
        foreach (KeyValuePair<string, string> p in _told)
        {
            if (!s_serverOwned.Contains(p.Key))
            {
                yield return p;
            }
        }

        foreach (KeyValuePair<string, string> p in Unreported)
        {
            yield return p;
        }
    }
}
