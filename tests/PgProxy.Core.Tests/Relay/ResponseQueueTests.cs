using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Core.Prepared;
using PgProxy.Core.Relay;
using PgProxy.Core.Tests.Pooling;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Relay;

/// <summary>Response-order bookkeeping, on message types and on byte vectors through the relay.</summary>
public sealed class ResponseQueueTests
{
    [Fact]
    public void ExtendedBatch_EachReplyEndsItsRequest()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Parse));
        q.Enqueue(new Expectation(Expect.Bind));
        q.Enqueue(new Expectation(Expect.Describe));
        q.Enqueue(new Expectation(Expect.Execute));
        q.Enqueue(new Expectation(Expect.Sync));
        foreach (char t in "12tTDDC") // ParseComplete, BindComplete, ParameterDescription, RowDescription, rows, CommandComplete
        {
            Assert.Equal(ResponseAction.Forward, q.OnBackendMessage((byte)t));
        }

        Assert.Equal(1, q.Count);
        q.OnBackendMessage((byte)'Z');
        Assert.Equal(0, q.Count);
    }

    [Fact]
    public void InjectedParse_ReplyIsSwallowed_NoticesStillForwarded()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Parse, Swallow: true, Statement: PreparedStatement.FromParseTail([0, 0, 0])));
        q.Enqueue(new Expectation(Expect.Bind));
        Assert.Equal(ResponseAction.Forward, q.OnBackendMessage((byte)'N'));
        Assert.Equal(ResponseAction.Swallow, q.OnBackendMessage((byte)'1'));
        Assert.Equal(ResponseAction.Forward, q.OnBackendMessage((byte)'2'));
        Assert.Equal(0, q.Count);
    }

    [Fact]
    public void Error_DropsEverythingUpToTheNextSync_SyntheticsIncluded()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Parse, Statement: PreparedStatement.FromParseTail([0, 0, 0]), ClientName: "s1"u8.ToArray()));
        q.Enqueue(new Expectation(Expect.Synthetic, Synthetic: [(byte)'1', 0, 0, 0, 4], ClientName: "s2"u8.ToArray()));
        q.Enqueue(new Expectation(Expect.Bind));
        q.Enqueue(new Expectation(Expect.Sync));
        q.Enqueue(new Expectation(Expect.Parse)); // next batch, after the Sync
        q.Enqueue(new Expectation(Expect.Sync));

        Assert.Equal(ResponseAction.Forward, q.OnBackendMessage((byte)'E'));
        var dropped = new List<string>();
        while (q.TryTakeDropped(out Expectation d))
        {
            dropped.Add(System.Text.Encoding.ASCII.GetString(d.ClientName!));
        }

        Assert.Equal(["s2", "s1"], dropped); // what carries bookkeeping to undo; the Bind carries none
        Assert.False(q.TryTakeSynthetic(out _));
        q.OnBackendMessage((byte)'Z');
        Assert.Equal(2, q.Count); // the next batch is untouched
        q.OnBackendMessage((byte)'1');
        q.OnBackendMessage((byte)'Z');
        Assert.Equal(0, q.Count);
    }

    [Fact]
    public void ErrorInsideASimpleQuery_DoesNotEndIt()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Query));
        q.Enqueue(new Expectation(Expect.Query));
        q.OnBackendMessage((byte)'E');
        Assert.Equal(2, q.Count);
        q.OnBackendMessage((byte)'Z');
        Assert.Equal(1, q.Count);
    }

    [Fact]
    public void Synthetic_IsReleasedOnlyAtTheHead()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Bind));
        q.Enqueue(new Expectation(Expect.Synthetic, Synthetic: [1]));
        Assert.False(q.TryTakeSynthetic(out _));
        q.OnBackendMessage((byte)'2');
        Assert.True(q.TryTakeSynthetic(out byte[] bytes));
        Assert.Equal([1], bytes);
    }

    [Fact]
    public void Copy_RepliesBelongToTheirExecute()
    {
        var q = new ResponseQueue();
        q.Enqueue(new Expectation(Expect.Execute));
        q.Enqueue(new Expectation(Expect.Sync));
        foreach (char t in "Gddd") // CopyInResponse, then the client's data flows the other way
        {
            q.OnBackendMessage((byte)t);
        }

        Assert.Equal(2, q.Count);
        q.OnBackendMessage((byte)'C');
        Assert.Equal(1, q.Count);
    }

    [Fact]
    public void Relay_BindOnABackendWithoutTheStatement_InjectsParse_AndSwallowsItsReply()
    {
        var mapper = new StatementMapper(new StatementRegistry(), 10);
        MessageRelayTests.Harness h = MessageRelayTests.Create(PoolMode.Transaction, mapper);
        byte[] tail = Segments.Hex("53454c454354203100 0000"); // "SELECT 1", 0 params
        Assert.True(mapper.TryRegister("s1"u8, tail, out PreparedStatement? statement, out _));
        string proxyName = statement.ProxyName;

        // B: portal "", statement "s1", no formats/params/result formats; then S
        var fromClient = new ReadOnlySequence<byte>(Segments.Hex("42 0000000e 00 733100 0000 0000 0000 53 00000004"));
        Assert.Equal(RelayStop.None, h.Relay.ForwardFromClient(ref fromClient, out _));
        h.Relay.ClientFlushed();
        Assert.True(fromClient.IsEmpty);
        byte[] sent = Segments.Drain(h.ToBackend);
        byte[] name = System.Text.Encoding.ASCII.GetBytes(proxyName);
        byte[] expectedParse = [(byte)'P', .. BigEndian(4 + name.Length + 1 + 9 + 2), .. name, 0, .. tail];
        byte[] expectedBind = [(byte)'B', .. BigEndian(4 + 1 + name.Length + 1 + 6), 0, .. name, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal([.. expectedParse, .. expectedBind, (byte)'S', 0, 0, 0, 4], sent);
        Assert.True(h.Backend.Session.Statements.Touch(statement));

        // ParseComplete (swallowed), BindComplete, ReadyForQuery 'I' → released
        var reply = new ReadOnlySequence<byte>(Segments.Hex("31 00000004 32 00000004 5a 00000005 49"));
        Assert.Equal(RelayStop.Released, h.Relay.ForwardFromBackend(h.Backend, ref reply));
        Assert.Equal(Segments.Hex("32 00000004 5a 00000005 49"), Segments.Drain(h.ToClient));
    }

    private static byte[] BigEndian(int value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];
}
