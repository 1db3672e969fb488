using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>SCRAM-SHA-256 primitives (RFC 5802, RFC 7677) shared by the server and client exchanges.</summary>
public static class ScramSha256
{
    /// <summary>The SASL mechanism name.</summary>
    public const string Mechanism = "SCRAM-SHA-256";

    /// <summary>SCRAM-SHA-256 with channel binding (RFC 5802's -PLUS), offered over TLS.</summary>
    public const string PlusMechanism = "SCRAM-SHA-256-PLUS";

    /// <summary>The one channel binding type PostgreSQL supports (RFC 5929): a hash of the server's certificate.</summary>
    public const string EndPointBinding = "tls-server-end-point";

    /// <summary>The c= attribute of client-final-message: base64 of the GS2 header and the channel binding data.</summary>
    internal static string BindingAttribute(string gs2Header, byte[]? bindingData) =>
        Convert.ToBase64String([.. Encoding.ASCII.GetBytes(gs2Header), .. bindingData ?? []]);

    /// <summary>Hi(Normalize(password), salt, i): PBKDF2-HMAC-SHA-256.</summary>
    public static byte[] SaltedPassword(string password, byte[] salt, int iterations) =>
        Rfc2898DeriveBytes.Pbkdf2(SaslPrep.Normalize(password), salt, iterations, HashAlgorithmName.SHA256, 32);

    /// <summary>HMAC-SHA-256.</summary>
    public static byte[] Hmac(byte[] key, ReadOnlySpan<byte> data) => HMACSHA256.HashData(key, data);

    /// <summary>SHA-256.</summary>
    public static byte[] Hash(byte[] data) => SHA256.HashData(data);

    /// <summary>XOR of two equal-length arrays.</summary>
    public static byte[] Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException("lengths differ");
        }

        byte[] result = new byte[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            result[i] = (byte)(a[i] ^ b[i]);
        }

        return result;
    }

    /// <summary>A printable random nonce (18 random bytes, base64), as PG generates.</summary>
    public static string NewNonce() => Convert.ToBase64String(SecureRandom.GetBytes(18));

    /// <summary>
    /// Splits "k=v,k=v" attributes. Values may contain '=' but not ','. Returns false for a malformed list.
    /// </summary>
    internal static bool TryParseAttributes(string text, out List<KeyValuePair<char, string>> attributes)
    {
        attributes = [];
        foreach (string part in text.Split(','))
        {
            if (part.Length < 2 || part[1] != '=')
            {
                return false;
            }

            attributes.Add(new(part[0], part.Substring(2)));
        }

        return true;
    }

    internal static int ParseIterations(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i > 0 ? i : -1;

    internal static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
