using PgProxy.Core.Client;

namespace PgProxy.Core.Pooling;

/// <summary>The client settings views a pool's clients share: one object per distinct set of settings, found at login by the startup settings' text.</summary>
public sealed partial class Pool
{
    /// <summary>
    /// The shared instance of a client settings view: clients with equal settings hold one object, so idle clients
    /// cost little and a backend's synced key usually matches by reference. Bounded: past the cap views are not
    /// shared (correct, just larger).
    /// </summary>
    public ClientSettings Intern(ClientSettings view)
    {
        lock (_settingsViews)
        {
            if (_settingsViews.TryGetValue(view.Key, out ClientSettings? shared))
            {
                return shared;
            }

            if (_settingsViews.Count < MaxSharedSettingsViews)
            {
                _settingsViews[view.Key] = view;
            }

            return view;
        }
    }

    private const int MaxSharedSettingsViews = 1024;
    private readonly Dictionary<string, ClientSettings> _settingsViews = new(StringComparer.Ordinal);

    /// <summary>
    /// The shared view of a client that logs in with these startup settings on top of
    /// <see cref="WelcomeParameters"/>. Most clients of a pool send the same few settings, so the view is found by
    /// the settings' text instead of being rebuilt (a dictionary of every reported parameter and its key) per login.
    /// </summary>
    public ClientSettings ViewAtLogin(IReadOnlyList<KeyValuePair<string, string>> startup)
    {
        IReadOnlyDictionary<string, string> welcome = WelcomeParameters!;
        // The signature is written into a rented buffer and looked up as a span: a login that finds its view makes no
        // string for it.
        int length = LoginSignatureLength(startup);
        char[] rented = System.Buffers.ArrayPool<char>.Shared.Rent(Math.Max(length, 1));
        try
        {
            Span<char> signature = rented.AsSpan(0, length);
            WriteLoginSignature(startup, signature);
            lock (_settingsViews)
            {
                if (ReferenceEquals(_loginViewsWelcome, welcome) && _loginViewsBySpan.TryGetValue(signature, out ClientSettings? known))
                {
                    return known;
                }
            }

            ClientSettings view = Intern(ClientSettings.AtLogin(welcome, startup));
            lock (_settingsViews)
            {
                if (!ReferenceEquals(_loginViewsWelcome, welcome))
                {
                    _loginViews.Clear();
                    _loginViewsWelcome = welcome;
                }

                if (_loginViews.Count < MaxSharedSettingsViews)
                {
                    _loginViews[signature.ToString()] = view;
                }
            }

            return view;
        }
        finally
        {
            System.Buffers.ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>The length of the startup settings' signature: each name and value, each followed by a NUL.</summary>
    private static int LoginSignatureLength(IReadOnlyList<KeyValuePair<string, string>> startup)
    {
        int length = 0;
        for (int i = 0; i < startup.Count; i++)
        {
            KeyValuePair<string, string> p = startup[i];
            length += p.Key.Length + p.Value.Length + 2;
        }

        return length;
    }

    private static void WriteLoginSignature(IReadOnlyList<KeyValuePair<string, string>> startup, Span<char> destination)
    {
        int at = 0;
        for (int i = 0; i < startup.Count; i++)
        {
            (string key, string value) = startup[i];
            key.CopyTo(destination[at..]);
            at += key.Length;
            destination[at++] = '\0';
            value.CopyTo(destination[at..]);
            at += value.Length;
            destination[at++] = '\0';
        }
    }

    private readonly Dictionary<string, ClientSettings> _loginViews;
    private readonly Dictionary<string, ClientSettings>.AlternateLookup<ReadOnlySpan<char>> _loginViewsBySpan;
    private IReadOnlyDictionary<string, string>? _loginViewsWelcome;
}
