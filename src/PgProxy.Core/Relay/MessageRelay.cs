using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Core.Prepared;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// One client's relay, alive from login to logout, like PgBouncer's sbuf pair: a backend is attached for a
/// transaction (transaction and statement mode) or for the session, then detached; nothing is created per link.
/// Two loops drive it, each the only reader of its socket: the client's session forwards client messages
/// (<see cref="ForwardFromClient"/>), and the attached backend's pump forwards replies (<see cref="ForwardFromBackend"/>).
/// Both read the 5-byte header, decide, and forward Length+1 bytes untouched, streaming messages larger than a read.
/// <para>
/// Every client request the backend answers gets an entry in a <see cref="ResponseQueue"/>, which is how the relay
/// knows when a transaction-mode link can end (ReadyForQuery idle, nothing outstanding, no unsynced extended
/// messages) and how replies stay in request order when the proxy injects requests (a Parse a backend lacks, an LRU
/// Close) or answers some itself (Parse of a statement the backend has, Close, 42P05).
/// </para>
/// <para>
/// The client's output has one writer at a time: the backend pump while a backend is attached (<see cref="ClientState.Active"/>,
/// until its detach is complete), the client's session otherwise. The state changes in <see cref="SetState"/>, which
/// keeps the pool's client counters.
/// </para>
/// </summary>
public sealed partial class MessageRelay
{
    /// <summary>Messages buffered for inspection are capped; larger ones are forwarded uninspected.</summary>
    public const int MaxInspectedBodyBytes = 64 * 1024;

    /// <summary>A Query or named Parse is buffered whole (up to this) to be read; a larger named Parse ends the client with 54000.</summary>
    public const int MaxParseBytes = 1024 * 1024;

    private static ReadOnlySpan<byte> Nul => [0];

    // The relay's lock is its own monitor (lock (this)): no lock object per client, which an idle client would keep
    // for nothing (40 B); the relay is never handed to code that could lock it for another purpose.
    private readonly PipeReader _clientInput;
    private readonly PipeWriter _clientOutput;
    private readonly PoolMode _mode;
    private StatementMapper? _statements; // the pool manager's shared empty one until the client names a statement
    private ResponseQueue _queue = new(); // a mutable struct: never readonly, never copied
    private readonly Pool _pool;
    private PgMessageBuilder? _scratch;
    private BackendConnection? _backend;
    private volatile ClientState _state = ClientState.Idle;
    private bool _detaching;
    private TaskCompletionSource? _detachWaiter; // made only when the session must wait for a pump to finish
    private bool _detachRequested;
    private bool _detachedQuiescent;

    // Client to backend.
    private bool _clientFlushPending; // bytes written to the backend that the session has not flushed yet
    private bool _wakePending;        // a reply the proxy owes is at the head of the queue: wake the pump after the flush
    private bool _releaseDeferred;    // the link could have ended but for an unflushed client write
    private long _clientRemaining;
    private bool _clientSkipping;
    private bool _extendedUnsynced;
    private bool _discardUntilSync;

    // Backend to client.
    private long _backendRemaining;
    private bool _backendSkipping;
    private bool _sawFatal;
    private long _busySince;
    private long _transactionSince; // when the transaction now running began (its first request); 0 between transactions
    private long _lastClientActivity;
    private int _backendLost;

    /// <summary>Creates a client's relay, counted in <paramref name="pool"/> as idle.</summary>
    /// <param name="clientInput">From the client (read only by its session; woken when the backend is lost).</param>
    /// <param name="clientOutput">To the client.</param>
    /// <param name="pool">The client's pool (its mode, and its client counters).</param>
    /// <param name="statements">The client's prepared statements (transaction/statement mode with max_prepared_statements &gt; 0), else null.</param>
    public MessageRelay(PipeReader clientInput, PipeWriter clientOutput, Pool pool, StatementMapper? statements)
    {
        _clientInput = clientInput;
        _clientOutput = clientOutput;
        _pool = pool;
        _mode = pool.Settings.Mode;
        _statements = _mode == PoolMode.Session ? null : statements;
        _lastClientActivity = pool.Time.GetTimestamp();
        pool.CountClient(ClientState.Idle, +1);
    }

    private MessageRelay()
    {
        _clientInput = null!;
        _clientOutput = null!;
        _pool = null!;
    }

    /// <summary>The client's named prepared statements the proxy maps (SHOW CLIENTS).</summary>
    internal int PreparedStatementCount => _statements?.Count ?? 0;

    /// <summary>A relay no client has: a marker for backends (see <see cref="BackendConnection"/>'s pump).</summary>
    internal static MessageRelay Sentinel() => new();

    /// <summary>The linked backend's server went away; its pump told the client. The session ends.</summary>
    public bool BackendLost => Volatile.Read(ref _backendLost) != 0;

    /// <summary>
    /// Called by the pump of a backend that went away while linked: the client gets the server's FATAL if it sent one
    /// (already forwarded), else 08006, and its session is woken to end.
    /// </summary>
    public async ValueTask OnBackendLostAsync()
    {
        if (!_sawFatal)
        {
            _pool.Stats.Error(SqlState.ConnectionFailure);
            var b = new PgMessageBuilder();
            Protocol.Backend.ErrorResponse.Fatal(SqlState.ConnectionFailure, "server closed the connection unexpectedly",
                hint: "the pooler lost its server connection; reconnect to continue").Write(b);
            b.FlushTo(_clientOutput);
            try
            {
                await _clientOutput.FlushAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (Infrastructure.TransportErrors.IsTransportGone(ex))
            {
                // The client is gone too.
            }
        }

        Volatile.Write(ref _backendLost, 1);
        _clientInput.CancelPendingRead(); // only the session reads it: the wake is its own
    }

    /// <summary>Where replies go.</summary>
    public PipeWriter ClientOutput => _clientOutput;

    /// <summary>The backend attached now; null between links.</summary>
    public BackendConnection? Backend => Volatile.Read(ref _backend);

    /// <summary>The client's state: idle (no backend), waiting (for one), active (a backend attached).</summary>
    public ClientState State => _state;

    /// <summary>The backend sent a FATAL error during this link (already forwarded to the client).</summary>
    public bool SawFatal => _sawFatal;

    /// <summary>Timestamp (of the relay's clock) of the client's last bytes (one per read batch).</summary>
    public long LastClientActivity => Volatile.Read(ref _lastClientActivity);

    /// <summary>Timestamp since which requests have been outstanding; 0 when none are.</summary>
    public long BusySince => Volatile.Read(ref _busySince);

    /// <summary>For tests: nothing is outstanding and no message is half-forwarded in either direction.</summary>
    internal bool IsQuiescent
    {
        get
        {
            lock (this)
            {
                return _queue.Count == 0 && !_extendedUnsynced && _backendRemaining == 0 && _clientRemaining == 0;
            }
        }
    }

    private bool ReleasesPerTransaction => _mode != PoolMode.Session;

    private PgMessageBuilder Scratch => _scratch ??= new PgMessageBuilder(64);

    /// <summary>The one place the client's state changes; keeps the pool's client counters.</summary>
    private void SetState(ClientState to)
    {
        ClientState from = _state;
        if (from == to)
        {
            return;
        }

        _state = to;
        _pool.CountClient(from, -1);
        _pool.CountClient(to, +1);
    }

    /// <summary>The session starts looking for a backend (client state Waiting).</summary>
    public void BeginLink()
    {
        lock (this)
        {
            SetState(ClientState.Waiting);
        }
    }

    /// <summary>No backend after all (the wait failed): the client is idle again.</summary>
    public void CancelLink()
    {
        lock (this)
        {
            if (_state == ClientState.Waiting)
            {
                SetState(ClientState.Idle);
            }
        }
    }

    /// <summary>Attaches a backend for a link; from now on its pump writes to the client's output.</summary>
    public void Attach(BackendConnection backend)
    {
        lock (this)
        {
            _queue.Clear();
            _clientRemaining = 0;
            _clientSkipping = false;
            _extendedUnsynced = false;
            _discardUntilSync = false;
            _backendRemaining = 0;
            _backendSkipping = false;
            _sawFatal = false;
            _clientFlushPending = false;
            _wakePending = false;
            _releaseDeferred = false;
            Volatile.Write(ref _busySince, 0);
            backend.Session.Statements.NextGeneration();
            Volatile.Write(ref _backend, backend);
            SetState(ClientState.Active);
        }
    }

    /// <summary>
    /// The backend pump ends the link at a boundary it chose: the client side stops forwarding at once (its next
    /// message needs a new link), and the pump may still write what it owes the client until <see cref="CompleteDetach"/>.
    /// Under the lock.
    /// </summary>
    private void BeginDetachLocked()
    {
        Volatile.Write(ref _backend, null);
        _detaching = true;
        _detachRequested = false;
    }

    /// <summary>
    /// The session ends the link from outside (the client left, a timeout): the attached backend's pump detaches it
    /// wherever the link stands, at its next read (<see cref="RelayStop.DetachRequested"/>). Returns the backend to wake,
    /// or null when none is attached. Then <see cref="WhenDetachedAsync"/> tells when the pump is done with the client.
    /// </summary>
    public BackendConnection? RequestDetach()
    {
        lock (this)
        {
            if (_backend is null)
            {
                return null;
            }

            _detachRequested = true;
            return _backend;
        }
    }

    /// <summary>Whether the link a requested detach ended was at a boundary: nothing outstanding, nothing half-forwarded, no FATAL seen.</summary>
    public bool DetachedAtBoundary => _detachedQuiescent;

    /// <summary>The pump's backend went away: detached at once, wherever the link stood.</summary>
    internal void DetachLost(BackendConnection backend)
    {
        lock (this)
        {
            if (ReferenceEquals(_backend, backend))
            {
                BeginDetachLocked();
            }
        }
    }

    /// <summary>
    /// The client's view of its session settings: what it was told at login, then whatever its backends reported
    /// (ParameterStatus forwarded during a link). Parameter sync brings each backend in line with it.
    /// </summary>
    public ClientSettings? View { get; set; }

    /// <summary>
    /// The pump wrote and flushed everything it owed the client: the session owns the client's output again. When
    /// <paramref name="backend"/> reported parameters during the link, the client's view follows (before the
    /// backend goes back, while its parameters are still this client's).
    /// </summary>
    public void CompleteDetach(BackendConnection? backend = null)
    {
        if (backend is not null && backend.Session.SyncedSettings is null && View is { } view)
        {
            View = _pool.Intern(view.With(backend.Parameters));
        }

        TaskCompletionSource? waiter;
        lock (this)
        {
            _detaching = false;
            Volatile.Write(ref _busySince, 0);
            if (_state == ClientState.Active)
            {
                SetState(ClientState.Idle);
            }

            waiter = _detachWaiter;
            _detachWaiter = null;
        }

        waiter?.SetResult();
    }

    /// <summary>
    /// Completes when no backend is attached and the last link's pump has finished writing to the client (at once,
    /// almost always, after a link ended by itself; after <see cref="RequestDetach"/>, at the pump's next look): only
    /// then may the session write to the client or attach another backend.
    /// </summary>
    public ValueTask WhenDetachedAsync()
    {
        lock (this)
        {
            if (!_detaching && _backend is null)
            {
                return ValueTask.CompletedTask;
            }

            _detachWaiter ??= new TaskCompletionSource();
            return new ValueTask(_detachWaiter.Task);
        }
    }

    /// <summary>The client is gone for good: its counters go.</summary>
    public void Close()
    {
        lock (this)
        {
            _pool.CountClient(_state, -1);
            _state = ClientState.Idle;
            _queue.Clear();
            ReleasePinLocked();
        }
    }

    private void UpdateBusyLocked()
    {
        long was = Volatile.Read(ref _busySince);
        long busy = _queue.Count > 0 ? was : 0;
        if (_queue.Count > 0 && busy == 0)
        {
            busy = _pool.Time.GetTimestamp();
            if (_transactionSince == 0)
            {
                _transactionSince = busy; // the first request since the last transaction ended starts the next one
            }
        }
        else if (busy == 0 && was != 0)
        {
            _pool.Stats.Busy(_pool.Time.GetTimestamp() - was);
        }

        Volatile.Write(ref _busySince, busy);
    }

    /// <summary>A backend's ReadyForQuery: one query done; with status idle, the transaction since the first request too.</summary>
    private void CountReadyForQuery(TransactionStatus status)
    {
        _pool.Stats.QueryDone();
        if (status == TransactionStatus.Idle && _transactionSince != 0)
        {
            _pool.Stats.TransactionDone(_pool.Time.GetTimestamp() - _transactionSince);
            _transactionSince = 0;
        }
    }

    private static void Copy(in ReadOnlySequence<byte> source, PipeWriter to)
    {
        foreach (ReadOnlyMemory<byte> segment in source)
        {
            to.Write(segment.Span);
        }
    }
}
