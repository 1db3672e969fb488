using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Core.Tests.Pooling;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Relay;

public sealed class SessionRelayTests
{
    private static (SessionRelay Relay, BackendConnection Backend) Create()
    {
        Pool pool = new FakeBackends().CreatePool(new PoolSettings());
        BackendConnection backend = FakeBackends.NewBackend(pool);
        var client = new Pipe();
        return (new SessionRelay(client.Reader, client.Writer, backend), backend);
    }

    [Fact]
    public void ClientMessages_ForwardedUntouched_AtEverySplit_AndCounted()
    {
        // Q len=13 "SELECT 1"; P len=16 (unnamed, "SELECT 1", 0 params); S len=4
        byte[] bytes = Segments.Hex("51 0000000d 53454c454354203100 50 00000010 00 53454c454354203100 0000 53 00000004");
        foreach (ReadOnlySequence<byte> whole in Segments.AllSplits(bytes))
        {
            (SessionRelay relay, _) = Create();
            var output = new Pipe();
            // Feed the split sequence piece by piece, as reads would deliver it.
            ReadOnlySequence<byte> pending = ReadOnlySequence<byte>.Empty;
            foreach (ReadOnlyMemory<byte> segment in whole)
            {
                byte[] joined = [.. pending.ToArray(), .. segment.ToArray()];
                var buffer = new ReadOnlySequence<byte>(joined);
                Assert.Equal(RelayStop.None, relay.ForwardFromClient(ref buffer, output.Writer));
                pending = buffer;
            }

            Assert.True(pending.IsEmpty);
            Assert.Equal(bytes, Segments.Drain(output));
            Assert.False(relay.IsQuiescent, "two ReadyForQuery are owed (Query and Sync)");
        }
    }

    [Fact]
    public void Terminate_StopsWithoutForwarding()
    {
        (SessionRelay relay, _) = Create();
        var output = new Pipe();
        var buffer = new ReadOnlySequence<byte>(Segments.Hex("58 00000004")); // X, len=4
        Assert.Equal(RelayStop.ClientTerminated, relay.ForwardFromClient(ref buffer, output.Writer));
        Assert.Empty(Segments.Drain(output));
    }

    [Fact]
    public void MalformedClientLength_IsAViolation()
    {
        (SessionRelay relay, _) = Create();
        var buffer = new ReadOnlySequence<byte>(Segments.Hex("51 00000002"));
        Assert.Equal(RelayStop.ClientProtocolViolation, relay.ForwardFromClient(ref buffer, new Pipe().Writer));
    }

    [Fact]
    public void ReadyForQuery_SettlesThePendingCount_AndRecordsStatus()
    {
        (SessionRelay relay, BackendConnection backend) = Create();
        var toBackend = new Pipe();
        var query = new ReadOnlySequence<byte>(Segments.Hex("51 00000009 424547494e 00")); // Q "BEGIN"
        relay.ForwardFromClient(ref query, toBackend.Writer);
        Assert.False(relay.IsQuiescent);

        // C "BEGIN", then Z 'T' split before its status byte
        byte[] reply = Segments.Hex("43 0000000a 424547494e00 5a 00000005 54");
        var toClient = new Pipe();
        var first = new ReadOnlySequence<byte>(reply[..^1]);
        Assert.Equal(RelayStop.None, relay.ForwardFromBackend(ref first, toClient.Writer));
        Assert.Equal(5, first.Length); // the incomplete Z header stays unconsumed
        Assert.False(relay.IsQuiescent);
        var rest = new ReadOnlySequence<byte>([.. first.ToArray(), reply[^1]]);
        relay.ForwardFromBackend(ref rest, toClient.Writer);
        Assert.True(rest.IsEmpty);
        Assert.Equal(reply, Segments.Drain(toClient));
        Assert.True(relay.IsQuiescent);
        Assert.Equal((byte)'T', backend.TransactionStatus);
    }

    [Fact]
    public void ParameterStatus_UpdatesTheBackendView_AndIsForwarded()
    {
        (SessionRelay relay, BackendConnection backend) = Create();
        byte[] msg = Segments.Hex("53 00000014 54696d655a6f6e6500 4575726f706500"); // S, len=20, "TimeZone" "Europe"
        var buffer = new ReadOnlySequence<byte>(msg);
        var toClient = new Pipe();
        relay.ForwardFromBackend(ref buffer, toClient.Writer);
        Assert.Equal("Europe", backend.Parameters["timezone"]);
        Assert.Equal(msg, Segments.Drain(toClient));
    }

    [Fact]
    public void LargeDataRow_StreamsAcrossReads_WithoutBuffering()
    {
        (SessionRelay relay, _) = Create();
        byte[] body = new byte[100_000];
        Random.Shared.NextBytes(body);
        byte[] msg = [(byte)'D', 0, 0x01, 0x86, 0xa4, .. body]; // len = 100004
        var toClient = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        for (int i = 0; i < msg.Length; i += 4096)
        {
            var chunk = new ReadOnlySequence<byte>(msg.AsMemory(i, Math.Min(4096, msg.Length - i)));
            Assert.Equal(RelayStop.None, relay.ForwardFromBackend(ref chunk, toClient.Writer));
            Assert.True(chunk.IsEmpty, "every byte of a streamed message is forwarded at once");
        }

        Assert.Equal(msg, Segments.Drain(toClient));
    }

    [Fact]
    public void FatalError_IsNoticed()
    {
        (SessionRelay relay, _) = Create();
        var b = new Protocol.Framing.PgMessageBuilder();
        Protocol.Backend.ErrorResponse.Fatal("57P01", "terminating connection due to administrator command").Write(b);
        var buffer = new ReadOnlySequence<byte>(b.Written.ToArray());
        relay.ForwardFromBackend(ref buffer, new Pipe().Writer);
        Assert.True(relay.SawFatal);
    }
}
