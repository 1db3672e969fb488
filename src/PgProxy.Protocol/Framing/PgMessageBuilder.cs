using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Protocol.Framing;

/// <summary>
/// Builds one or more protocol messages into a reusable buffer, back-patching each length.
/// Used for the messages the proxy produces itself (auth, errors, startup); the relay never builds.
/// </summary>
public sealed class PgMessageBuilder
{
    private byte[] _buffer;
    private int _position;
    private int _messageStart = -1;

    /// <summary>The capacity of a builder made by <see cref="Rent"/>: a login's welcome (AuthenticationOk, a dozen
    /// ParameterStatus, BackendKeyData, ReadyForQuery: 400-600 bytes) fits without growing.</summary>
    private const int RentedCapacity = 1024;

    /// <summary>A builder grown past this is not kept for the next <see cref="Rent"/> (a large error, a long setting).</summary>
    private const int MaxSpareCapacity = 8192;

    /// <summary>One spare builder per thread, for <see cref="Rent"/>.</summary>
    [ThreadStatic]
    private static PgMessageBuilder? t_spare;

    /// <summary>Creates a builder with an initial capacity.</summary>
    public PgMessageBuilder(int capacity = 256)
    {
        _buffer = new byte[capacity];
    }

    /// <summary>
    /// A builder for a short use (a login's messages, from its start to its welcome): the thread's spare one, or a new
    /// one. Give it back with <see cref="Return"/> once what it holds has been copied out (<see cref="FlushTo"/>); a
    /// connect storm then makes no builder and no buffer per login.
    /// </summary>
    public static PgMessageBuilder Rent()
    {
        PgMessageBuilder? spare = t_spare;
        if (spare is null)
        {
            return new PgMessageBuilder(RentedCapacity);
        }

        t_spare = null;
        return spare;
    }

    /// <summary>
    /// Gives back a builder from <see cref="Rent"/>, emptied; the caller must not use it again. It becomes the spare of
    /// the thread that returns it (a login that moved threads meanwhile leaves it there), unless that thread has one.
    /// </summary>
    public static void Return(PgMessageBuilder builder)
    {
        if (builder._buffer.Length > MaxSpareCapacity || t_spare is not null)
        {
            return;
        }

        builder.Reset();
        t_spare = builder;
    }

    /// <summary>Everything written so far.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _position);

    /// <summary>Everything written so far, as memory.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _position);

    /// <summary>
    /// Forgets everything written and gives back the buffer (long-lived builders that are rarely used again, such as
    /// an idle client's: it holds no array until its next message).
    /// </summary>
    public PgMessageBuilder Shrink()
    {
        _position = 0;
        _messageStart = -1;
        _buffer = [];
        return this;
    }

    /// <summary>Empties the builder, keeping its buffer.</summary>
    public PgMessageBuilder Reset()
    {
        _position = 0;
        _messageStart = -1;
        return this;
    }

    /// <summary>Starts a typed message (type byte + length placeholder).</summary>
    public PgMessageBuilder Start(byte type)
    {
        EnsureClosed();
        Ensure(5);
        _buffer[_position++] = type;
        _messageStart = _position;
        _position += 4;
        return this;
    }

    /// <summary>Starts an untyped message (startup, cancel): only a length placeholder.</summary>
    public PgMessageBuilder StartUntyped()
    {
        EnsureClosed();
        Ensure(4);
        _messageStart = _position;
        _position += 4;
        return this;
    }

    /// <summary>Back-patches the length of the current message.</summary>
    public PgMessageBuilder End()
    {
        if (_messageStart < 0)
        {
            throw new InvalidOperationException("No message started.");
        }

        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_messageStart), _position - _messageStart);
        _messageStart = -1;
        return this;
    }

    /// <summary>Appends one byte.</summary>
    public PgMessageBuilder Byte(byte value)
    {
        Ensure(1);
        _buffer[_position++] = value;
        return this;
    }

    /// <summary>Appends a big-endian Int16.</summary>
    public PgMessageBuilder Int16(short value)
    {
        Ensure(2);
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_position), value);
        _position += 2;
        return this;
    }

    /// <summary>Appends a big-endian Int32.</summary>
    public PgMessageBuilder Int32(int value)
    {
        Ensure(4);
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_position), value);
        _position += 4;
        return this;
    }

    /// <summary>Appends raw bytes.</summary>
    public PgMessageBuilder Bytes(ReadOnlySpan<byte> value)
    {
        Ensure(value.Length);
        value.CopyTo(_buffer.AsSpan(_position));
        _position += value.Length;
        return this;
    }

    /// <summary>Appends a UTF-8 string and a NUL.</summary>
    public PgMessageBuilder CString(string value)
    {
        int max = Encoding.UTF8.GetMaxByteCount(value.Length) + 1;
        Ensure(max);
        _position += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_position));
        _buffer[_position++] = 0;
        return this;
    }

    /// <summary>Appends raw bytes and a NUL.</summary>
    public PgMessageBuilder CString(ReadOnlySpan<byte> value)
    {
        Bytes(value);
        return Byte(0);
    }

    /// <summary>Appends a UTF-8 string without a terminator.</summary>
    public PgMessageBuilder Utf8(string value)
    {
        int max = Encoding.UTF8.GetMaxByteCount(value.Length);
        Ensure(max);
        _position += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_position));
        return this;
    }

    /// <summary>Copies everything written into <paramref name="writer"/> and resets.</summary>
    public void FlushTo(IBufferWriter<byte> writer)
    {
        EnsureClosed();
        writer.Write(Written);
        Reset();
    }

    private void EnsureClosed()
    {
        if (_messageStart >= 0)
        {
            throw new InvalidOperationException("Previous message was not ended.");
        }
    }

    private void Ensure(int count)
    {
        if (_buffer.Length - _position >= count)
        {
            return;
        }

        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _position + count));
    }
}
