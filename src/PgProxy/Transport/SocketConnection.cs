using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace PgProxy.Transport;

/// <summary>
/// A connected socket as a <see cref="ConnectionContext"/> whose pipes are the socket itself
/// (<see cref="SocketPipeReader"/>, <see cref="SocketPipeWriter"/>). Used for clients and backends alike.
/// <para>
/// Why not Kestrel's socket transport (which PgProxy used first): there every connection has a receive loop, a send
/// loop and two pipes between them and the session, so each relayed message crosses two pipe hand-offs, and an idle
/// connection keeps about 5 KB of transport state. Here a relayed message is one <c>recv</c>, a parse, one <c>send</c>,
/// on one thread, and an idle connection is the socket, one pending zero-byte receive and these three objects.
/// Measured with <c>bench/load/compare.sh</c> (see the README's Performance section).
/// </para>
/// </summary>
public sealed class SocketConnection : ConnectionContext, IDuplexPipe, PgProxy.Core.Infrastructure.ILoginHandOff,
    PgProxy.Core.Infrastructure.IServedOnThread
{
    private readonly ISocketConnectionOwner? _owner;
    /// <summary>How long disposing waits for bytes the socket had no room for (a final error to a slow client).</summary>
    private static readonly TimeSpan s_sendDrainTimeout = TimeSpan.FromSeconds(5);

    private readonly PollSocket _socket;
    private readonly SocketPipeReader _input;
    private readonly SocketPipeWriter _output;
    // What few connections use (a TLS stream over the socket, a cancellation token, features, items, an id set by
    // hand) is kept aside, made at the first use: an idle plaintext client keeps one null reference for all of it.
    private Extras? _extras;
    private int _closedFired;
    private int _disposed;
    private readonly long _number;
    private readonly char _prefix;

    /// <summary>Wraps a connected socket. The connection owns it; <paramref name="owner"/> hears when it is disposed.</summary>
    public SocketConnection(PollSocket socket, string id, ISocketConnectionOwner? owner = null)
        : this(socket, owner)
    {
        GetExtras().Id = id;
    }

    /// <summary>
    /// Wraps a connected socket whose <see cref="ConnectionId"/> is <paramref name="prefix"/> then <paramref name="number"/>
    /// ("c42"), written out only when asked for (a log line, SHOW CLIENTS): an idle client keeps no string for it.
    /// </summary>
    public SocketConnection(PollSocket socket, char prefix, long number, ISocketConnectionOwner? owner = null)
        : this(socket, owner)
    {
        _prefix = prefix;
        _number = number;
    }

    private SocketConnection(PollSocket socket, ISocketConnectionOwner? owner)
    {
        _socket = socket;
        _owner = owner;
        _input = new SocketPipeReader(socket, this);
        _output = new SocketPipeWriter(socket);
    }

    /// <summary>The owner's list of its connections runs through these (changed only by the owner, under its lock).</summary>
    internal SocketConnection? PreviousInOwner { get; set; }

    /// <inheritdoc cref="PreviousInOwner"/>
    internal SocketConnection? NextInOwner { get; set; }

    /// <summary>Asked of the kernel when needed (a log line): nothing uses it on the hot path, and an idle client keeps no copy.</summary>
    public override EndPoint? RemoteEndPoint
    {
        get => _socket.RemoteEndPoint;
        set => throw new NotSupportedException();
    }

    /// <summary>Asked of the kernel when needed, like <see cref="RemoteEndPoint"/>.</summary>
    public override EndPoint? LocalEndPoint
    {
        get => _socket.LocalEndPoint;
        set => throw new NotSupportedException();
    }

    /// <inheritdoc />
    public void HandOff() => _socket.HandOff();

    /// <inheritdoc />
    public int ServingThreadIndex => _socket.Loop?.Index ?? -1;

    /// <summary>The socket (tests look at its loop).</summary>
    internal PollSocket Socket => _socket;

    /// <summary>The socket's reader.</summary>
    public PipeReader Input => _input;

    /// <summary>The socket's writer.</summary>
    public PipeWriter Output => _output;

    /// <inheritdoc />
    public override string ConnectionId
    {
        get => Volatile.Read(ref _extras)?.Id ?? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{_prefix}{_number}");
        set => GetExtras().Id = value;
    }

    /// <inheritdoc />
    public override IFeatureCollection Features
    {
        get
        {
            Extras extras = GetExtras();
            return extras.Features ??= new FeatureCollection();
        }
    }

    /// <inheritdoc />
    public override IDictionary<object, object?> Items
    {
        get
        {
            Extras extras = GetExtras();
            return extras.Items ??= new Dictionary<object, object?>();
        }

        set => GetExtras().Items = value;
    }

    /// <summary>
    /// The socket's own pipes, or what a session put over them (TLS after an SSLRequest: its pipes read and write the
    /// socket's). Disposing the connection completes the socket's pipes and closes the socket either way.
    /// </summary>
    public override IDuplexPipe Transport
    {
        get => Volatile.Read(ref _extras)?.Transport ?? this;
        set
        {
            if (value != this)
            {
                GetExtras().Transport = value;
            }
            else if (Volatile.Read(ref _extras) is { } extras)
            {
                extras.Transport = null;
            }
        }
    }

    /// <summary>
    /// Cancelled when the peer closes or resets the connection (noticed whenever nothing unread is buffered, even while
    /// nobody reads), or when the connection is aborted or disposed.
    /// </summary>
    public override CancellationToken ConnectionClosed
    {
        get
        {
            Extras extras = GetExtras();
            CancellationTokenSource? cts = Volatile.Read(ref extras.Closed);
            if (cts is null)
            {
                var created = new CancellationTokenSource();
                cts = Interlocked.CompareExchange(ref extras.Closed, created, null) ?? created;
            }

            if (Volatile.Read(ref _closedFired) != 0)
            {
                cts.Cancel();
            }

            return cts.Token;
        }
        set => throw new NotSupportedException();
    }

    /// <inheritdoc />
    public override void Abort(ConnectionAbortedException abortReason)
    {
        _socket.ShutdownBoth();
        FireClosed();
    }

    /// <summary>Completes both pipes, gives unsent bytes a moment to leave, and closes the socket.</summary>
    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            await base.DisposeAsync().ConfigureAwait(false);
            return;
        }

        _input.Complete();
        _output.Complete();
        Task sent = _output.WhenSentAsync();
        if (!sent.IsCompleted)
        {
            await Task.WhenAny(sent, Task.Delay(s_sendDrainTimeout)).ConfigureAwait(false);
        }

        _socket.ShutdownBoth();
        _socket.Dispose();
        FireClosed();
        _owner?.Closed(this);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The reader saw the peer close or reset.</summary>
    internal void FireClosed()
    {
        if (Interlocked.Exchange(ref _closedFired, 1) == 0 && Volatile.Read(ref _extras) is { } extras && Volatile.Read(ref extras.Closed) is { } cts)
        {
            cts.Cancel();
        }
    }

    private Extras GetExtras()
    {
        Extras? extras = Volatile.Read(ref _extras);
        if (extras is null)
        {
            var created = new Extras();
            extras = Interlocked.CompareExchange(ref _extras, created, null) ?? created;
        }

        return extras;
    }

    /// <summary>The connection's rarely used state.</summary>
    private sealed class Extras
    {
        public CancellationTokenSource? Closed;
        public string? Id;
        public IFeatureCollection? Features;
        public IDictionary<object, object?>? Items;
        public IDuplexPipe? Transport;
    }
}

/// <summary>Keeps track of its connections: told when one is disposed.</summary>
public interface ISocketConnectionOwner
{
    /// <summary>The connection was disposed.</summary>
    void Closed(SocketConnection connection);
}
