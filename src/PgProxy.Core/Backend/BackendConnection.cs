using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Pooling;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Backend;

/// <summary>One server connection: its pipes, the parameters the server reported, its real cancel key and its state.</summary>
public sealed class BackendConnection
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
        CreatedAt = Stopwatch.GetTimestamp();
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

    /// <summary>Bytes from the backend.</summary>
    public PipeReader Input => _transport.Transport.Input;

    /// <summary>Bytes to the backend.</summary>
    public PipeWriter Output => _transport.Transport.Output;

    /// <summary>The server's real process id (BackendKeyData).</summary>
    public int ProcessId { get; internal set; }

    /// <summary>The server's real cancel secret (BackendKeyData).</summary>
    public int SecretKey { get; internal set; }

    /// <summary>ParameterStatus values as the server last reported them. Touched only by the task that owns the backend.</summary>
    public Dictionary<string, string> Parameters { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Values of non-reported parameters the proxy SET on this backend since its last reset.</summary>
    public Dictionary<string, string> AppliedSettings { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The <see cref="Client.ClientSettings.Key"/> (canonical text of a client's desired settings) this
    /// backend was last brought in line with; null once its settings may have changed (a ParameterStatus, a reset).
    /// A client whose key is equal skips parameter sync entirely: the common case costs one string comparison.
    /// </summary>
    public string? SyncedSettings { get; internal set; }

    /// <summary>This backend's node in its pool's idle list, reused every time it goes idle.</summary>
    internal LinkedListNode<BackendConnection> IdleNode => _idleNode ??= new LinkedListNode<BackendConnection>(this);

    private LinkedListNode<BackendConnection>? _idleNode;

    /// <summary>Protocol-level statements prepared on this backend by the proxy (transaction mode).</summary>
    public Prepared.BackendStatements Statements { get; } = new();

    /// <summary>Transaction status from the last ReadyForQuery ('I', 'T', 'E').</summary>
    public byte TransactionStatus { get; internal set; } = (byte)'I';

    /// <summary>State; changed only under the pool's lock.</summary>
    public BackendState State { get; internal set; } = BackendState.Connecting;

    /// <summary>Stopwatch timestamp after which the backend is closed instead of reused (server_lifetime less jitter).</summary>
    public long ExpiresAt { get; internal set; } = long.MaxValue;

    /// <summary>Stopwatch timestamp of creation.</summary>
    public long CreatedAt { get; }

    /// <summary>Stopwatch timestamp of the last release to the pool.</summary>
    public long LastUsedAt { get; internal set; }

    /// <summary>True once <see cref="CloseAsync"/> ran.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Sends Terminate (best effort) and closes the socket. Idempotent.</summary>
    public async ValueTask CloseAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        try
        {
            var b = new PgMessageBuilder(8);
            FrontendMessages.Terminate(b);
            b.FlushTo(Output);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await Output.FlushAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or ConnectionResetException)
        {
            // The socket may already be gone; closing is all that is left to do.
        }

        try
        {
            await Output.CompleteAsync().ConfigureAwait(false);
            await Input.CompleteAsync().ConfigureAwait(false);
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException or ConnectionResetException)
        {
            // Already torn down.
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"backend #{Id} ({Host}:{Port} pid {ProcessId})";
}
