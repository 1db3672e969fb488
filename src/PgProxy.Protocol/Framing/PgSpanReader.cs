using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Protocol.Framing;

/// <summary>Big-endian reader over a buffered message body. Every read is bounds-checked.</summary>
public ref struct PgSpanReader
{
    private readonly ReadOnlySpan<byte> _span;
    private int _pos;

    /// <summary>Creates a reader over <paramref name="span"/>.</summary>
    public PgSpanReader(ReadOnlySpan<byte> span)
    {
        _span = span;
        _pos = 0;
    }

    /// <summary>Bytes not read yet.</summary>
    public readonly int Remaining => _span.Length - _pos;

    /// <summary>Reads one byte.</summary>
    public bool TryReadByte(out byte value)
    {
        if (Remaining < 1)
        {
            value = 0;
            return false;
        }

        value = _span[_pos++];
        return true;
    }

    /// <summary>Reads a big-endian Int32.</summary>
    public bool TryReadInt32(out int value)
    {
        if (Remaining < 4)
        {
            value = 0;
            return false;
        }

        value = BinaryPrimitives.ReadInt32BigEndian(_span.Slice(_pos));
        _pos += 4;
        return true;
    }

    /// <summary>Reads a big-endian Int16.</summary>
    public bool TryReadInt16(out short value)
    {
        if (Remaining < 2)
        {
            value = 0;
            return false;
        }

        value = BinaryPrimitives.ReadInt16BigEndian(_span.Slice(_pos));
        _pos += 2;
        return true;
    }

    /// <summary>Reads a NUL-terminated string as raw bytes (without the NUL).</summary>
    public bool TryReadCString(out ReadOnlySpan<byte> value)
    {
        int nul = _span.Slice(_pos).IndexOf((byte)0);
        if (nul < 0)
        {
            value = default;
            return false;
        }

        value = _span.Slice(_pos, nul);
        _pos += nul + 1;
        return true;
    }

    /// <summary>Reads a NUL-terminated UTF-8 string.</summary>
    public bool TryReadCString(out string value)
    {
        if (!TryReadCString(out ReadOnlySpan<byte> raw))
        {
            value = string.Empty;
            return false;
        }

        value = Encoding.UTF8.GetString(raw);
        return true;
    }

    /// <summary>Reads <paramref name="count"/> raw bytes.</summary>
    public bool TryReadBytes(int count, out ReadOnlySpan<byte> value)
    {
        if (count < 0 || Remaining < count)
        {
            value = default;
            return false;
        }

        value = _span.Slice(_pos, count);
        _pos += count;
        return true;
    }

    /// <summary>The rest of the body.</summary>
    public ReadOnlySpan<byte> ReadRest()
    {
        ReadOnlySpan<byte> rest = _span.Slice(_pos);
        _pos = _span.Length;
        return rest;
    }
}
