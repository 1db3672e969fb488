using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using PgProxy.Transport;

namespace PgProxy.IntegrationTests;

/// <summary>The socket pipes on real loopback sockets (no database needed): pipe semantics, cancellation, idle memory.</summary>
public sealed class SocketTransportTests
{
    // Each direction: an accepted socket is watched for output only from its first send that would block, a
    // connecting one from the start.
    [Theory(Timeout = 30_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LargePayload_ArrivesWhole_AndInOrder_ThroughAFullSocket(bool acceptedSideWrites)
    {
        (SocketConnection connected, SocketConnection accepted) = await PairAsync();
        await using (connected)
        await using (accepted)
        {
            (SocketConnection a, SocketConnection b) = acceptedSideWrites ? (accepted, connected) : (connected, accepted);
            byte[] payload = RandomBytes(4 * 1024 * 1024, seed: 42);

            // Written in uneven pieces, flushed before anyone reads: the socket fills and the rest goes out in the background.
            Task writing = Task.Run(async () =>
            {
                for (int offset = 0; offset < payload.Length;)
                {
                    int n = Math.Min(37_000, payload.Length - offset);
                    payload.AsSpan(offset, n).CopyTo(a.Output.GetSpan(n));
                    a.Output.Advance(n);
                    FlushResult flush = await a.Output.FlushAsync();
                    Assert.False(flush.IsCompleted);
                    offset += n;
                }
            }, TestContext.Current.CancellationToken);
            await Task.Delay(200, TestContext.Current.CancellationToken);

            byte[] received = new byte[payload.Length];
            int total = 0;
            while (total < payload.Length)
            {
                ReadResult read = await b.Input.ReadAsync(TestContext.Current.CancellationToken);
                // Consume at most 5000 bytes per read, so unconsumed bytes stay buffered across reads.
                long take = Math.Min(5000, read.Buffer.Length);
                read.Buffer.Slice(0, take).CopyTo(received.AsSpan(total));
                total += (int)take;
                b.Input.AdvanceTo(read.Buffer.GetPosition(take), read.Buffer.End);
            }

            await writing;
            Assert.Equal(payload, received);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task WholeMessageLargerThanABuffer_IsBufferedUntilComplete()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            byte[] message = RandomBytes(300_000, seed: 7);
            Task sending = a.Output.WriteAsync(message, TestContext.Current.CancellationToken).AsTask();

            // Examine everything and consume nothing until the whole message is there (as the relay does with a Parse).
            while (true)
            {
                ReadResult read = await b.Input.ReadAsync(TestContext.Current.CancellationToken);
                if (read.Buffer.Length >= message.Length)
                {
                    Assert.Equal(message, read.Buffer.Slice(0, message.Length).ToArray());
                    b.Input.AdvanceTo(read.Buffer.GetPosition(message.Length));
                    break;
                }

                b.Input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }

            await sending;
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CancelPendingRead_WakesTheReader_AndLosesNothingSentAfterwards()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            for (int i = 0; i < 200; i++)
            {
                ValueTask<ReadResult> pending = b.Input.ReadAsync(TestContext.Current.CancellationToken);
                b.Input.CancelPendingRead();
                ReadResult canceled = await pending;
                Assert.True(canceled.IsCanceled);
                b.Input.AdvanceTo(canceled.Buffer.Start, canceled.Buffer.End);

                byte[] data = [(byte)i, (byte)(i + 1)];
                await a.Output.WriteAsync(data, TestContext.Current.CancellationToken);
                Assert.Equal(data, await ReadExactlyAsync(b.Input, 2));
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task BytesArrivingWhileAnEmptyReadIsHeld_AreNotTakenAsExamined()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            // An empty canceled read is held while bytes arrive (received ahead); advancing past the empty buffer must
            // leave them for the next read, which returns at once (the relay's release does exactly this).
            b.Input.CancelPendingRead();
            ReadResult canceled = await b.Input.ReadAsync(TestContext.Current.CancellationToken);
            Assert.True(canceled.IsCanceled && canceled.Buffer.IsEmpty);
            await a.Output.WriteAsync(new byte[] { 4, 2 }, TestContext.Current.CancellationToken);
            await Task.Delay(200, TestContext.Current.CancellationToken);
            b.Input.AdvanceTo(canceled.Buffer.Start, canceled.Buffer.End);
            ReadResult next = await b.Input.ReadAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
            Assert.Equal(new byte[] { 4, 2 }, next.Buffer.ToArray());
            b.Input.AdvanceTo(next.Buffer.End);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task CancelPendingRead_WithNoReadPending_CancelsTheNextReadOnly()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            await a.Output.WriteAsync(new byte[] { 1, 2, 3 }, TestContext.Current.CancellationToken);
            b.Input.CancelPendingRead();
            ReadResult first = await b.Input.ReadAsync(TestContext.Current.CancellationToken);
            Assert.True(first.IsCanceled);
            b.Input.AdvanceTo(first.Buffer.Start);
            Assert.Equal(new byte[] { 1, 2, 3 }, await ReadExactlyAsync(b.Input, 3));
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task ReadToken_CancelsTheRead_AndTheNextReadStillWorks()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await b.Input.ReadAsync(cts.Token));
            await a.Output.WriteAsync(new byte[] { 9 }, TestContext.Current.CancellationToken);
            Assert.Equal(new byte[] { 9 }, await ReadExactlyAsync(b.Input, 1));
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task HandOff_MovesAnAcceptedSocketToAnotherLoop_WithAParkedReadAndBytesInFlight_AndOnlyOnce()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        int moved = 0;
        for (int i = 0; i < 4 && (i < 2 || moved == 0); i++) // two rounds, two more if other tests took turns of the loops
        {
            (SocketConnection a, SocketConnection b) = await PairAsync();
            await using (a)
            await using (b)
            {
                PollSocket socket = b.Socket;
                PollLoop? before = socket.Loop;

                // A read parked on the accepting loop, woken by bytes that come after the move.
                ValueTask<ReadResult> parked = b.Input.ReadAsync(ct);
                Assert.False(parked.IsCompleted);
                if (i % 2 == 1)
                {
                    // The loops take turns (listeners, connects and hand-offs alike): a turn skipped in one of the two
                    // rounds makes one of the hand-offs land on another loop than its listener's when there are two.
                    PollGroup.Next();
                }

                b.HandOff();
                moved += socket.Loop == before ? 0 : 1;
                await a.Output.WriteAsync(new byte[] { 1, 2 }, ct);
                ReadResult read = await parked;
                Assert.Equal(new byte[] { 1, 2 }, read.Buffer.ToArray());
                b.Input.AdvanceTo(read.Buffer.End);

                // Moved once only; bytes sent before a read still arrive, and the other direction fills and drains.
                PollLoop? after = socket.Loop;
                b.HandOff();
                Assert.Same(after, socket.Loop);
                await a.Output.WriteAsync(new byte[] { 3 }, ct);
                Assert.Equal(new byte[] { 3 }, await ReadExactlyAsync(b.Input, 1));
                byte[] payload = RandomBytes(2 * 1024 * 1024, seed: i);
                Task<byte[]> receiving = ReadExactlyAsync(a.Input, payload.Length);
                await b.Output.WriteAsync(payload, ct);
                Assert.Equal(payload, await receiving);
            }
        }

        Assert.True(moved > 0 || PollGroup.Start(0) == 1, "no socket moved to another loop");
    }

    [Fact(Timeout = 30_000)]
    public async Task ASocketThread_KnowsItsIndex_AndAConnectionNamesTheThreadThatServesIt()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            // A parked read resumes on the thread of the loop that serves the socket; that thread knows its index.
            var seen = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            var reader = (PgProxy.Core.Infrastructure.IParkableReader)b.Input;
            Assert.False(reader.TryReadOrPark(_ => seen.SetResult(PgProxy.Core.Infrastructure.ServingThread.Current), seen, out _));
            await a.Output.WriteAsync(new byte[] { 1 }, ct);
            int current = await seen.Task.WaitAsync(ct);
            ReadResult read = reader.TakeParkedResult();
            b.Input.AdvanceTo(read.Buffer.End);

            Assert.True(current >= 0);
            Assert.Equal(b.Socket.Loop!.Index, current);
            Assert.Equal(current, b.ServingThreadIndex);
            Assert.Equal(-1, PgProxy.Core.Infrastructure.ServingThread.Current); // the test's own thread is no socket thread

            // A connection that moves names its new thread.
            b.HandOff();
            Assert.Equal(b.Socket.Loop!.Index, b.ServingThreadIndex);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task AnAcceptedSocket_StaysOnTheAcceptingLoopWhileYoung_AndMovesAtItsFirstWaitOnceOld()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        TimeSpan age = TimeSpan.FromMilliseconds(400);
        int moved = 0;
        for (int i = 0; i < 4 && (i < 2 || moved == 0); i++) // two rounds, two more if other tests took turns of the loops
        {
            var born = System.Diagnostics.Stopwatch.StartNew();
            (SocketConnection a, SocketConnection b) = await PairAsync(age);
            await using (a)
            await using (b)
            {
                PollSocket socket = b.Socket;
                PollLoop? accepting = socket.Loop;

                // Young: its waits (a parked read, then the wait after the bytes are taken) leave it where it was accepted.
                ValueTask<ReadResult> parked = b.Input.ReadAsync(ct);
                Assert.False(parked.IsCompleted);
                await a.Output.WriteAsync(new byte[] { 1, 2 }, ct);
                ReadResult read = await parked;
                Assert.Equal(new byte[] { 1, 2 }, read.Buffer.ToArray());
                b.Input.AdvanceTo(read.Buffer.End);
                if (born.Elapsed < age - TimeSpan.FromMilliseconds(50))
                {
                    Assert.True(socket.HandOffPending);
                    Assert.Same(accepting, socket.Loop);
                }

                // Old: the wait that follows its next bytes moves it (to the next loop in turn, which with two loops may be
                // the same one, so one round skips a turn); what is sent next reaches a read parked on the new loop.
                await Task.Delay(age + TimeSpan.FromMilliseconds(100), ct);
                if (i % 2 == 1)
                {
                    PollGroup.Next();
                }

                await a.Output.WriteAsync(new byte[] { 3 }, ct);
                Assert.Equal(new byte[] { 3 }, await ReadExactlyAsync(b.Input, 1));
                for (int w = 0; w < 200 && socket.HandOffPending; w++)
                {
                    await Task.Delay(10, ct); // the wait starts once the woken read's code has run
                }

                Assert.False(socket.HandOffPending);
                moved += socket.Loop == accepting ? 0 : 1;
                ValueTask<ReadResult> parkedOld = b.Input.ReadAsync(ct);
                Assert.False(parkedOld.IsCompleted);
                await a.Output.WriteAsync(new byte[] { 4 }, ct);
                read = await parkedOld;
                Assert.Equal(new byte[] { 4 }, read.Buffer.ToArray());
                b.Input.AdvanceTo(read.Buffer.End);
                byte[] payload = RandomBytes(1024 * 1024, seed: i);
                Task<byte[]> receiving = ReadExactlyAsync(a.Input, payload.Length);
                await b.Output.WriteAsync(payload, ct);
                Assert.Equal(payload, await receiving);
            }
        }

        Assert.True(moved > 0 || PollGroup.Start(0) == 1, "no socket moved to another loop");
    }

    [Fact(Timeout = 30_000)]
    public async Task PeerClose_CompletesTheRead_AndFiresConnectionClosed_EvenWhenNobodyReads()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (b)
        {
            await a.Output.WriteAsync(new byte[] { 5 }, TestContext.Current.CancellationToken);
            Assert.Equal(new byte[] { 5 }, await ReadExactlyAsync(b.Input, 1));

            // Nobody reads b now; closing a must still be noticed.
            var closed = new TaskCompletionSource();
            using CancellationTokenRegistration registration = b.ConnectionClosed.Register(() => closed.TrySetResult());
            await a.DisposeAsync();
            await closed.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

            ReadResult end = await b.Input.ReadAsync(TestContext.Current.CancellationToken);
            Assert.True(end.IsCompleted);
            Assert.True(end.Buffer.IsEmpty);
            b.Input.AdvanceTo(end.Buffer.End);

            // Writing to a closed peer reports completion (eventually: the first send may still be accepted locally).
            bool completed = false;
            for (int i = 0; i < 50 && !completed; i++)
            {
                FlushResult flush = await b.Output.WriteAsync(new byte[100], TestContext.Current.CancellationToken);
                completed = flush.IsCompleted;
                await Task.Delay(20, TestContext.Current.CancellationToken);
            }

            Assert.True(completed);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task IdleConnection_HoldsNoBuffers()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            await a.Output.WriteAsync(new byte[] { 1, 2, 3, 4 }, TestContext.Current.CancellationToken);
            Assert.Equal(new byte[] { 1, 2, 3, 4 }, await ReadExactlyAsync(b.Input, 4));
            Assert.False(((SocketPipeReader)b.Input).HoldsBuffer);
            Assert.False(((SocketPipeWriter)a.Output).HoldsBuffer);
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CancelPendingFlush_WakesAFlushBlockedOnAFullSocket_WithoutLosingBytes(bool acceptedSideWrites)
    {
        (SocketConnection connected, SocketConnection accepted) = await PairAsync();
        await using (connected)
        await using (accepted)
        {
            (SocketConnection a, SocketConnection b) = acceptedSideWrites ? (accepted, connected) : (connected, accepted);
            byte[] payload = RandomBytes(8 * 1024 * 1024, seed: 3);
            payload.CopyTo(a.Output.GetSpan(payload.Length));
            a.Output.Advance(payload.Length);
            ValueTask<FlushResult> flush = a.Output.FlushAsync(TestContext.Current.CancellationToken);
            Assert.False(flush.IsCompleted); // nobody reads b: 8 MB cannot fit in the socket buffers
            a.Output.CancelPendingFlush();
            FlushResult result = await flush;
            Assert.True(result.IsCanceled);

            // The bytes still arrive, whole and in order, followed by what is written next.
            Task<byte[]> receiving = ReadExactlyAsync(b.Input, payload.Length + 1);
            await a.Output.WriteAsync(new byte[] { 0xAB }, TestContext.Current.CancellationToken);
            byte[] received = await receiving;
            Assert.Equal(payload, received.AsSpan(0, payload.Length).ToArray());
            Assert.Equal(0xAB, received[^1]);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task ManyConnectionsAtOnce_AreAllAccepted_AndEachKeepsItsOwnBytes_AcrossClosedAndReusedSlots()
    {
        var accepted = new System.Collections.Concurrent.ConcurrentQueue<PollSocket>();
        using PollListener listener = PollListener.Start(new IPEndPoint(IPAddress.Loopback, 0), accepted.Enqueue, _ => { });
        int port = listener.LocalEndPoint.Port;
        const int count = 300;

        // Two rounds: the second round's sockets take the slots (and descriptor numbers) the first round closed.
        for (int round = 0; round < 2; round++)
        {
            PollSocket[] clients = await Task.WhenAll(Enumerable.Range(0, count)
                .Select(_ => PollSocket.ConnectAsync("127.0.0.1", port, TestContext.Current.CancellationToken)));
            var servers = new List<SocketConnection>();
            DateTime deadline = DateTime.UtcNow.AddSeconds(20);
            while (servers.Count < count && DateTime.UtcNow < deadline)
            {
                if (accepted.TryDequeue(out PollSocket? s))
                {
                    servers.Add(new SocketConnection(s, "s"));
                }
                else
                {
                    await Task.Delay(10, TestContext.Current.CancellationToken);
                }
            }

            Assert.Equal(count, servers.Count);
            SocketConnection[] connections = clients.Select(c => new SocketConnection(c, "c")).ToArray();

            // Each client sends its own local port; the accepted side must see exactly the port of its peer.
            foreach (SocketConnection c in connections)
            {
                ushort local = (ushort)((IPEndPoint)c.LocalEndPoint!).Port;
                await c.Output.WriteAsync(BitConverter.GetBytes(local), TestContext.Current.CancellationToken);
            }

            foreach (SocketConnection s in servers)
            {
                byte[] got = await ReadExactlyAsync(s.Input, 2);
                var peer = (IPEndPoint)s.RemoteEndPoint!;
                Assert.Equal(IPAddress.Loopback, peer.Address);
                Assert.Equal(peer.Port, BitConverter.ToUInt16(got));
            }

            foreach (SocketConnection c in connections.Concat(servers))
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task AConnection_IsAcceptedWithItsFirstBytes_OrAfterASecondWithout_AndHasNoDelay()
    {
        var accepted = new System.Collections.Concurrent.BlockingCollection<PollSocket>();
        using PollListener listener = PollListener.Start(new IPEndPoint(IPAddress.Loopback, 0), accepted.Add, _ => { });
        using var talker = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await talker.ConnectAsync(listener.LocalEndPoint, TestContext.Current.CancellationToken);
        await silent.ConnectAsync(listener.LocalEndPoint, TestContext.Current.CancellationToken);

        // Connected from the client's side, but nothing to read yet: not handed over (TCP_DEFER_ACCEPT).
        Assert.False(accepted.TryTake(out _, 300, TestContext.Current.CancellationToken));
        await talker.SendAsync(new byte[] { 7 }, TestContext.Current.CancellationToken);
        Assert.True(accepted.TryTake(out PollSocket? first, 5_000, TestContext.Current.CancellationToken));
        using (first)
        {
            Assert.Equal(talker.LocalEndPoint, first.RemoteEndPoint);
            Assert.Equal(1, LinuxNative.GetOption(first, LinuxNative.IpProtoTcp, LinuxNative.TcpNoDelay));
        }

        // A client that never speaks is handed over all the same, about a second later (then client_login_timeout runs).
        Assert.True(accepted.TryTake(out PollSocket? second, 10_000, TestContext.Current.CancellationToken));
        using (second)
        {
            Assert.Equal(silent.LocalEndPoint, second.RemoteEndPoint);
        }
    }

    [Theory(Timeout = 30_000)]
    [InlineData("127.0.0.1")] // the address accept4 gave, kept
    [InlineData("::1")] // asked of the kernel
    public async Task AnAcceptedSocket_KnowsItsPeer_UntilItIsClosed(string address)
    {
        IPAddress ip = IPAddress.Parse(address);
        var accepted = new System.Collections.Concurrent.BlockingCollection<PollSocket>();
        using PollListener listener = PollListener.Start(new IPEndPoint(ip, 0), accepted.Add, _ => { });
        using var client = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint, TestContext.Current.CancellationToken);
        await client.SendAsync(new byte[] { 7 }, TestContext.Current.CancellationToken);
        Assert.True(accepted.TryTake(out PollSocket? socket, 5_000, TestContext.Current.CancellationToken));
        Assert.Equal(client.LocalEndPoint, socket.RemoteEndPoint);
        Assert.Equal(listener.LocalEndPoint, socket.LocalEndPoint);
        socket.Dispose();
        Assert.Null(socket.RemoteEndPoint);
    }

    [Fact(Timeout = 30_000)]
    public async Task ConnectToAClosedPort_FailsWithConnectionRefused()
    {
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port; // bound, never listening: connects are refused
            SocketException ex = await Assert.ThrowsAsync<SocketException>(() =>
                PollSocket.ConnectAsync("127.0.0.1", port, TestContext.Current.CancellationToken));
            Assert.Equal(SocketError.ConnectionRefused, ex.SocketErrorCode);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task ASecondListenerOnTheSamePort_IsRefused_ButARestartBindsPastTimeWait()
    {
        var first = PollListener.Start(new IPEndPoint(IPAddress.Loopback, 0), s => s.Dispose(), _ => { });
        var endpoint = new IPEndPoint(IPAddress.Loopback, first.LocalEndPoint.Port);
        try
        {
            // A second PgProxy on the port, or another program asking for SO_REUSEPORT (.NET's ReuseAddress does):
            // both must fail as PgBouncer and PostgreSQL do, not share the port and split the logins.
            SocketException second = Assert.Throws<SocketException>(() => PollListener.Start(endpoint, s => s.Dispose(), _ => { }));
            Assert.Equal(SocketError.AddressAlreadyInUse, second.SocketErrorCode);
            using var other = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            other.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            Assert.Equal(SocketError.AddressAlreadyInUse, Assert.Throws<SocketException>(() => other.Bind(endpoint)).SocketErrorCode);

            // A connection the listener's side closed first leaves TIME_WAIT on the port.
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(endpoint, TestContext.Current.CancellationToken);
            Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None, TestContext.Current.CancellationToken));
        }
        finally
        {
            first.Dispose();
        }

        using PollListener restarted = PollListener.Start(endpoint, s => s.Dispose(), _ => { });
        Assert.Equal(endpoint.Port, restarted.LocalEndPoint.Port);
    }

    private static byte[] RandomBytes(int count, int seed)
    {
        byte[] bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count)
    {
        while (true)
        {
            ReadResult read = await reader.ReadAsync();
            if (read.Buffer.Length >= count)
            {
                byte[] result = read.Buffer.Slice(0, count).ToArray();
                reader.AdvanceTo(read.Buffer.GetPosition(count));
                return result;
            }

            Assert.False(read.IsCompleted, "the peer closed early");
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    /// <summary>Both ends through the proxy's own paths: <see cref="PollListener"/> accepts, <see cref="PollSocket.ConnectAsync"/> connects.</summary>
    // The accepted side moves to its own loop when handOffAfter old (by default, not during a test: HandOff says when).
    private static async Task<(SocketConnection, SocketConnection)> PairAsync(TimeSpan? handOffAfter = null)
    {
        var accepted = new TaskCompletionSource<PollSocket>(TaskCreationOptions.RunContinuationsAsynchronously);
        using PollListener listener = PollListener.Start(new IPEndPoint(IPAddress.Loopback, 0), s => accepted.TrySetResult(s),
            e => accepted.TrySetException(new SocketException((int)e)), handOffAfter ?? TimeSpan.FromHours(1));
        PollSocket client = await PollSocket.ConnectAsync("127.0.0.1", listener.LocalEndPoint.Port, TestContext.Current.CancellationToken);
        // A first byte, taken off before the pipes start: the listener hands a connection over with its first bytes.
        Assert.Equal(1, client.Send([0x5A], out _));
        PollSocket server = await accepted.Task.WaitAsync(TestContext.Current.CancellationToken);
        byte[] first = new byte[2];
        Assert.Equal(1, server.Receive(first, out _));
        Assert.Equal(0x5A, first[0]);
        return (new SocketConnection(client, "a"), new SocketConnection(server, 'c', 42));
    }

    [Fact]
    public async Task ConnectionId_FromPrefixAndNumber_WrittenOutWhenAsked_AndSettable()
    {
        (SocketConnection a, SocketConnection b) = await PairAsync();
        await using (a)
        await using (b)
        {
            Assert.Equal("a", a.ConnectionId);
            Assert.Equal("c42", b.ConnectionId);
            Assert.Equal("c42", b.ConnectionId);
            b.ConnectionId = "renamed";
            Assert.Equal("renamed", b.ConnectionId);
        }
    }
}
