using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PgProxy.Transport;

/// <summary>Hears, on the poll loop's thread, that a parked reader's socket became readable (or closed).</summary>
internal interface IPollReader
{
    /// <summary>The socket has bytes, an end or an error to receive; must not block.</summary>
    void OnReadable();
}

/// <summary>
/// A connected, non-blocking socket descriptor of the proxy's own, registered with one <see cref="PollLoop"/> at a
/// time (an accepted one moves once: <see cref="Accepted"/>). It is the whole of the per-connection socket state:
/// where .NET's <c>Socket</c> keeps about 950 bytes per waiting connection (the socket, its handle, its async context,
/// a reusable event-args object, a receive operation and their delegates), a waiting reader here is one flag in this
/// object.
/// <para>
/// Readiness is edge-triggered, so each direction keeps one small state: <c>None</c>, <c>Signaled</c> (an event came
/// while nobody waited) or <c>Waiting</c>. Only the waiting side moves None to Waiting and Signaled to None, only the
/// loop moves Waiting to None (and wakes the waiter) or None to Signaled, so an event that lands between a receive's
/// <c>EAGAIN</c> and the wait is never lost. Calls take the handle (a <see cref="SafeHandle"/>), so the descriptor is
/// closed only once no call on it runs: its number cannot be reused under a receive.
/// </para>
/// </summary>
public sealed class PollSocket : SafeHandle, IPollTarget
{
    private const int None = 0;
    private const int Signaled = 1;
    private const int Waiting = 2;

    private PollLoop? _loop;
    private IPollReader? _reader;
    private TaskCompletionSource? _writable;
    private int _readState;
    private int _writeState;
    // Guarded by the socket's own lock (rarely taken: adding, a hand-off, the first send that would block):
    private bool _polling; // added to _loop's epoll set
    private bool _watchingWritable; // output events wanted (from the start when connecting out, else at the first would-block)
    // Written under the lock, read without it (HandOffIfDue): an accepted socket not moved yet has the
    // Environment.TickCount64 from which a wait for input moves it; 0 once moved, and for a socket that connected out.
    private long _handOffDue;
    // An accepted IPv4 client's address and port (LinuxNative.PackIpv4), from accept4; 0: asked of the kernel when needed.
    private ulong _ipv4Peer;

    private PollSocket(int fd)
        : base(new IntPtr(-1), ownsHandle: true)
    {
        SetHandle(new IntPtr(fd));
    }

    /// <summary>The loop its events go to (or will, once added).</summary>
    internal PollLoop? Loop => _loop;

    /// <summary>Accepted and not moved to its own loop yet (the tests read it).</summary>
    internal bool HandOffPending => Volatile.Read(ref _handOffDue) != 0;

    /// <inheritdoc />
    public override bool IsInvalid => handle == new IntPtr(-1);

    /// <inheritdoc />
    ulong IPollTarget.PollToken { get; set; }

    /// <summary>
    /// Takes ownership of an accepted non-blocking descriptor. It is served on the <paramref name="accepting"/> loop
    /// while it is young, and moves to the next loop in turn at its first wait for input once it is
    /// <paramref name="handOffAfter"/> old (<see cref="HandOffIfDue"/>), or when <see cref="HandOff"/> says so (before
    /// a TLS handshake). A storm of logins then costs fewer wake-ups, since the accepting thread is awake for its
    /// accepts when the logins' packets come; a client that connects, runs a transaction and leaves (a serverless
    /// function's) never moves, so no second thread wakes for it; and the clients that stay still spread over every
    /// loop, each at its first wait past that age. Its events are delivered only from <see cref="StartPolling"/> on,
    /// which the acceptor calls once the connection's code has run up to its first wait on the accepting thread:
    /// added any earlier, a socket whose first bytes are already there would report them for nobody.
    /// </summary>
    internal static PollSocket Accepted(int fd, PollLoop accepting, TimeSpan handOffAfter, ulong ipv4Peer = 0) =>
        new(fd)
        {
            _loop = accepting,
            _handOffDue = Math.Max(1, Environment.TickCount64 + (long)handOffAfter.TotalMilliseconds),
            _ipv4Peer = ipv4Peer,
        };

    /// <summary>
    /// Called before each wait for input: moves the socket (<see cref="HandOff"/>) once it is old enough. The check is
    /// a field read and, while a move is pending, a read of the coarse clock.
    /// </summary>
    internal void HandOffIfDue()
    {
        long due = Volatile.Read(ref _handOffDue);
        if (due != 0 && Environment.TickCount64 >= due)
        {
            HandOff();
        }
    }

    /// <summary>
    /// Adds the socket to its loop: events from now on, and at once for what holds already (bytes to read, an end, and
    /// room to write if a writer waits). Called once.
    /// </summary>
    internal SocketError StartPolling()
    {
        lock (this)
        {
            return AddLocked();
        }
    }

    /// <summary>Adds the socket to <see cref="_loop"/> (under the socket's lock); OperationAborted if it was closed.</summary>
    private SocketError AddLocked()
    {
        try
        {
            SocketError error = _loop!.Add(this, this, _watchingWritable);
            _polling = error == SocketError.Success;
            return error;
        }
        catch (ObjectDisposedException)
        {
            _polling = false;
            return SocketError.OperationAborted;
        }
    }

    /// <summary>
    /// Moves an accepted socket from the loop that accepted it to the next loop in turn (once; later calls do
    /// nothing). Its events are then delivered there: the kernel reports at once what holds already, and an event
    /// the old loop took before the move is dropped there (its token is no longer the socket's), so a parked reader
    /// is woken exactly as if the socket had always been on the new loop. Any thread may call it.
    /// </summary>
    internal void HandOff()
    {
        lock (this)
        {
            if (_handOffDue == 0)
            {
                return;
            }

            Volatile.Write(ref _handOffDue, 0);
            PollLoop next = PollGroup.Next();
            if (next == _loop)
            {
                return;
            }

            if (!_polling)
            {
                _loop = next; // not added yet (its first code, still on the accepting thread, asked): StartPolling adds it there
                return;
            }

            try
            {
                _loop!.Delete(this, this);
            }
            catch (ObjectDisposedException)
            {
                return; // closed meanwhile: its close took it out of the old loop
            }

            _loop = next;
            if (AddLocked() != SocketError.Success && !IsClosed)
            {
                Dispose(); // no loop would tell its reader anything: end the connection, as a failed accept does
            }
        }
    }

    /// <summary>
    /// Connects to each address in turn until one accepts (host names are resolved first); throws the last
    /// <see cref="SocketException"/>, or <see cref="OperationCanceledException"/> when <paramref name="ct"/> fires.
    /// </summary>
    public static async Task<PollSocket> ConnectAsync(string host, int port, CancellationToken ct)
    {
        IPAddress[] addresses = IPAddress.TryParse(host, out IPAddress? literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, ct).ConfigureAwait(false);
        SocketException? last = null;
        foreach (IPAddress address in addresses)
        {
            SocketAddress target = new IPEndPoint(address, port).Serialize();
            int fd = LinuxNative.Socket(address.AddressFamily == AddressFamily.InterNetworkV6 ? 10 : 2,
                LinuxNative.SockStream | LinuxNative.SockNonBlock | LinuxNative.SockCloexec, 0);
            if (fd < 0)
            {
                throw new SocketException((int)LinuxNative.LastError());
            }

            // Watched for output from the start: the connect completes as writable.
            var socket = new PollSocket(fd) { _loop = PollGroup.Next(), _watchingWritable = true };
            try
            {
                SocketError added = socket.StartPolling();
                if (added != SocketError.Success)
                {
                    throw new SocketException((int)added);
                }

                socket.ResetWritable();
                SocketError error = LinuxNative.StartConnect(socket, target.Buffer.Span[..target.Size]);
                if (error == SocketError.WouldBlock)
                {
                    await socket.WaitWritableAsync().WaitAsync(ct).ConfigureAwait(false);
                    error = LinuxNative.PendingError(socket);
                }

                if (error == SocketError.Success)
                {
                    LinuxNative.SetOption(socket, LinuxNative.IpProtoTcp, LinuxNative.TcpNoDelay, 1);
                    LinuxNative.SetOption(socket, LinuxNative.SolSocket, LinuxNative.SoKeepAlive, 1);
                    return socket;
                }

                last = new SocketException((int)error);
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            socket.Dispose();
        }

        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    /// <summary>
    /// The peer's address: an accepted IPv4 client's as accept4 gave it (8 bytes kept, which spares the login's log line
    /// a <c>getpeername</c> call), any other's asked of the kernel; null when the socket is gone.
    /// </summary>
    public EndPoint? RemoteEndPoint => _ipv4Peer != 0 ? (IsClosed ? null : LinuxNative.UnpackIpv4(_ipv4Peer)) : EndPointOf(peer: true);

    /// <summary>The socket's own address, asked of the kernel; null when the socket is gone.</summary>
    public EndPoint? LocalEndPoint => EndPointOf(peer: false);

    private EndPoint? EndPointOf(bool peer)
    {
        Span<byte> raw = stackalloc byte[128];
        int length;
        try
        {
            length = LinuxNative.Name(this, peer, raw);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }

        if (length < 2)
        {
            return null;
        }

        AddressFamily family = BitConverter.ToUInt16(raw) switch
        {
            2 => AddressFamily.InterNetwork,
            10 => AddressFamily.InterNetworkV6,
            _ => AddressFamily.Unknown,
        };
        if (family == AddressFamily.Unknown)
        {
            return null;
        }

        var address = new SocketAddress(family, length);
        raw[..length].CopyTo(address.Buffer.Span);
        return new IPEndPoint(IPAddress.Any, 0).Create(address);
    }

    /// <summary>One non-blocking receive: bytes received (0 at the end), or -1 with the error (WouldBlock: wait).</summary>
    internal int Receive(Span<byte> buffer, out SocketError error)
    {
        // A readiness signal is about bytes this receive will see: forget it first, so only later events count.
        if (Volatile.Read(ref _readState) == Signaled)
        {
            Interlocked.CompareExchange(ref _readState, None, Signaled);
        }

        return LinuxNative.Receive(this, buffer, out error);
    }

    /// <summary>One non-blocking send: bytes sent, or -1 with the error (WouldBlock: wait until writable).</summary>
    internal int Send(ReadOnlySpan<byte> buffer, out SocketError error) => LinuxNative.Send(this, buffer, out error);

    /// <summary>
    /// After a receive found nothing: parks <paramref name="reader"/> until the socket is readable (true), or returns
    /// false when it became readable meanwhile (receive again now).
    /// </summary>
    internal bool ParkReader(IPollReader reader)
    {
        _reader = reader;
        if (Interlocked.CompareExchange(ref _readState, Waiting, None) == None)
        {
            return true;
        }

        Volatile.Write(ref _readState, None);
        return false;
    }

    /// <summary>Forgets an old writable signal; call before the send whose <c>EAGAIN</c> would lead to <see cref="WaitWritableAsync"/>.</summary>
    internal void ResetWritable()
    {
        if (Volatile.Read(ref _writeState) == Signaled)
        {
            Interlocked.CompareExchange(ref _writeState, None, Signaled);
        }
    }

    /// <summary>Completes when the socket is writable (or failed, or closed): the slow path of a send that would block.</summary>
    internal Task WaitWritableAsync()
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _writable, waiter);
        if (Interlocked.CompareExchange(ref _writeState, Waiting, None) == None)
        {
            if (IsClosed || !WatchWritable())
            {
                WakeWriter(); // the next send reports why
            }

            return waiter.Task;
        }

        Volatile.Write(ref _writable, null);
        Volatile.Write(ref _writeState, None);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Asks the loop for output events from now on, if not asked yet. The kernel reports at once a socket that is
    /// writable already, so the waiter set up before this call is woken either way. False if it failed.
    /// </summary>
    private bool WatchWritable()
    {
        if (Volatile.Read(ref _watchingWritable))
        {
            return true; // set once, never cleared: no lock after the first time
        }

        lock (this)
        {
            if (_watchingWritable)
            {
                return true;
            }

            _watchingWritable = true;
            if (!_polling)
            {
                return true; // not added yet (an accepted socket whose first code still runs): added with output events
            }

            try
            {
                return _loop!.WatchWritable(this, this) == SocketError.Success;
            }
            catch (ObjectDisposedException)
            {
                return false;
            }
        }
    }

    /// <summary>Shuts both directions down (the peer sees the end; a parked reader wakes to it).</summary>
    internal void ShutdownBoth()
    {
        try
        {
            LinuxNative.ShutdownBoth(this);
        }
        catch (ObjectDisposedException)
        {
            // Closed already.
        }
    }

    void IPollTarget.OnPollEvents(uint events)
    {
        if ((events & (LinuxNative.EpollIn | LinuxNative.EpollErr | LinuxNative.EpollHup | LinuxNative.EpollRdHup)) != 0)
        {
            SignalRead();
        }

        if ((events & (LinuxNative.EpollOut | LinuxNative.EpollErr | LinuxNative.EpollHup)) != 0)
        {
            SignalWrite();
        }
    }

    private void SignalRead()
    {
        if (Signal(ref _readState))
        {
            _reader!.OnReadable();
        }
    }

    private void SignalWrite()
    {
        if (Signal(ref _writeState))
        {
            WakeWriter();
        }
    }

    /// <summary>The loop's half of a direction's state: Waiting becomes None (true: wake the waiter), None becomes Signaled.</summary>
    private static bool Signal(ref int state)
    {
        while (true)
        {
            int current = Volatile.Read(ref state);
            if (current == Signaled)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref state, current == Waiting ? None : Signaled, current) == current)
            {
                return current == Waiting;
            }
        }
    }

    private void WakeWriter() => Interlocked.Exchange(ref _writable, null)?.TrySetResult();

    /// <summary>Runs once no call holds the handle: forgets the slot, closes the descriptor, wakes whoever waits.</summary>
    protected override bool ReleaseHandle()
    {
        _loop?.Remove(this);
        bool closed = LinuxNative.Close((int)handle) == 0;
        // Closing took the descriptor out of the epoll set, so no event will come: a parked reader or writer learns
        // of the close from its next call, which throws ObjectDisposedException.
        SignalRead();
        SignalWrite();
        return closed;
    }
}
