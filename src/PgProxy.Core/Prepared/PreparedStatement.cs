using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PgProxy.Core.Prepared;

/// <summary>
/// A protocol-level prepared statement as backends know it: the Parse body after the statement name (query text,
/// parameter count and types) and the proxy-wide name it has on backends. The name is derived from a hash of that
/// body, so equal statements from any client share one name; <see cref="StatementRegistry"/> shares the object too,
/// so the text and types are held once however many clients prepare them.
/// </summary>
public sealed class PreparedStatement
{
    private static long s_throwaways;

    private PreparedStatement(UInt128 id, string name, byte[] parseTail, byte[]? sqlBody = null)
    {
        Id = id;
        ProxyName = name;
        ProxyNameBytes = System.Text.Encoding.ASCII.GetBytes(name);
        ParseTail = parseTail;
        SqlBody = sqlBody;
        int nul = Array.IndexOf(parseTail, (byte)0);
        ReadOnlySpan<byte> text = sqlBody ?? parseTail.AsSpan(0, nul < 0 ? parseTail.Length : nul);
        Effects = Sql.StatementReader.TryReadFirst(text, true, out Sql.SqlStatement statement)
            ? statement.Effects & ~Sql.SessionEffects.PreparedStatement
            : Sql.SessionEffects.None;
    }

    /// <summary>
    /// For a statement a SQL PREPARE made: what follows the name in it ("(int) AS SELECT $1 + 1"), which a
    /// "PREPARE proxy-name" before it prepares again on another backend; null for a protocol-level statement.
    /// </summary>
    public byte[]? SqlBody { get; }

    /// <summary>
    /// The shared statement of a SQL PREPARE whose text after the name is <paramref name="body"/>. Its name ("pgproxy_q"
    /// + hash) and its id (the hash with a constant folded in) are apart from every protocol-level statement's, whatever
    /// bytes a client puts in a Parse.
    /// </summary>
    public static PreparedStatement FromSql(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        var id = new UInt128(BinaryPrimitives.ReadUInt64BigEndian(hash) ^ 0x5351_4C50_5245_5041UL, BinaryPrimitives.ReadUInt64BigEndian(hash[8..]));
        return new PreparedStatement(id, "pgproxy_q" + Convert.ToHexStringLower(hash[..15]), [], body.ToArray());
    }

    /// <summary>
    /// The session effects of its statement, read once: every Bind of it (not only the Parse, which a client sends once
    /// per connection) may take a session advisory lock or declare a WITH HOLD cursor.
    /// </summary>
    public Sql.SessionEffects Effects { get; }

    /// <summary>Identity on backends: 128 bits of the SHA-256 of <see cref="ParseTail"/>.</summary>
    public UInt128 Id { get; }

    /// <summary>The name used on backends ("pgproxy_" + the id in hex, under NAMEDATALEN).</summary>
    public string ProxyName { get; }

    /// <summary><see cref="ProxyName"/> as bytes, for rewriting Bind without encoding per message.</summary>
    public byte[] ProxyNameBytes { get; }

    /// <summary>Parse body after the name: query\0, Int16 count, Int32 type oids.</summary>
    public byte[] ParseTail { get; }

    /// <summary>Creates the statement for a Parse body tail (copied).</summary>
    public static PreparedStatement FromParseTail(ReadOnlySpan<byte> tail)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(tail, hash);
        var id = new UInt128(BinaryPrimitives.ReadUInt64BigEndian(hash), BinaryPrimitives.ReadUInt64BigEndian(hash[8..]));
        return new PreparedStatement(id, "pgproxy_" + Convert.ToHexStringLower(hash[..16]), tail.ToArray());
    }

    /// <summary>
    /// A one-off statement ("SELECT") with a name of its own, for SQL that must act on some statement without touching
    /// the shared ones (DEALLOCATE of a client's name runs on one of these).
    /// </summary>
    public static PreparedStatement Throwaway()
    {
        long n = Interlocked.Increment(ref s_throwaways);
        // Ids of throwaways have the top bit clear and a counter below: no hash-derived id is expected to meet one.
        return new PreparedStatement(new UInt128(0, (ulong)n), "pgproxy_d" + n.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [.. "SELECT"u8, 0, 0, 0]);
    }
}
