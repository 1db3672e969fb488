using System.Collections.Frozen;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Protocol.Auth;

namespace PgProxy.Core.Auth;

/// <summary>What a userlist secret is.</summary>
public enum SecretKind
{
    /// <summary>A plaintext password: works with every method, for clients and backends.</summary>
    Plain,
    /// <summary>"md5" + md5(password + user): md5 for clients and backends.</summary>
    Md5,
    /// <summary>A SCRAM-SHA-256 verifier: SCRAM for clients; backends through SCRAM passthrough.</summary>
    Scram,
}

/// <summary>A user's stored secret.</summary>
public sealed class UserSecret
{
    internal UserSecret(string user, string secret)
    {
        User = user;
        Secret = secret;
        if (ScramVerifier.TryParse(secret, out ScramVerifier? verifier))
        {
            Kind = SecretKind.Scram;
            Verifier = verifier;
        }
        else if (Md5Password.IsMd5Hash(secret))
        {
            Kind = SecretKind.Md5;
        }
        else
        {
            Kind = SecretKind.Plain;
            // A verifier for SCRAM logins against a plaintext secret; the salt is per process, like a PG restart.
            Verifier = ScramVerifier.FromPassword(secret, RandomNumberGenerator.GetBytes(16));
        }
    }

    /// <summary>The user name.</summary>
    public string User { get; }

    /// <summary>The secret as written (never logged).</summary>
    public string Secret { get; }

    /// <summary>The secret's kind.</summary>
    public SecretKind Kind { get; }

    /// <summary>The SCRAM verifier (stored, or derived from a plaintext password).</summary>
    public ScramVerifier? Verifier { get; }

    /// <summary>The md5 hash of the password, when known.</summary>
    public string? Md5Hash => Kind switch
    {
        SecretKind.Md5 => Secret,
        SecretKind.Plain => Md5Password.Hash(Secret, User),
        _ => null,
    };

    /// <inheritdoc />
    public override string ToString() => $"{User} ({Kind} secret)";
}

/// <summary>
/// PgBouncer's auth_file format: one <c>"user" "secret"</c> per line; a doubled quote inside a quoted field is a
/// literal quote; blank lines and lines starting with ';' or '#' are ignored; anything after the secret is ignored.
/// </summary>
public sealed class UserList
{
    private readonly FrozenDictionary<string, UserSecret> _users;

    private UserList(FrozenDictionary<string, UserSecret> users)
    {
        _users = users;
    }

    /// <summary>An empty list (trust without a file).</summary>
    public static UserList Empty { get; } = new(FrozenDictionary<string, UserSecret>.Empty);

    /// <summary>Number of users.</summary>
    public int Count => _users.Count;

    /// <summary>The users' names (for SHOW USERS).</summary>
    public IEnumerable<string> Names => _users.Keys;

    /// <summary>Looks a user up.</summary>
    public UserSecret? Find(string user) => _users.TryGetValue(user, out UserSecret? s) ? s : null;

    /// <summary>Loads a file; errors name file:line.</summary>
    public static UserList Load(string path, List<string> errors) => Parse(File.ReadAllText(path, Encoding.UTF8), path, errors);

    /// <summary>Parses userlist text.</summary>
    public static UserList Parse(string text, string name, List<string> errors)
    {
        var users = new Dictionary<string, UserSecret>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            string trimmed = line.TrimStart();
            if (trimmed.Length == 0 || trimmed[0] is ';' or '#')
            {
                continue;
            }

            int pos = line.Length - trimmed.Length;
            if (!TryReadQuoted(line, ref pos, out string? user) || !SkipSpaces(line, ref pos) || !TryReadQuoted(line, ref pos, out string? secret))
            {
                errors.Add($"{name}:{i + 1}: expected \"user\" \"secret\"");
                continue;
            }

            if (user.Length == 0)
            {
                errors.Add($"{name}:{i + 1}: empty user name");
                continue;
            }

            users[user] = new UserSecret(user, secret);
        }

        return new UserList(users.ToFrozenDictionary(StringComparer.Ordinal));
    }

    private static bool SkipSpaces(string line, ref int pos)
    {
        int start = pos;
        while (pos < line.Length && (line[pos] == ' ' || line[pos] == '\t'))
        {
            pos++;
        }

        return pos > start;
    }

    private static bool TryReadQuoted(string line, ref int pos, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value)
    {
        value = null;
        if (pos >= line.Length || line[pos] != '"')
        {
            return false;
        }

        var sb = new StringBuilder();
        pos++;
        while (pos < line.Length)
        {
            char c = line[pos++];
            if (c != '"')
            {
                sb.Append(c);
                continue;
            }

            if (pos < line.Length && line[pos] == '"')
            {
                sb.Append('"');
                pos++;
                continue;
            }

            value = sb.ToString();
            return true;
        }

        return false;
    }
}
