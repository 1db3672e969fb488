using System.Net;
using System.Net.Sockets;

namespace PgProxy.Transport;

/// <summary>
/// A listening socket on a poll loop: when connections are pending, the loop's thread takes them all with
/// <c>accept4</c> and hands each, as a <see cref="PollSocket"/>, to the callback, which runs the connection's code up
/// to its first wait; then the socket is added to its own loop. Binding is .NET's
/// (<see cref="Socket"/>: address families, dual mode); no .NET async operation ever runs on it.
/// </summary>
public sealed class PollListener : IPollTarget, IDisposable
{
    private static readonly TimeSpan s_retryDelay = TimeSpan.FromMilliseconds(100);

    private readonly Socket _socket;
    private readonly Action<PollSocket> _accepted;
    private readonly Action<SocketError> _failed;
    private readonly PollLoop _loop;
    private readonly TimeSpan _handOffAfter;
    private readonly Lock _acceptLock = new();
    private Timer? _retry;
    private volatile bool _stopped;

    private PollListener(Socket socket, Action<PollSocket> accepted, Action<SocketError> failed, TimeSpan handOffAfter)
    {
        _socket = socket;
        _accepted = accepted;
        _failed = failed;
        _handOffAfter = handOffAfter;
        _loop = PollGroup.Register(socket.SafeHandle, this, writable: false);
    }

    /// <summary>The bound endpoint (port 0 resolved).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <inheritdoc />
    ulong IPollTarget.PollToken { get; set; }

    /// <summary>
    /// How old an accepted connection is when it leaves the accepting loop for its own (<see cref="PollSocket.Accepted"/>):
    /// long enough for a connect, a login, a transaction or a few and a logout (a serverless function's whole
    /// connection, or <c>pgbench -C</c>'s), short enough that the clients that stay spread over the loops soon.
    /// </summary>
    public static readonly TimeSpan DefaultHandOffAfter = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Binds and listens (throws <see cref="SocketException"/> when it cannot), then accepts on a poll loop:
    /// <paramref name="accepted"/> runs on that loop's thread for each new connection, <paramref name="failed"/> when
    /// accepting fails for a reason other than a peer that left (out of descriptors: retried after 100 ms). A
    /// connection moves to its own loop once <paramref name="handOffAfter"/> old (default <see cref="DefaultHandOffAfter"/>).
    /// </summary>
    public static PollListener Start(IPEndPoint endpoint, Action<PollSocket> accepted, Action<SocketError> failed, TimeSpan? handOffAfter = null)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            // SO_REUSEADDR alone, so that a restarted proxy can bind while its old connections sit in TIME_WAIT.
            // Not .NET's ReuseAddress option: on Linux it sets SO_REUSEPORT as well, and then a second PgProxy (or
            // anything else) started on the same port binds without an error and silently takes half the logins.
            socket.SetRawSocketOption(LinuxNative.SolSocket, LinuxNative.SoReuseAddr, BitConverter.GetBytes(1));
            // A connection is handed to accept() once its first bytes are there (a PostgreSQL client always speaks
            // first), so the wake-up that accepts it also reads its SSLRequest or startup packet, where otherwise a
            // second wake-up came for them. After a second without bytes it is accepted anyway, so a silent client
            // still meets client_login_timeout, a second later. PgBouncer's tcp_defer_accept, whose default is 45 s.
            socket.SetRawSocketOption(LinuxNative.IpProtoTcp, LinuxNative.TcpDeferAccept, BitConverter.GetBytes(1));
            // Accepted sockets inherit TCP_NODELAY from the listener: no setsockopt per login.
            socket.NoDelay = true;
            socket.Bind(endpoint);
            socket.Listen(4096);
            socket.Blocking = false;
            var listener = new PollListener(socket, accepted, failed, handOffAfter ?? DefaultHandOffAfter);
            listener.AcceptPending(); // connections that came between listen() and the registration
            return listener;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    void IPollTarget.OnPollEvents(uint events) => AcceptPending();

    /// <summary>Accepts until none is pending (edge-triggered: the next event comes only for new connections).</summary>
    private void AcceptPending()
    {
        // One acceptor at a time: the loop and a retry timer must not both run the accepted callbacks.
        lock (_acceptLock)
        {
            while (!_stopped)
            {
                int fd;
                SocketError error;
                ulong peer;
                try
                {
                    fd = LinuxNative.Accept(_socket.SafeHandle, out error, out peer);
                }
                catch (ObjectDisposedException)
                {
                    return;
                }

                if (fd >= 0)
                {
                    PollSocket socket = PollSocket.Accepted(fd, _loop, _handOffAfter, peer);
                    // The new connection's code runs here up to its first wait (usually it reads the bytes already
                    // there), and only then is the socket added to its loop, which is woken for what comes next.
                    _accepted(socket);
                    SocketError added = socket.StartPolling();
                    if (added is not (SocketError.Success or SocketError.OperationAborted))
                    {
                        _failed(added);
                        socket.Dispose(); // its code, waiting, learns of the close from its next call
                    }

                    continue;
                }

                switch (error)
                {
                    case SocketError.WouldBlock:
                        return;
                    case SocketError.Interrupted or SocketError.ConnectionAborted or SocketError.ConnectionReset:
                        continue; // that peer left before we took it; take the next
                    case SocketError.OperationAborted or SocketError.InvalidArgument or SocketError.NotSocket:
                        return; // closed: stopping
                    default:
                        // Out of descriptors and the like: the pending connections stay queued, and no new edge may
                        // come for them, so try again shortly.
                        _failed(error);
                        _retry ??= new Timer(static s => ((PollListener)s!).AcceptPending(), this, Timeout.Infinite, Timeout.Infinite);
                        _retry.Change(s_retryDelay, Timeout.InfiniteTimeSpan);
                        return;
                }
            }
        }
    }

    /// <summary>Stops accepting and closes the listening socket.</summary>
    public void Dispose()
    {
        _stopped = true;
        _loop.Remove(this);
        lock (_acceptLock)
        {
            _retry?.Dispose();
        }

        _socket.Dispose();
    }
}
