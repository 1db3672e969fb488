using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>Legacy md5 authentication: "md5" + md5hex(md5hex(password + user) + salt).</summary>
public static class Md5Password
{
    /// <summary>The stored form: "md5" + md5hex(password + user).</summary>
    public static string Hash(string password, string user) =>
        "md5" + HexMd5(Encoding.UTF8.GetBytes(password + user));

    /// <summary>The response to an AuthenticationMD5Password challenge, from the stored hash ("md5...").</summary>
    public static string Response(string storedHash, ReadOnlySpan<byte> salt)
    {
        byte[] inner = Encoding.ASCII.GetBytes(storedHash.Substring(3));
        byte[] data = new byte[inner.Length + salt.Length];
        inner.CopyTo(data, 0);
        salt.CopyTo(data.AsSpan(inner.Length));
        return "md5" + HexMd5(data);
    }

    /// <summary>True for a stored md5 hash ("md5" and 32 lowercase hex digits).</summary>
    public static bool IsMd5Hash(string secret) =>
        secret.Length == 35 && secret.StartsWith("md5", StringComparison.Ordinal) &&
        secret.AsSpan(3).IndexOfAnyExcept("0123456789abcdef") < 0;

    private static string HexMd5(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));
}
