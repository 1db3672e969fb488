using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace PgProxy.Protocol.Framing;

/// <summary>What kind of untyped first packet a client sent.</summary>
public enum StartupPacketKind
{
    /// <summary>StartupMessage (protocol 3.x) with parameters.</summary>
    Startup,
    /// <summary>SSLRequest.</summary>
    SslRequest,
    /// <summary>GSSENCRequest.</summary>
    GssEncRequest,
    /// <summary>CancelRequest with a process id and secret key.</summary>
    CancelRequest,
}

/// <summary>Why a startup packet was refused.</summary>
public enum StartupPacketError
{
    /// <summary>No error.</summary>
    None,
    /// <summary>Length below 8 or above 10 000 bytes (PG: "invalid length of startup packet").</summary>
    InvalidLength,
    /// <summary>A protocol major version other than 3, or an unknown request code.</summary>
    UnsupportedProtocol,
    /// <summary>Parameters not NUL-terminated pairs ending in an empty name.</summary>
    MalformedParameters,
    /// <summary>A CancelRequest of the wrong length.</summary>
    MalformedCancel,
}

/// <summary>
/// The untyped first packet of a connection ("Message Flow: Start-up"): a length, a code and a body.
/// Parsed only here; bounded by <see cref="ProtocolCodes.MaxStartupPacketBytes"/> before buffering.
/// </summary>
public sealed class StartupPacket
{
    private StartupPacket(StartupPacketKind kind)
    {
        Kind = kind;
    }

    /// <summary>The packet kind.</summary>
    public StartupPacketKind Kind { get; }

    /// <summary>Protocol minor version requested (StartupMessage only).</summary>
    public int MinorVersion { get; private init; }

    /// <summary>The raw protocol code.</summary>
    public int Code { get; private init; }

    /// <summary>Parameters in the order they were sent (StartupMessage only). Names are case-sensitive as in PG.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Parameters { get; private init; } = [];

    /// <summary>CancelRequest process id.</summary>
    public int CancelProcessId { get; private init; }

    /// <summary>CancelRequest secret key.</summary>
    public int CancelSecretKey { get; private init; }

    /// <summary>Looks up a parameter by name (the last occurrence wins, as in PG).</summary>
    public string? Get(string name)
    {
        // By index: a foreach over the list interface would allocate an enumerator on every login's lookups.
        IReadOnlyList<KeyValuePair<string, string>> parameters = Parameters;
        for (int i = parameters.Count - 1; i >= 0; i--)
        {
            if (parameters[i].Key == name)
            {
                return parameters[i].Value;
            }
        }

        return null;
    }

    /// <summary>
    /// Tries to parse the first packet at the start of <paramref name="buffer"/>. Returns false with
    /// <paramref name="error"/> = None when more bytes are needed; returns false with an error when the packet is
    /// malformed (the caller answers FATAL and closes); returns true and sets <paramref name="consumed"/> on success.
    /// The length is checked before any buffering, so a client cannot make us hold more than the cap.
    /// </summary>
    public static bool TryParse(in ReadOnlySequence<byte> buffer, out StartupPacket? packet, out long consumed, out StartupPacketError error)
    {
        packet = null;
        consumed = 0;
        error = StartupPacketError.None;
        if (buffer.Length < 4)
        {
            return false;
        }

        Span<byte> lenBytes = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(lenBytes);
        int length = BinaryPrimitives.ReadInt32BigEndian(lenBytes);
        if (length < ProtocolCodes.MinStartupPacketBytes || length > ProtocolCodes.MaxStartupPacketBytes)
        {
            error = StartupPacketError.InvalidLength;
            return false;
        }

        if (buffer.Length < length)
        {
            return false;
        }

        consumed = length;
        ReadOnlySequence<byte> packetBytes = buffer.Slice(0, length);
        if (packetBytes.IsSingleSegment)
        {
            return TryParseBody(packetBytes.FirstSpan.Slice(4), out packet, out error);
        }

        byte[] rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            Span<byte> body = rented.AsSpan(0, length);
            packetBytes.CopyTo(body);
            return TryParseBody(body.Slice(4), out packet, out error);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// True when <paramref name="buffer"/> begins with a whole encryption request (an SSLRequest or a GSSENCRequest:
    /// length 8, then the code), with its <paramref name="code"/>. Looks at the first 8 bytes only and makes nothing, so
    /// a caller can decide how to answer one before it parses (<see cref="TryParse"/>) what follows.
    /// </summary>
    public static bool IsEncryptionRequest(in ReadOnlySequence<byte> buffer, out int code)
    {
        code = 0;
        if (buffer.Length < 8)
        {
            return false;
        }

        Span<byte> head = stackalloc byte[8];
        buffer.Slice(0, 8).CopyTo(head);
        code = BinaryPrimitives.ReadInt32BigEndian(head[4..]);
        return BinaryPrimitives.ReadInt32BigEndian(head) == 8 && code is ProtocolCodes.SslRequest or ProtocolCodes.GssEncRequest;
    }

    private static bool TryParseBody(ReadOnlySpan<byte> body, out StartupPacket? packet, out StartupPacketError error)
    {
        packet = null;
        error = StartupPacketError.None;
        int code = BinaryPrimitives.ReadInt32BigEndian(body);
        ReadOnlySpan<byte> rest = body.Slice(4);
        switch (code)
        {
            case ProtocolCodes.SslRequest:
                packet = new StartupPacket(StartupPacketKind.SslRequest) { Code = code };
                return true;
            case ProtocolCodes.GssEncRequest:
                packet = new StartupPacket(StartupPacketKind.GssEncRequest) { Code = code };
                return true;
            case ProtocolCodes.CancelRequest:
                if (rest.Length != 8)
                {
                    error = StartupPacketError.MalformedCancel;
                    return false;
                }

                packet = new StartupPacket(StartupPacketKind.CancelRequest)
                {
                    Code = code,
                    CancelProcessId = BinaryPrimitives.ReadInt32BigEndian(rest),
                    CancelSecretKey = BinaryPrimitives.ReadInt32BigEndian(rest.Slice(4)),
                };
                return true;
        }

        if (code >> 16 != ProtocolCodes.MajorVersion)
        {
            error = StartupPacketError.UnsupportedProtocol;
            return false;
        }

        // Sized at once (a name and a value per pair, then the terminating empty name): the list never grows.
        var parameters = new List<KeyValuePair<string, string>>(Math.Max(0, (rest.Count((byte)0) - 1) / 2));
        var reader = new PgSpanReader(rest);
        while (true)
        {
            if (!reader.TryReadCString(out ReadOnlySpan<byte> name))
            {
                error = StartupPacketError.MalformedParameters;
                return false;
            }

            if (name.IsEmpty)
            {
                break;
            }

            if (!reader.TryReadCString(out ReadOnlySpan<byte> value))
            {
                error = StartupPacketError.MalformedParameters;
                return false;
            }

            parameters.Add(new(StartupStrings.Get(name), StartupStrings.Get(value)));
        }

        if (reader.Remaining != 0)
        {
            error = StartupPacketError.MalformedParameters;
            return false;
        }

        packet = new StartupPacket(StartupPacketKind.Startup)
        {
            Code = code,
            MinorVersion = code & 0xFFFF,
            Parameters = parameters,
        };
        return true;
    }
}

/// <summary>
/// The strings of startup packets, shared: every client of an application sends the same names and mostly the same
/// values ("user", "client_encoding" and "UTF8", its database and user names), so a login storm would otherwise make
/// the same few strings again for each login. A small table, indexed by the bytes' hash, remembers the last short ASCII
/// string seen in each slot; bytes equal to it get that string. A miss (another string in the slot, a long or non-ASCII
/// value) makes a new string, as before, and the table holds at most <see cref="Slots"/> strings of
/// <see cref="MaxLength"/> characters.
/// </summary>
internal static class StartupStrings
{
    private const int Slots = 256;

    private const int MaxLength = 64;

    private static readonly string?[] s_slots = new string?[Slots];

    /// <summary>The string for <paramref name="utf8"/>: the table's when it holds these bytes, else a new one.</summary>
    public static string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty)
        {
            return string.Empty;
        }

        if (utf8.Length > MaxLength)
        {
            return Encoding.UTF8.GetString(utf8);
        }

        var hash = new HashCode();
        hash.AddBytes(utf8);
        ref string? slot = ref s_slots[hash.ToHashCode() & (Slots - 1)];
        string? known = Volatile.Read(ref slot);
        if (known is not null && Ascii.Equals(utf8, known))
        {
            return known;
        }

        string made = Encoding.UTF8.GetString(utf8);
        if (Ascii.IsValid(utf8))
        {
            Volatile.Write(ref slot, made);
        }

        return made;
    }
}
