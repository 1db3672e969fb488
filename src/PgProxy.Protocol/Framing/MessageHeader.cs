using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace PgProxy.Protocol.Framing;

/// <summary>
/// The 5-byte header of every typed message: a type byte and a big-endian length that counts itself
/// but not the type byte. This is the only thing the relay parses on the hot path.
/// </summary>
public readonly struct MessageHeader
{
    /// <summary>Bytes in a header.</summary>
    public const int Size = 5;

    /// <summary>Creates a header.</summary>
    public MessageHeader(byte type, int length)
    {
        Type = type;
        Length = length;
    }

    /// <summary>The message type byte.</summary>
    public byte Type { get; }

    /// <summary>The length field: 4 + body length.</summary>
    public int Length { get; }

    /// <summary>Body bytes after the header.</summary>
    public int BodyLength => Length - 4;

    /// <summary>Bytes on the wire: type + length field + body.</summary>
    public long TotalLength => (long)Length + 1;

    /// <summary>
    /// Reads a header at the start of <paramref name="buffer"/>. Returns false when fewer than 5 bytes are
    /// available. A length below 4 is a protocol violation reported through <paramref name="malformed"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryRead(in ReadOnlySequence<byte> buffer, out MessageHeader header, out bool malformed)
    {
        malformed = false;
        ReadOnlySpan<byte> first = buffer.FirstSpan;
        int length;
        byte type;
        if (first.Length >= Size)
        {
            type = first[0];
            length = BinaryPrimitives.ReadInt32BigEndian(first.Slice(1));
        }
        else
        {
            if (buffer.Length < Size)
            {
                header = default;
                return false;
            }

            Span<byte> tmp = stackalloc byte[Size];
            buffer.Slice(0, Size).CopyTo(tmp);
            type = tmp[0];
            length = BinaryPrimitives.ReadInt32BigEndian(tmp.Slice(1));
        }

        header = new MessageHeader(type, length);
        if (length < 4)
        {
            malformed = true;
        }

        return true;
    }
}
