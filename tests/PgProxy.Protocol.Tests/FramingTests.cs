using System.Buffers;
using PgProxy.Protocol.Framing;
using PgProxy.Testing;

namespace PgProxy.Protocol.Tests;

public sealed class FramingTests
{
    [Fact]
    public void MessageHeader_ReadyForQuery_AtEverySplitPoint()
    {
        byte[] bytes = Segments.Hex("5a 00000005 49"); // Z, len=5, 'I'
        foreach (ReadOnlySequence<byte> seq in Segments.AllSplits(bytes))
        {
            Assert.True(MessageHeader.TryRead(seq, out MessageHeader h, out bool malformed));
            Assert.False(malformed);
            Assert.Equal((byte)'Z', h.Type);
            Assert.Equal(5, h.Length);
            Assert.Equal(1, h.BodyLength);
            Assert.Equal(6, h.TotalLength);
        }
    }

    [Fact]
    public void MessageHeader_Incomplete_NeedsMore()
    {
        for (int n = 0; n < 5; n++)
        {
            Assert.False(MessageHeader.TryRead(new ReadOnlySequence<byte>(Segments.Hex("51 00000008")[..n]), out _, out bool malformed));
            Assert.False(malformed);
        }
    }

    [Theory]
    [InlineData("51 00000003")] // Q, len=3: below the 4 bytes the length counts itself
    [InlineData("51 ffffffff")] // negative
    [InlineData("51 80000000")]
    public void MessageHeader_LengthBelowFour_IsMalformed(string hex)
    {
        Assert.True(MessageHeader.TryRead(new ReadOnlySequence<byte>(Segments.Hex(hex)), out _, out bool malformed));
        Assert.True(malformed);
    }

    [Fact]
    public void StartupMessage_WithParameters_AtEverySplitPoint()
    {
        // len=35, 196608 (3.0), "user\0alice\0database\0appdb\0\0"
        byte[] bytes = Segments.Hex("00000023 00030000 7573657200 616c69636500 646174616261736500 617070646200 00");
        Assert.Equal(35, bytes.Length);
        foreach (ReadOnlySequence<byte> seq in Segments.AllSplits(bytes))
        {
            Assert.True(StartupPacket.TryParse(seq, out StartupPacket? p, out long consumed, out StartupPacketError error), error.ToString());
            Assert.Equal(35, consumed);
            Assert.Equal(StartupPacketKind.Startup, p!.Kind);
            Assert.Equal(0, p.MinorVersion);
            Assert.Equal("alice", p.Get("user"));
            Assert.Equal("appdb", p.Get("database"));
            Assert.Null(p.Get("options"));
        }
    }

    [Fact]
    public void StartupMessage_PartialBody_NeedsMore()
    {
        byte[] bytes = Segments.Hex("00000023 00030000 7573657200 616c69636500 646174616261736500 617070646200 00");
        for (int n = 0; n < bytes.Length; n++)
        {
            Assert.False(StartupPacket.TryParse(new ReadOnlySequence<byte>(bytes[..n]), out _, out _, out StartupPacketError error));
            Assert.Equal(StartupPacketError.None, error);
        }
    }

    [Theory]
    [InlineData("00000008 04d2162f", StartupPacketKind.SslRequest)]    // len=8, 80877103
    [InlineData("00000008 04d21630", StartupPacketKind.GssEncRequest)] // len=8, 80877104
    public void EncryptionRequests(string hex, StartupPacketKind kind)
    {
        Assert.True(StartupPacket.TryParse(new ReadOnlySequence<byte>(Segments.Hex(hex)), out StartupPacket? p, out long consumed, out _));
        Assert.Equal(kind, p!.Kind);
        Assert.Equal(8, consumed);
    }

    [Theory]
    [InlineData("00000008 04d2162f", true, 80877103)]                       // SSLRequest
    [InlineData("00000008 04d21630 00000008 00030000", true, 80877104)]     // GSSENCRequest, more bytes after it
    [InlineData("00000008 04d216", false, 0)]                               // not all 8 bytes yet
    [InlineData("00000010 04d2162e 00000001 00000002", false, 0)]           // CancelRequest
    [InlineData("00000009 04d2162f 00", false, 0)]                          // the SSLRequest code with another length
    [InlineData("00000017 00030000 75736572 00610000", false, 0)]           // StartupMessage
    public void IsEncryptionRequest_LooksAtTheFirstEightBytes(string hex, bool expected, int expectedCode)
    {
        foreach (ReadOnlySequence<byte> seq in Segments.AllSplits(Segments.Hex(hex)))
        {
            Assert.Equal(expected, StartupPacket.IsEncryptionRequest(seq, out int code));
            if (expected)
            {
                Assert.Equal(expectedCode, code);
            }
        }
    }

    [Fact]
    public void CancelRequest_CarriesKey()
    {
        // len=16, 80877102, pid=0x01020304, secret=0x0a0b0c0d
        byte[] bytes = Segments.Hex("00000010 04d2162e 01020304 0a0b0c0d");
        foreach (ReadOnlySequence<byte> seq in Segments.AllSplits(bytes))
        {
            Assert.True(StartupPacket.TryParse(seq, out StartupPacket? p, out _, out _));
            Assert.Equal(StartupPacketKind.CancelRequest, p!.Kind);
            Assert.Equal(0x01020304, p.CancelProcessId);
            Assert.Equal(0x0a0b0c0d, p.CancelSecretKey);
        }
    }

    [Theory]
    [InlineData("00000004 00030000", StartupPacketError.InvalidLength)]          // shorter than 8
    [InlineData("00002711 00030000", StartupPacketError.InvalidLength)]          // 10001
    [InlineData("ffffffff 00030000", StartupPacketError.InvalidLength)]          // negative
    [InlineData("00000008 00020000", StartupPacketError.UnsupportedProtocol)]   // 2.0
    [InlineData("00000008 12345678", StartupPacketError.UnsupportedProtocol)]   // unknown code
    [InlineData("0000000c 04d2162e 00000001", StartupPacketError.MalformedCancel)]
    [InlineData("0000000d 00030000 7573657200", StartupPacketError.MalformedParameters)] // value missing
    [InlineData("0000000d 00030000 7500 6100 78", StartupPacketError.MalformedParameters)] // "u"="a", then "x" unterminated
    public void Malformed_StartupPackets_AreRefused(string hex, StartupPacketError expected)
    {
        byte[] bytes = Segments.Hex(hex);
        Assert.False(StartupPacket.TryParse(new ReadOnlySequence<byte>(bytes), out _, out _, out StartupPacketError error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Startup_NewerMinor_IsReported()
    {
        // len=9, 3.2, terminator only
        Assert.True(StartupPacket.TryParse(new ReadOnlySequence<byte>(Segments.Hex("00000009 00030002 00")), out StartupPacket? p, out _, out _));
        Assert.Equal(2, p!.MinorVersion);
    }

    [Fact]
    public void Builder_BackPatchesLengths_AcrossMessages()
    {
        var b = new PgMessageBuilder(4);
        Backend.BackendMessages.ReadyForQuery(b, TransactionStatus.Idle);
        Backend.BackendMessages.BackendKeyData(b, 1, 2);
        Assert.Equal(Segments.Hex("5a 00000005 49 4b 0000000c 00000001 00000002"), b.Written.ToArray());
    }

    [Fact]
    public void StartupMessage_RepeatedStrings_AreShared_AndEveryValueReadsBack()
    {
        static StartupPacket Parse(string user, string database)
        {
            var b = new PgMessageBuilder();
            b.StartUntyped().Int32(ProtocolCodes.MajorVersion << 16).CString("user").CString(user).CString("database").CString(database).Byte(0).End();
            Assert.True(StartupPacket.TryParse(new ReadOnlySequence<byte>(b.Written.ToArray()), out StartupPacket? p, out _, out StartupPacketError error), error.ToString());
            return p!;
        }

        StartupPacket first = Parse("alice", "appdb");
        StartupPacket second = Parse("alice", "appdb");
        Assert.Same(first.Get("user"), second.Get("user"));
        Assert.Same(first.Parameters[1].Key, second.Parameters[1].Key);

        // Far more strings than the table's slots, short, long and not ASCII: each reads back as sent, none mixed up
        // with another that shares its slot.
        string longName = new('x', 200);
        for (int i = 0; i < 3000; i++)
        {
            string user = (i % 3) switch { 0 => $"user{i}", 1 => $"üser{i}", _ => longName + i };
            StartupPacket p = Parse(user, $"db{i % 7}");
            Assert.Equal(user, p.Get("user"));
            Assert.Equal($"db{i % 7}", p.Get("database"));
            Assert.Equal(2, p.Parameters.Count);
        }
    }

    [Fact]
    public void Builder_Rented_IsTheThreadsSpareOnceReturned_AndEmpty()
    {
        PgMessageBuilder rented = PgMessageBuilder.Rent();
        Backend.BackendMessages.ReadyForQuery(rented, TransactionStatus.Idle);
        PgMessageBuilder.Return(rented);
        PgMessageBuilder again = PgMessageBuilder.Rent();
        Assert.Same(rented, again);
        Assert.True(again.Written.IsEmpty);
        Assert.NotSame(again, PgMessageBuilder.Rent()); // the spare is taken: the next one is new

        // A builder grown large is not kept.
        var large = new PgMessageBuilder(16 * 1024);
        PgMessageBuilder.Return(large);
        Assert.NotSame(large, PgMessageBuilder.Rent());
    }

    [Fact]
    public void ErrorResponse_RoundTrips()
    {
        var b = new PgMessageBuilder();
        Backend.ErrorResponse.Fatal(SqlState.InvalidPassword, "password authentication failed for user \"x\"", "detail").Write(b);
        byte[] bytes = b.Written.ToArray();
        Assert.Equal((byte)'E', bytes[0]);
        Assert.True(Backend.ErrorResponse.TryParse(bytes.AsSpan(5), out Backend.ErrorResponse? e));
        Assert.Equal("FATAL", e!.Severity);
        Assert.True(e.IsFatal);
        Assert.Equal("28P01", e.SqlState);
        Assert.Equal("password authentication failed for user \"x\"", e.Message);
        Assert.Equal("detail", e.Detail);
    }

    [Fact]
    public void ErrorResponse_Truncated_IsRejected()
    {
        Assert.False(Backend.ErrorResponse.TryParse(Segments.Hex("53 4552524f52"), out _)); // 'S' "ERROR" without NUL
    }
}
