using System.Net.Security;

namespace PgProxy.Core.Tls;

/// <summary>
/// client_tls_ciphers: PgBouncer's shortcuts (default, secure, fast, normal, all: the system's OpenSSL defaults) or an
/// explicit list of cipher suites separated by ':' or ',', each by its OpenSSL name (ECDHE-RSA-AES128-GCM-SHA256) or
/// its IANA name (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256). OpenSSL's selection language (HIGH, !aNULL, +3DES) is not
/// taken: .NET hands the handshake a list of suites, not a selection string. As in PgBouncer, the key governs TLS 1.2:
/// a list that names no TLS 1.3 suite keeps TLS 1.3's standard three.
/// </summary>
public static class TlsCiphers
{
    private static readonly string[] s_shortcuts = ["default", "secure", "fast", "normal", "all"];

    private static readonly TlsCipherSuite[] s_tls13 =
    [
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
    ];

    /// <summary>
    /// The suites <paramref name="text"/> names; null for a shortcut (the system's defaults). False, with
    /// <paramref name="error"/>, for a name that is not a cipher suite.
    /// </summary>
    public static bool TryParse(string text, out TlsCipherSuite[]? suites, out string? error)
    {
        suites = null;
        error = null;
        string trimmed = text.Trim();
        if (trimmed.Length == 0 || s_shortcuts.Contains(trimmed, StringComparer.OrdinalIgnoreCase))
        {
            return true;
        }

        var list = new List<TlsCipherSuite>();
        foreach (string name in trimmed.Split([':', ','], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (Suite(name) is not { } suite)
            {
                error = $"\"{name}\" is not a cipher suite: give default, or suites by their OpenSSL names " +
                    "(ECDHE-RSA-AES128-GCM-SHA256) or IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), separated by ':'; " +
                    "OpenSSL's selection words (HIGH, !aNULL) are not taken";
                return false;
            }

            if (!list.Contains(suite))
            {
                list.Add(suite);
            }
        }

        if (!list.Any(IsTls13))
        {
            list.AddRange(s_tls13);
        }

        suites = [.. list];
        return true;
    }

    /// <summary>Whether <paramref name="suites"/> hold a suite for TLS 1.2 (null: the defaults, which do).</summary>
    public static bool OffersTls12(TlsCipherSuite[]? suites) => suites is null || suites.Any(s => !IsTls13(s));

    /// <summary>The handshake's policy for <paramref name="text"/>; null for the system's defaults.</summary>
    public static CipherSuitesPolicy? Policy(string text) =>
        TryParse(text, out TlsCipherSuite[]? suites, out _) && suites is not null ? new CipherSuitesPolicy(suites) : null;

    private static bool IsTls13(TlsCipherSuite suite) => suite is TlsCipherSuite.TLS_AES_128_GCM_SHA256
        or TlsCipherSuite.TLS_AES_256_GCM_SHA384 or TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256
        or TlsCipherSuite.TLS_AES_128_CCM_SHA256 or TlsCipherSuite.TLS_AES_128_CCM_8_SHA256;

    /// <summary>A suite by its IANA name, or by its OpenSSL name turned into the IANA one.</summary>
    private static TlsCipherSuite? Suite(string name)
    {
        string iana = name.StartsWith("TLS_", StringComparison.OrdinalIgnoreCase) ? name.ToUpperInvariant() : FromOpenSsl(name);
        return Enum.TryParse(iana, ignoreCase: false, out TlsCipherSuite suite) && Enum.IsDefined(suite) ? suite
            : null;
    }

    /// <summary>
    /// ECDHE-RSA-AES128-GCM-SHA256 → TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; AES256-SHA → TLS_RSA_WITH_AES_256_CBC_SHA;
    /// ECDHE-ECDSA-CHACHA20-POLY1305 → TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256.
    /// </summary>
    private static string FromOpenSsl(string name)
    {
        var parts = new Queue<string>(name.ToUpperInvariant().Split('-'));
        string exchange = "RSA";
        if (parts.Count > 0 && parts.Peek() is "ECDHE" or "DHE" or "EDH")
        {
            string first = parts.Dequeue();
            string kx = first == "EDH" ? "DHE" : first;
            string auth = parts.Count > 0 && parts.Peek() is "RSA" or "ECDSA" or "DSS" ? parts.Dequeue() : "RSA";
            exchange = kx + "_" + auth;
        }

        if (parts.Count == 0)
        {
            return "";
        }

        string cipher = parts.Dequeue() switch
        {
            "AES128" => "AES_128",
            "AES256" => "AES_256",
            "CHACHA20" when parts.Count > 0 && parts.Peek() == "POLY1305" => "CHACHA20",
            var other => other,
        };

        var rest = parts.ToList();
        string mode = rest.Count > 0 && rest[0] is "GCM" or "CCM" or "CCM8" or "POLY1305" ? rest[0] : "CBC";
        if (mode != "CBC")
        {
            rest.RemoveAt(0);
        }

        string mac = rest.Count > 0 ? rest[0] : mode is "POLY1305" ? "SHA256" : mode is "CCM" or "CCM8" ? "" : "SHA";
        mode = mode == "CCM8" ? "CCM_8" : mode;
        return mac.Length == 0 ? $"TLS_{exchange}_WITH_{cipher}_{mode}" : $"TLS_{exchange}_WITH_{cipher}_{mode}_{mac}";
    }
}
