using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Core.Tests.Pooling;
using PgProxy.Protocol;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Relay;

public sealed class MessageRelayTests
{
    /// <summary>A relay with a backend attached: what the relay writes to the backend is read from <c>ToBackend</c>, to the client from <c>ToClient</c>.</summary>
    internal sealed record Harness(MessageRelay Relay, BackendConnection Backend, Pipe ToBackend, Pipe ToClient, Pool Pool);

    internal static Harness Create(PoolMode mode = PoolMode.Session, Prepared.StatementMapper? statements = null)
    {
        Pool pool = new FakeBackends().CreatePool(new PoolSettings { Mode = mode });
        BackendConnection backend = FakeBackends.NewBackend(pool, out Pipe toBackend, out _);
        var client = new Pipe();
        var toClient = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var relay = new MessageRelay(client.Reader, toClient.Writer, pool, statements);
        relay.Attach(backend);
        return new Harness(relay, backend, toBackend, toClient, pool);
    }

    private static RelayStop FromClient(Harness h, ref ReadOnlySequence<byte> buffer)
    {
        RelayStop stop = h.Relay.ForwardFromClient(ref buffer, out _);
        h.Relay.ClientFlushed();
        return stop;
    }

    [Fact]
    public void ClientMessages_ForwardedUntouched_AtEverySplit()
    {
        // Q len=13 "SELECT 1"; P len=16 (unnamed, "SELECT 1", 0 params); S len=4
        byte[] bytes = Segments.Hex("51 0000000d 53454c454354203100 50 00000010 00 53454c454354203100 0000 53 00000004");
        foreach (ReadOnlySequence<byte> whole in Segments.AllSplits(bytes))
        {
            Harness h = Create();
            // Feed the split sequence piece by piece, as reads would deliver it.
            ReadOnlySequence<byte> pending = ReadOnlySequence<byte>.Empty;
            foreach (ReadOnlyMemory<byte> segment in whole)
            {
                byte[] joined = [.. pending.ToArray(), .. segment.ToArray()];
                var buffer = new ReadOnlySequence<byte>(joined);
                Assert.Equal(RelayStop.None, FromClient(h, ref buffer));
                pending = buffer;
            }

            Assert.True(pending.IsEmpty);
            Assert.Equal(bytes, Segments.Drain(h.ToBackend));
            Assert.False(h.Relay.IsQuiescent, "two ReadyForQuery are owed (Query and Sync)");
        }
    }

    [Fact]
    public void Terminate_StopsWithoutForwarding()
    {
        Harness h = Create();
        var buffer = new ReadOnlySequence<byte>(Segments.Hex("58 00000004")); // X, len=4
        Assert.Equal(RelayStop.ClientTerminated, FromClient(h, ref buffer));
        Assert.Empty(Segments.Drain(h.ToBackend));
    }

    [Fact]
    public void MalformedClientLength_IsAViolation()
    {
        Harness h = Create();
        var buffer = new ReadOnlySequence<byte>(Segments.Hex("51 00000002"));
        Assert.Equal(RelayStop.ClientProtocolViolation, FromClient(h, ref buffer));
    }

    [Fact]
    public void ReadyForQuery_SettlesThePendingCount_AndRecordsStatus()
    {
        Harness h = Create();
        var query = new ReadOnlySequence<byte>(Segments.Hex("51 00000009 424547494e 00")); // Q "BEGIN"
        FromClient(h, ref query);
        Assert.False(h.Relay.IsQuiescent);

        // C "BEGIN", then Z 'T' split before its status byte
        byte[] reply = Segments.Hex("43 0000000a 424547494e00 5a 00000005 54");
        var first = new ReadOnlySequence<byte>(reply[..^1]);
        Assert.Equal(RelayStop.None, h.Relay.ForwardFromBackend(h.Backend, ref first));
        Assert.Equal(5, first.Length); // the incomplete Z header stays unconsumed
        Assert.False(h.Relay.IsQuiescent);
        var rest = new ReadOnlySequence<byte>([.. first.ToArray(), reply[^1]]);
        h.Relay.ForwardFromBackend(h.Backend, ref rest);
        Assert.True(rest.IsEmpty);
        Assert.Equal(reply, Segments.Drain(h.ToClient));
        Assert.True(h.Relay.IsQuiescent);
        Assert.Equal(TransactionStatus.InTransaction, h.Backend.TransactionStatus);
    }

    [Fact]
    public void ParameterStatus_UpdatesTheBackendView_AndIsForwarded()
    {
        Harness h = Create();
        h.Backend.Session.SyncedSettings = "synced";
        byte[] msg = Segments.Hex("53 00000014 54696d655a6f6e6500 4575726f706500"); // S, len=20, "TimeZone" "Europe"
        var buffer = new ReadOnlySequence<byte>(msg);
        h.Relay.ForwardFromBackend(h.Backend, ref buffer);
        Assert.Equal("Europe", h.Backend.Parameters["timezone"]);
        Assert.Null(h.Backend.Session.SyncedSettings); // the next client's settings are checked again
        Assert.Equal(msg, Segments.Drain(h.ToClient));
    }

    [Fact]
    public void LargeDataRow_StreamsAcrossReads_WithoutBuffering()
    {
        Harness h = Create();
        byte[] body = new byte[100_000];
        Random.Shared.NextBytes(body);
        byte[] msg = [(byte)'D', 0, 0x01, 0x86, 0xa4, .. body]; // len = 100004
        for (int i = 0; i < msg.Length; i += 4096)
        {
            var chunk = new ReadOnlySequence<byte>(msg.AsMemory(i, Math.Min(4096, msg.Length - i)));
            Assert.Equal(RelayStop.None, h.Relay.ForwardFromBackend(h.Backend, ref chunk));
            Assert.True(chunk.IsEmpty, "every byte of a streamed message is forwarded at once");
        }

        Assert.Equal(msg, Segments.Drain(h.ToClient));
    }

    [Fact]
    public void FatalError_IsNoticed()
    {
        Harness h = Create();
        var b = new Protocol.Framing.PgMessageBuilder();
        Protocol.Backend.ErrorResponse.Fatal("57P01", "terminating connection due to administrator command").Write(b);
        var buffer = new ReadOnlySequence<byte>(b.Written.ToArray());
        h.Relay.ForwardFromBackend(h.Backend, ref buffer);
        Assert.True(h.Relay.SawFatal);
    }

    [Fact]
    public void TransactionMode_IdleReadyForQuery_EndsTheLink_AndTheNextMessageNeedsABackend()
    {
        Harness h = Create(PoolMode.Transaction);
        Assert.Equal(ClientState.Active, h.Relay.State);
        Assert.Equal(1, h.Pool.ClientCount(ClientState.Active));
        var query = new ReadOnlySequence<byte>(Segments.Hex("51 0000000d 53454c454354203100")); // Q "SELECT 1"
        FromClient(h, ref query);
        var reply = new ReadOnlySequence<byte>(Segments.Hex("43 0000000d 53454c454354203100 5a 00000005 49 44")); // C, Z 'I', then a stray byte
        Assert.Equal(RelayStop.Released, h.Relay.ForwardFromBackend(h.Backend, ref reply));
        Assert.Equal(1, reply.Length); // what follows the ReadyForQuery is not this link's
        Assert.Null(h.Relay.Backend);
        Assert.Equal(RelayStop.Detached, h.Relay.ForwardFromBackend(h.Backend, ref reply));

        // Until the pump has flushed (CompleteDetach), the session must not write to the client: it waits.
        ValueTask detached = h.Relay.WhenDetachedAsync();
        Assert.False(detached.IsCompleted);
        h.Relay.CompleteDetach();
        Assert.True(detached.IsCompletedSuccessfully);
        Assert.Equal(ClientState.Idle, h.Relay.State);
        Assert.Equal(0, h.Pool.ClientCount(ClientState.Active));
        Assert.Equal(1, h.Pool.ClientCount(ClientState.Idle));

        byte[] next = Segments.Hex("51 0000000d 53454c454354203200"); // Q "SELECT 2"
        var buffer = new ReadOnlySequence<byte>(next);
        Assert.Equal(RelayStop.NeedBackend, h.Relay.ForwardFromClient(ref buffer, out BackendConnection? target));
        Assert.Null(target);
        Assert.Equal(next.Length, buffer.Length); // untouched: it waits for the next backend
    }

    [Fact]
    public void ReleaseWaitsForTheClientsFlush_SoNoOtherClientWritesToTheBackendMeanwhile()
    {
        Harness h = Create(PoolMode.Transaction);
        var query = new ReadOnlySequence<byte>(Segments.Hex("51 0000000d 53454c454354203100"));
        Assert.Equal(RelayStop.None, h.Relay.ForwardFromClient(ref query, out BackendConnection? target));
        Assert.Same(h.Backend, target);

        // The reply arrives before the session flushed (possible when the flush is in the background): no release yet.
        var reply = new ReadOnlySequence<byte>(Segments.Hex("5a 00000005 49"));
        Assert.Equal(RelayStop.None, h.Relay.ForwardFromBackend(h.Backend, ref reply));
        Assert.Same(h.Backend, h.Relay.Backend);

        // After the flush the session wakes the pump, whose next look ends the link.
        Assert.Same(h.Backend, h.Relay.ClientFlushed());
        var nothing = ReadOnlySequence<byte>.Empty;
        Assert.Equal(RelayStop.Released, h.Relay.ForwardFromBackend(h.Backend, ref nothing));
    }

    [Fact]
    public void RequestedDetach_EndsTheLinkAtThePumpsNextLook_AndTellsWhetherItWasAtABoundary()
    {
        Harness h = Create(PoolMode.Transaction);
        var query = new ReadOnlySequence<byte>(Segments.Hex("51 0000000d 53454c454354203100"));
        FromClient(h, ref query);
        Assert.Same(h.Backend, h.Relay.RequestDetach());
        var nothing = ReadOnlySequence<byte>.Empty;
        Assert.Equal(RelayStop.DetachRequested, h.Relay.ForwardFromBackend(h.Backend, ref nothing));
        Assert.False(h.Relay.DetachedAtBoundary); // a query was outstanding: the backend must be closed
        Assert.Null(h.Relay.RequestDetach());
    }
}
