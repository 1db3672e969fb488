using System.Globalization;
using System.Text.RegularExpressions;
using PgProxy.Core.Configuration.Toml;

namespace PgProxy.Core.Configuration;

/// <summary>The loader's value readers: strings (with ${NAME}), numbers, booleans, durations, lists, enumerations, paths, TLS settings.</summary>
public sealed partial class ConfigLoader
{
    private static readonly Dictionary<string, AuthType> s_authTypes = new(StringComparer.Ordinal)
    {
        ["trust"] = AuthType.Trust,
        ["md5"] = AuthType.Md5,
        ["scram-sha-256"] = AuthType.ScramSha256,
        ["cert"] = AuthType.Cert,
    };

    private static readonly string[] s_levels = ["trace", "debug", "info", "warning", "error"];

    private static readonly Dictionary<string, LogFormat> s_formats = new(StringComparer.Ordinal)
    {
        ["text"] = LogFormat.Text,
        ["json"] = LogFormat.Json,
    };

    private static readonly Dictionary<string, PoolMode> s_modes = new(StringComparer.Ordinal)
    {
        ["session"] = PoolMode.Session,
        ["transaction"] = PoolMode.Transaction,
        ["statement"] = PoolMode.Statement,
    };

    private PoolMode? Mode(object v, string key, TomlPosition at) => Enum(v, key, at, s_modes);

    private T? Enum<T>(object v, string key, TomlPosition at, Dictionary<string, T> names)
        where T : struct
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (names.TryGetValue(s, out T value))
        {
            return value;
        }

        Error(at, $"{key}: expected one of {string.Join(", ", names.Keys.Select(n => $"\"{n}\""))}, got \"{s}\"");
        return null;
    }

    private string? Level(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (s_levels.Contains(s))
        {
            return s;
        }

        Error(at, $"{key}: expected one of {string.Join(", ", s_levels.Select(n => $"\"{n}\""))}, got \"{s}\"");
        return null;
    }

    private string? Str(object v, string key, TomlPosition at)
    {
        if (v is not string s)
        {
            Error(at, $"{key}: expected a string, got {Describe(v)}");
            return null;
        }

        return ExpandEnvironment(s, key, at);
    }

    private string ExpandEnvironment(string s, string key, TomlPosition at) =>
        EnvReference().Replace(s, m =>
        {
            string name = m.Groups[1].Value;
            string? value = _env(name);
            if (value is null)
            {
                Error(at, $"{key}: environment variable '{name}' is not set");
                return "";
            }

            return value;
        });

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex EnvReference();

    private List<string>? StringList(object v, string key, TomlPosition at, bool allowEmpty = false)
    {
        if (v is string)
        {
            return Str(v, key, at) is { } one ? [one] : null;
        }

        if (v is TomlArray array && (array.Count > 0 || allowEmpty))
        {
            var list = new List<string>();
            foreach (object item in array)
            {
                if (Str(item, key, at) is { } s)
                {
                    list.Add(s);
                }
            }

            return list;
        }

        Error(at, $"{key}: expected a string or {(allowEmpty ? "an" : "a non-empty")} array of strings, got {Describe(v)}");
        return null;
    }

    private int? Int(object v, string key, TomlPosition at, int min, int max)
    {
        if (v is not long l)
        {
            Error(at, $"{key}: expected an integer, got {Describe(v)}");
            return null;
        }

        if (l < min || l > max)
        {
            Error(at, $"{key}: expected an integer from {min} to {max}, got {l}");
            return null;
        }

        return (int)l;
    }

    private bool? Bool(object v, string key, TomlPosition at)
    {
        if (v is bool b)
        {
            return b;
        }

        Error(at, $"{key}: expected true or false, got {Describe(v)}");
        return null;
    }

    private TimeSpan? Duration(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } s)
        {
            return null;
        }

        if (TryParseDuration(s, out TimeSpan d))
        {
            return d;
        }

        Error(at, $"{key}: expected a duration with a unit such as \"250ms\", \"30s\", \"5m\" or \"1h\" (\"0\" disables), got \"{s}\"");
        return null;
    }

    private TlsMode? SslMode(object v, string key, TomlPosition at)
    {
        switch (Str(v, key, at))
        {
            case null: return null;
            case "disable": return TlsMode.Disable;
            case "allow": return TlsMode.Allow;
            case "prefer": return TlsMode.Prefer;
            case "require": return TlsMode.Require;
            case "verify-ca": return TlsMode.VerifyCa;
            case "verify-full": return TlsMode.VerifyFull;
            case var other:
                Error(at, $"{key}: expected disable, allow, prefer, require, verify-ca or verify-full, got \"{other}\"");
                return null;
        }
    }

    /// <summary>A file path (relative to the config file); "" unsets it.</summary>
    private string? OptionalPath(object v, string key, TomlPosition at, string? current) =>
        Str(v, key, at) is { } path ? (path.Length == 0 ? null : ResolvePath(path)) : current;

    /// <summary>PgBouncer's tls_protocols: "secure" (TLS 1.2 and 1.3), "all" (the same: older versions are not offered), or a comma list.</summary>
    private string? Ciphers(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } text)
        {
            return null;
        }

        if (!Tls.TlsCiphers.TryParse(text, out _, out string? error))
        {
            Error(at, $"{key}: {error}");
            return null;
        }

        return text;
    }

    private System.Security.Authentication.SslProtocols? TlsProtocols(object v, string key, TomlPosition at)
    {
        if (Str(v, key, at) is not { } text)
        {
            return null;
        }

        var protocols = System.Security.Authentication.SslProtocols.None;
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (part.ToLowerInvariant())
            {
                case "secure" or "all" or "default":
                    protocols |= System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;
                    break;
                case "tlsv1.2":
                    protocols |= System.Security.Authentication.SslProtocols.Tls12;
                    break;
                case "tlsv1.3":
                    protocols |= System.Security.Authentication.SslProtocols.Tls13;
                    break;
                default:
                    Error(at, $"{key}: expected secure, all, tlsv1.2 or tlsv1.3 (comma-separated), got \"{part}\" (TLS 1.0 and 1.1 are not offered)");
                    return null;
            }
        }

        if (protocols == System.Security.Authentication.SslProtocols.None)
        {
            Error(at, $"{key}: no protocol given");
            return null;
        }

        return protocols;
    }

    private TimeSpan? PositiveDuration(object v, string key, TomlPosition at)
    {
        TimeSpan? d = Duration(v, key, at);
        if (d == TimeSpan.Zero)
        {
            Error(at, $"{key}: must be longer than 0");
            return null;
        }

        return d;
    }

    /// <summary>Parses "250ms", "30s", "5m", "1h", "1d" or "0".</summary>
    public static bool TryParseDuration(string s, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (s == "0")
        {
            return true;
        }

        Match m = DurationPattern().Match(s);
        if (!m.Success || !double.TryParse(m.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n))
        {
            return false;
        }

        double ms = m.Groups[2].Value switch
        {
            "ms" => n,
            "s" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            _ => n * 86_400_000,
        };
        if (ms > TimeSpan.FromDays(365).TotalMilliseconds)
        {
            return false;
        }

        duration = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")]
    private static partial Regex DurationPattern();

    private string ResolvePath(string path) =>
        Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(_file)) ?? ".", path));

    private static string Describe(object v) => v switch
    {
        string => "a string",
        long l => $"integer {l}",
        double d => $"float {d.ToString(CultureInfo.InvariantCulture)}",
        bool b => b ? "true" : "false",
        TomlArray => "an array",
        TomlTable => "a table",
        _ => "a date/time",
    };
}
