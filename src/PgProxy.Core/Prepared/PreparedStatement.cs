using System.Security.Cryptography;

namespace PgProxy.Core.Prepared;

/// <summary>
/// A protocol-level prepared statement as the proxy knows it: the Parse body after the statement name (query text,
/// parameter count and types) and the proxy-wide name it has on backends. The name is derived from a hash of that
/// body, so equal statements from any client share one name and the proxy needs no global registry that could grow
/// without bound.
/// </summary>
public sealed class PreparedStatement
{
    private PreparedStatement(string proxyName, byte[] parseTail)
    {
        ProxyName = proxyName;
        ProxyNameBytes = System.Text.Encoding.ASCII.GetBytes(proxyName);
        ParseTail = parseTail;
    }

    /// <summary><see cref="ProxyName"/> as bytes, for rewriting Bind without encoding per message.</summary>
    public byte[] ProxyNameBytes { get; }

    /// <summary>The name used on backends ("pgproxy_" + 128-bit hash, under NAMEDATALEN).</summary>
    public string ProxyName { get; }

    /// <summary>Parse body after the name: query\0, Int16 count, Int32 type oids.</summary>
    public byte[] ParseTail { get; }

    /// <summary>Creates the statement for a Parse body tail.</summary>
    public static PreparedStatement FromParseTail(ReadOnlySpan<byte> tail)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(tail, hash);
        return new PreparedStatement("pgproxy_" + Convert.ToHexStringLower(hash[..16]), tail.ToArray());
    }
}
