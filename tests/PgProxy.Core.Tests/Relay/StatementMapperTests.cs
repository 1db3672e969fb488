using System.Buffers;
using PgProxy.Core.Configuration;
using PgProxy.Core.Prepared;
using PgProxy.Core.Relay;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Relay;

/// <summary>The shared empty mapper a client starts with, and the mapper of its own it takes at its first name.</summary>
public sealed class StatementMapperTests
{
    [Fact]
    public void Empty_FindsForgetsAndClearsNothing_AndRefusesToRegister()
    {
        var empty = StatementMapper.Empty(new StatementRegistry(), 7);
        Assert.Equal(7, empty.MaxPerBackend);
        Assert.False(empty.TryGet("s1"u8, out _));
        Assert.False(empty.Forget("s1"u8));
        empty.Clear();
        Assert.Throws<InvalidOperationException>(() => empty.TryRegister("s1"u8, [0, 0, 0], out _, out _));
        Assert.Throws<InvalidOperationException>(() => empty.RegisterSql("s1", "AS SELECT 1"u8, out _));

        StatementMapper own = empty.Own();
        Assert.NotSame(empty, own);
        Assert.Equal(7, own.MaxPerBackend);
        Assert.Same(own, own.Own());
        Assert.True(own.TryRegister("s1"u8, Segments.Hex("53454c454354203100 0000"), out _, out _));
        Assert.Equal(1, own.Count);
        Assert.Equal(0, empty.Count);
    }

    [Fact]
    public void Relay_FirstNamedParse_TakesAMapperOfItsOwn_TheSharedOneStaysEmpty()
    {
        var empty = StatementMapper.Empty(new StatementRegistry(), 10);
        MessageRelayTests.Harness a = MessageRelayTests.Create(PoolMode.Transaction, empty);
        MessageRelayTests.Harness b = MessageRelayTests.Create(PoolMode.Transaction, empty);

        // P: statement "s1", "SELECT 1", no parameter types; then S
        var fromClient = new ReadOnlySequence<byte>(Segments.Hex("50 00000012 733100 53454c454354203100 0000 53 00000004"));
        Assert.Equal(RelayStop.None, a.Relay.ForwardFromClient(ref fromClient, out _));
        Assert.True(fromClient.IsEmpty);

        Assert.Equal(1, a.Relay.PreparedStatementCount);
        Assert.Equal(0, b.Relay.PreparedStatementCount);
        Assert.Equal(0, empty.Count);
        Assert.False(empty.TryGet("s1"u8, out _));
    }
}
