using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Backend;

/// <summary>
/// One server connection: its pipes, the parameters the server reported, its real cancel key, its state, and what
/// clients left on its session. After login its pump (<c>BackendConnection.Pump.cs</c>) is the only reader of its socket.
/// </summary>
public sealed partial class BackendConnection
{
    private static long s_nextId;
    private readonly ConnectionContext _transport;
    private int _closed;

    internal BackendConnection(ConnectionContext transport, string host, int port, Pool pool)
    {
        Id = Interlocked.Increment(ref s_nextId);
        _transport = transport;
        Host = host;
        Port = port;
        Pool = pool;
        ServingThreadIndex = (transport as IServedOnThread)?.ServingThreadIndex ?? -1;
        CreatedAt = pool.Time.GetTimestamp();
        LastUsedAt = CreatedAt;
    }

    /// <summary>Process-unique id for logs.</summary>
    public long Id { get; }

    /// <summary>Backend host.</summary>
    public string Host { get; }

    /// <summary>Backend port.</summary>
    public int Port { get; }

    /// <summary>The pool this backend belongs to.</summary>
    public Pool Pool { get; }

    /// <summary>The socket thread that serves this backend for its whole life (<see cref="ServingThread"/>), or -1.</summary>
    internal int ServingThreadIndex { get; }

    /// <summary>The server's address (SHOW SERVERS).</summary>
    public System.Net.EndPoint? RemoteEndPoint => _transport.RemoteEndPoint;

    /// <summary>The proxy's end of the connection (SHOW SERVERS).</summary>
    public System.Net.EndPoint? LocalEndPoint => _transport.LocalEndPoint;

    /// <summary>How the proxy logged in to the server (trust, password, md5, SCRAM-SHA-256, SCRAM-SHA-256-PLUS), for the log.</summary>
    public string AuthMethod { get; internal set; } = "trust";

    /// <summary>The "Backend connected" log line's "(method, TLS version/cipher)".</summary>
    public string HowLoggedIn => PgProxy.Core.Tls.TlsPipe.WithTls(AuthMethod, _transport.Transport);

    /// <summary>SHOW SERVERS' tls column: "TLSv1.3/TLS_AES_256_GCM_SHA384", or "" for plaintext.</summary>
    public string Tls => PgProxy.Core.Tls.TlsPipe.Describe(_transport.Transport);

    /// <summary>Bytes from the backend (read by the login, then only by the pump).</summary>
    public PipeReader Input => _transport.Transport.Input;

    /// <summary>Bytes to the backend (written by whoever holds it: its client's relay, or the pump between links).</summary>
    public PipeWriter Output => _transport.Transport.Output;

    /// <summary>The server's real process id (BackendKeyData).</summary>
    public int ProcessId { get; internal set; }

    /// <summary>The server's real cancel secret (BackendKeyData).</summary>
    public int SecretKey { get; internal set; }

    /// <summary>ParameterStatus values as the server last reported them. Touched only by whoever holds the backend.</summary>
    public Dictionary<string, string> Parameters { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>What clients left on the server's session.</summary>
    public BackendSessionState Session { get; } = new();

    /// <summary>This backend's node in its pool's idle list, reused every time it goes idle.</summary>
    internal LinkedListNode<BackendConnection> IdleNode => _idleNode ??= new LinkedListNode<BackendConnection>(this);

    private LinkedListNode<BackendConnection>? _idleNode;

    /// <summary>Transaction status from the last ReadyForQuery.</summary>
    public TransactionStatus TransactionStatus { get; internal set; } = TransactionStatus.Idle;

    /// <summary>State; changed only by the pool (<see cref="Pool"/>'s Transition).</summary>
    public BackendState State { get; internal set; } = BackendState.Connecting;

    /// <summary>Timestamp (pool clock) after which the backend is closed instead of reused (server_lifetime less jitter).</summary>
    public long ExpiresAt { get; internal set; } = long.MaxValue;

    /// <summary>The pool's RECONNECT generation when this server joined it (an older one is closed when given back).</summary>
    internal int Generation { get; set; }

    /// <summary>Timestamp (pool clock) of creation.</summary>
    public long CreatedAt { get; }

    /// <summary>Timestamp (pool clock) of the last release to the pool.</summary>
    public long LastUsedAt { get; internal set; }

    /// <summary>True once <see cref="CloseAsync"/> ran (or the server was found gone).</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Records a ParameterStatus in the backend's view (a rare message: allocation is fine here).</summary>
    internal void RecordParameterStatus(in ReadOnlySequence<byte> body)
    {
        var reader = new PgSpanReader(body.IsSingleSegment ? body.FirstSpan : body.ToArray());
        if (reader.TryReadCString(out string name) && reader.TryReadCString(out string value))
        {
            Parameters[name] = value;
            Session.SyncedSettings = null;
        }
    }

    /// <summary>
    /// Sends Terminate (best effort) and closes the socket. Idempotent. A pump parked on the socket is woken and
    /// waited for first, so the socket is never closed under a pending read.
    /// </summary>
    public async ValueTask CloseAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _reading, 0, 0) != 0 && _pump is { } pump)
        {
            Input.CancelPendingRead();
            await pump.ConfigureAwait(false);
        }

        try
        {
            var b = new PgMessageBuilder(8);
            FrontendMessages.Terminate(b);
            b.FlushTo(Output);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await Output.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException || TransportErrors.IsTransportGone(ex))
        {
            // The socket may already be gone; closing is all that is left to do.
        }

        try
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            // Already torn down.
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"backend #{Id} ({Host}:{Port} pid {ProcessId})";
}
