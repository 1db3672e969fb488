using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Prepared;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Relays one client and its linked backend, like PgBouncer's sbuf: each direction is one long-lived loop that reads
/// the 5-byte header, decides, and forwards Length+1 bytes untouched, streaming messages larger than a read. One flush
/// per read batch; each loop is the only writer of its output pipe.
/// <para>
/// Every client request the backend answers gets an entry in a <see cref="ResponseQueue"/>, which is how the relay
/// knows when a transaction-mode link can be released (ReadyForQuery idle, nothing outstanding, no unsynced extended
/// messages) and how replies stay in request order when the proxy injects requests (a Parse a backend lacks, an LRU
/// Close) or answers some itself (Parse of a statement the backend has, Close, DEALLOCATE, 42P05).
/// </para>
/// <para>
/// Inspected from the client: X, Q/F/S, and in transaction mode with prepared statements P/B/D/C with a statement
/// name. From the backend: the type byte of every message (queue matching), and the bodies of Z, S and E.
/// </para>
/// </summary>
public sealed partial class SessionRelay
{
    /// <summary>Messages buffered for inspection are capped; larger ones are forwarded uninspected.</summary>
    public const int MaxInspectedBodyBytes = 64 * 1024;

    /// <summary>A named Parse must be buffered whole to be mapped; larger ones end the client with 54000.</summary>
    public const int MaxParseBytes = 1024 * 1024;

    private static readonly byte[] s_parseComplete = [(byte)'1', 0, 0, 0, 4];
    private static readonly byte[] s_closeComplete = [(byte)'3', 0, 0, 0, 4];

    private static ReadOnlySpan<byte> Nul => [0];

    private readonly Lock _lock = new();
    private readonly PipeReader _clientInput;
    private readonly PipeWriter _clientOutput;
    private readonly BackendConnection _backend;
    private readonly PoolMode _mode;
    private readonly Dictionary<string, PreparedStatement>? _statements;
    private readonly Dictionary<string, PreparedStatement>.AlternateLookup<ReadOnlySpan<char>> _statementLookup;
    private readonly int _maxPrepared;
    private readonly ResponseQueue _queue = new();
    private readonly PgMessageBuilder _scratch = new(64);
    private bool _extendedUnsynced;
    private bool _discardUntilSync;
    private bool _released;
    private volatile bool _stopping;
    private long _clientRemaining;
    private bool _clientSkipping;
    private long _backendRemaining;
    private bool _backendSkipping;
    private bool _sawFatal;

    /// <summary>Creates a relay in session mode without statement mapping.</summary>
    public SessionRelay(PipeReader clientInput, PipeWriter clientOutput, BackendConnection backend)
        : this(clientInput, clientOutput, backend, PoolMode.Session, null, 0)
    {
    }

    /// <summary>Creates a relay.</summary>
    /// <param name="clientInput">Client bytes.</param>
    /// <param name="clientOutput">To the client.</param>
    /// <param name="backend">The linked backend.</param>
    /// <param name="mode">Pool mode: decides when the link is released.</param>
    /// <param name="statements">The client's prepared statements (transaction/statement mode with max_prepared_statements &gt; 0), else null.</param>
    /// <param name="maxPrepared">max_prepared_statements per backend.</param>
    public SessionRelay(PipeReader clientInput, PipeWriter clientOutput, BackendConnection backend, PoolMode mode,
        Dictionary<string, PreparedStatement>? statements, int maxPrepared)
    {
        _clientInput = clientInput;
        _clientOutput = clientOutput;
        _backend = backend;
        _mode = mode;
        _statements = mode == PoolMode.Session ? null : statements;
        _statementLookup = _statements?.GetAlternateLookup<ReadOnlySpan<char>>() ?? default;
        _maxPrepared = maxPrepared;
        _queue.Dropped = OnDropped;
    }

    /// <summary>The backend sent a FATAL error (already forwarded to the client).</summary>
    public bool SawFatal => _sawFatal;

    /// <summary>Transaction mode: the client ran something that may leave session state (SET, LISTEN, temp tables...).</summary>
    public bool NeedsReset { get; private set; }

    /// <summary>Nothing is outstanding and no message is half-forwarded in either direction.</summary>
    public bool IsQuiescent
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count == 0 && !_extendedUnsynced && _backendRemaining == 0 && _clientRemaining == 0;
            }
        }
    }

    /// <summary>Stopwatch timestamp of the client's last bytes (one read per batch).</summary>
    public long LastClientActivity { get; private set; } = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>Stopwatch timestamp since which requests have been outstanding; 0 when none are.</summary>
    public long BusySince => Volatile.Read(ref _busySince);

    private long _busySince;

    /// <summary>Stops both directions from outside (timeouts); the session then decides what the client hears.</summary>
    public void Stop()
    {
        _stopping = true;
        _clientInput.CancelPendingRead();
        _backend.Input.CancelPendingRead();
    }

    private bool ReleasesPerTransaction => _mode != PoolMode.Session;

    /// <summary>Runs both directions until one stops, then stops the other; returns the first reason.</summary>
    public async Task<RelayStop> RunAsync()
    {
        Task<RelayStop> fromClient = PumpAsync(_clientInput, _backend.Output, fromClient: true);
        Task<RelayStop> fromBackend = PumpAsync(_backend.Input, _clientOutput, fromClient: false);
        Task<RelayStop> first = await Task.WhenAny(fromClient, fromBackend).ConfigureAwait(false);
        _stopping = true;
        // Pipe cancellations are sticky and these pipes outlive the link: cancel only what must stop, and every
        // reader treats a cancellation it did not ask for as spurious.
        if (first == fromClient)
        {
            _backend.Input.CancelPendingRead();
            _clientOutput.CancelPendingFlush();
        }
        else if (first.Result is RelayStop.Released or RelayStop.TransactionInStatementMode)
        {
            _clientInput.CancelPendingRead();
        }
        else
        {
            _clientInput.CancelPendingRead();
            _backend.Output.CancelPendingFlush();
        }

        await Task.WhenAll(fromClient, fromBackend).ConfigureAwait(false);
        return first.Result;
    }

    /// <summary>
    /// One direction's long-lived loop: read what is there, forward it synchronously, flush once per batch. The
    /// flush awaits the peer's pipe thresholds, so a slow client slows its backend instead of buffering.
    /// </summary>
    private async Task<RelayStop> PumpAsync(PipeReader from, PipeWriter to, bool fromClient)
    {
        RelayStop readerGone = fromClient ? RelayStop.ClientClosed : RelayStop.BackendClosed;
        RelayStop writerGone = fromClient ? RelayStop.BackendClosed : RelayStop.ClientClosed;
        try
        {
            while (true)
            {
                ReadResult read = await from.ReadAsync().ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                if (read.IsCanceled && _stopping)
                {
                    from.AdvanceTo(buffer.Start);
                    return RelayStop.Canceled;
                }

                // A cancellation while not stopping is the client side waking the backend loop (a reply the proxy
                // owes is at the head of the queue) or a stale one: process whatever is there as usual.
                bool received = !buffer.IsEmpty;
                RelayStop stop;
                lock (_lock)
                {
                    stop = fromClient ? ForwardFromClientLocked(ref buffer, to) : ForwardFromBackendLocked(ref buffer, to);
                    long busy = _queue.Count > 0 ? Volatile.Read(ref _busySince) : 0;
                    if (_queue.Count > 0 && busy == 0)
                    {
                        busy = System.Diagnostics.Stopwatch.GetTimestamp();
                    }

                    Volatile.Write(ref _busySince, busy);
                }

                if (fromClient && received)
                {
                    LastClientActivity = System.Diagnostics.Stopwatch.GetTimestamp();
                }

                // Stopping for a release leaves the rest unexamined so the next link sees it at once.
                if (stop is RelayStop.Released or RelayStop.TransactionInStatementMode)
                {
                    from.AdvanceTo(buffer.Start);
                }
                else
                {
                    from.AdvanceTo(buffer.Start, read.Buffer.End);
                }

                FlushResult flush;
                try
                {
                    flush = await to.FlushAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (IsTransportError(ex))
                {
                    return writerGone;
                }

                if (stop != RelayStop.None)
                {
                    return stop;
                }

                if (flush.IsCanceled && _stopping)
                {
                    return RelayStop.Canceled;
                }

                if (flush.IsCompleted)
                {
                    return writerGone;
                }

                if (read.IsCompleted)
                {
                    return readerGone;
                }
            }
        }
        catch (Exception ex) when (IsTransportError(ex))
        {
            return readerGone;
        }
    }

    private static bool IsTransportError(Exception ex) =>
        ex is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException;

    // ---- client → backend -------------------------------------------------------------------------------

    /// <summary>For tests: forwards under the lock.</summary>
    internal RelayStop ForwardFromClient(ref ReadOnlySequence<byte> buffer, PipeWriter to)
    {
        lock (_lock)
        {
            return ForwardFromClientLocked(ref buffer, to);
        }
    }

    private RelayStop ForwardFromClientLocked(ref ReadOnlySequence<byte> buffer, PipeWriter to)
    {
        while (true)
        {
            if (_clientRemaining > 0)
            {
                long n = Math.Min(_clientRemaining, buffer.Length);
                if (n == 0)
                {
                    return RelayStop.None;
                }

                if (!_clientSkipping)
                {
                    Copy(buffer.Slice(0, n), to);
                }

                buffer = buffer.Slice(n);
                _clientRemaining -= n;
                if (_clientRemaining > 0)
                {
                    return RelayStop.None;
                }
            }

            if (_released)
            {
                return RelayStop.Released;
            }

            if (!MessageHeader.TryRead(buffer, out MessageHeader header, out bool malformed))
            {
                return RelayStop.None;
            }

            if (malformed)
            {
                return RelayStop.ClientProtocolViolation;
            }

            byte type = header.Type;
            if (type == FrontendCode.Terminate)
            {
                buffer = buffer.Slice(Math.Min(buffer.Length, header.TotalLength));
                return RelayStop.ClientTerminated;
            }

            _clientSkipping = false;
            if (_discardUntilSync && type != FrontendCode.Sync)
            {
                // After an error the proxy raised itself, the backend never saw the request: drop the rest of the
                // batch exactly as the backend would after its own error.
                _clientSkipping = true;
                _clientRemaining = header.TotalLength;
                continue;
            }

            switch (type)
            {
                case FrontendCode.Sync:
                    _discardUntilSync = false;
                    _extendedUnsynced = false;
                    _queue.Enqueue(new Expectation(Expect.Sync));
                    break;
                case FrontendCode.Query:
                    if (ReleasesPerTransaction && header.BodyLength <= MaxParseBytes)
                    {
                        if (buffer.Length < header.TotalLength)
                        {
                            return RelayStop.None;
                        }

                        if (HandleQuery(buffer.Slice(MessageHeader.Size, header.BodyLength), to))
                        {
                            buffer = buffer.Slice(header.TotalLength);
                            continue;
                        }
                    }
                    else if (ReleasesPerTransaction)
                    {
                        NeedsReset = true; // too large to inspect: assume the worst
                    }

                    _queue.Enqueue(new Expectation(Expect.Query));
                    break;
                case FrontendCode.FunctionCall:
                    _queue.Enqueue(new Expectation(Expect.Query));
                    break;
                case FrontendCode.Parse:
                    _extendedUnsynced = true;
                    if (ReleasesPerTransaction)
                    {
                        RelayStop parse = HandleParse(ref buffer, header, to, out bool done);
                        if (parse != RelayStop.None || done)
                        {
                            if (parse != RelayStop.None)
                            {
                                return parse;
                            }

                            continue;
                        }

                        if (buffer.Length < header.TotalLength && header.BodyLength <= MaxParseBytes)
                        {
                            return RelayStop.None;
                        }
                    }

                    _queue.Enqueue(new Expectation(Expect.Parse));
                    break;
                case FrontendCode.Bind:
                    _extendedUnsynced = true;
                    if (_statements is not null)
                    {
                        BindRewrite rewrite = TryRewriteBind(ref buffer, header, to);
                        if (rewrite == BindRewrite.NeedMore)
                        {
                            return RelayStop.None;
                        }

                        if (rewrite == BindRewrite.Done)
                        {
                            continue;
                        }
                    }

                    _queue.Enqueue(new Expectation(Expect.Bind));
                    break;
                case FrontendCode.Describe:
                case FrontendCode.Close:
                    _extendedUnsynced = true;
                    if (_statements is not null && header.BodyLength <= MaxInspectedBodyBytes)
                    {
                        if (buffer.Length < header.TotalLength)
                        {
                            return RelayStop.None;
                        }

                        byte[] body = buffer.Slice(MessageHeader.Size, header.BodyLength).ToArray();
                        if (body.Length > 1 && body[0] == (byte)'S' && body[1] != 0)
                        {
                            buffer = buffer.Slice(header.TotalLength);
                            string name = Encoding.UTF8.GetString(body, 1, Math.Max(0, body.Length - 2));
                            if (type == FrontendCode.Close)
                            {
                                // Statements are shared by name on backends; the client's Close only forgets its own name.
                                _statements.Remove(name);
                                EnqueueSynthetic(s_closeComplete);
                            }
                            else
                            {
                                DescribeStatement(name, body, to);
                            }

                            continue;
                        }
                    }

                    _queue.Enqueue(new Expectation(type == FrontendCode.Close ? Expect.Close : Expect.Describe));
                    break;
                case FrontendCode.Execute:
                    _extendedUnsynced = true;
                    _queue.Enqueue(new Expectation(Expect.Execute));
                    break;
                case FrontendCode.Flush:
                    _extendedUnsynced = true;
                    break;
            }

            _clientRemaining = header.TotalLength;
        }
    }

    /// <summary>
    /// Transaction mode: looks at a Parse. LISTEN is refused; statements that leave session state mark the backend
    /// for reset; a named statement is mapped to its backend name. Sets <paramref name="done"/> when the message was
    /// consumed here; otherwise the caller forwards it unchanged (after waiting for all of it).
    /// </summary>
    private RelayStop HandleParse(ref ReadOnlySequence<byte> buffer, MessageHeader header, PipeWriter to, out bool done)
    {
        done = false;
        if (header.BodyLength > MaxParseBytes)
        {
            if (_statements is not null && buffer.Length > MessageHeader.Size && buffer.Slice(MessageHeader.Size, 1).FirstSpan[0] != 0)
            {
                return RelayStop.ClientMessageTooLarge;
            }

            NeedsReset = true; // too large to inspect: assume the worst
            return RelayStop.None;
        }

        if (buffer.Length < header.TotalLength)
        {
            return RelayStop.None;
        }

        ReadOnlySequence<byte> bodySequence = buffer.Slice(MessageHeader.Size, header.BodyLength);
        ReadOnlySpan<byte> body = bodySequence.IsSingleSegment ? bodySequence.FirstSpan : bodySequence.ToArray();
        int nameEnd = body.IndexOf((byte)0);
        int queryEnd = nameEnd < 0 ? -1 : body[(nameEnd + 1)..].IndexOf((byte)0);
        if (queryEnd < 0)
        {
            return RelayStop.None; // malformed: the backend says so
        }

        ReadOnlySpan<byte> query = body.Slice(nameEnd + 1, queryEnd);
        if (InspectParsedStatement(query) is { } refusal)
        {
            buffer = buffer.Slice(header.TotalLength);
            _scratch.Reset();
            refusal.Write(_scratch);
            EnqueueSynthetic(_scratch.Written.ToArray());
            _discardUntilSync = true;
            done = true;
            return RelayStop.None;
        }

        if (nameEnd > 0 && _statements is null)
        {
            NeedsReset = true; // mapping off (max_prepared_statements = 0): a named statement is session state
        }

        if (nameEnd > 0 && _statements is not null)
        {
            string name = Encoding.UTF8.GetString(body[..nameEnd]);
            if (_sqlStatements?.Contains(name) == true)
            {
                return RelayStop.None; // a SQL-level PREPARE took the name on this server: it answers 42P05 itself
            }

            buffer = buffer.Slice(header.TotalLength);
            HandleNamedParse(name, body[(nameEnd + 1)..], to);
            done = true;
        }

        return RelayStop.None;
    }

    private void HandleNamedParse(string name, ReadOnlySpan<byte> tail, PipeWriter to)
    {
        if (_statements!.ContainsKey(name))
        {
            _scratch.Reset();
            ErrorResponse.Error(SqlState.DuplicatePreparedStatement, $"prepared statement \"{name}\" already exists").Write(_scratch);
            EnqueueSynthetic(_scratch.Written.ToArray());
            _discardUntilSync = true;
            return;
        }

        PreparedStatement statement = PreparedStatement.FromParseTail(tail);
        _statements[name] = statement;
        if (_backend.Statements.Touch(statement.ProxyName))
        {
            EnqueueSynthetic(s_parseComplete, name);
            return;
        }

        WriteParse(to, statement, swallow: false, name);
    }

    private enum BindRewrite
    {
        NeedMore,
        PassThrough,
        Done,
    }

    /// <summary>Parses the Bind prefix (portal, statement); rewrites the statement name when the client's name is mapped.</summary>
    private BindRewrite TryRewriteBind(ref ReadOnlySequence<byte> buffer, MessageHeader header, PipeWriter to)
    {
        long available = Math.Min(buffer.Length - MessageHeader.Size, header.BodyLength);
        ReadOnlySequence<byte> body = buffer.Slice(MessageHeader.Size, available);
        SequencePosition? firstNul = body.PositionOf((byte)0);
        SequencePosition? secondNul = firstNul is { } f ? body.Slice(body.GetPosition(1, f)).PositionOf((byte)0) : null;
        if (secondNul is null)
        {
            // Names not complete yet: wait, unless they are malformed or absurdly long (then the backend judges).
            return available < header.BodyLength && available < MaxInspectedBodyBytes ? BindRewrite.NeedMore : BindRewrite.PassThrough;
        }

        ReadOnlySequence<byte> portal = body.Slice(0, firstNul!.Value);
        ReadOnlySequence<byte> statementName = body.Slice(body.GetPosition(1, firstNul.Value), secondNul.Value);
        if (statementName.IsEmpty || !TryGetStatement(statementName, out PreparedStatement? statement))
        {
            return BindRewrite.PassThrough; // unnamed, or unknown to us: the backend answers (26000 for an unknown name)
        }

        EnsurePrepared(statement, to);
        long prefix = portal.Length + 1 + statementName.Length + 1;
        byte[] proxyName = statement.ProxyNameBytes;
        int newLength = checked((int)(header.Length - statementName.Length + proxyName.Length));
        Span<byte> head = to.GetSpan(5);
        head[0] = FrontendCode.Bind;
        BinaryPrimitives.WriteInt32BigEndian(head.Slice(1), newLength);
        to.Advance(5);
        Copy(portal, to);
        to.Write(Nul);
        to.Write(proxyName);
        to.Write(Nul);
        buffer = buffer.Slice(MessageHeader.Size + prefix);
        _clientRemaining = header.BodyLength - prefix; // parameters stream through untouched
        _queue.Enqueue(new Expectation(Expect.Bind));
        return BindRewrite.Done;
    }

    /// <summary>Looks a client statement name up without allocating a string (names are at most NAMEDATALEN bytes).</summary>
    private bool TryGetStatement(in ReadOnlySequence<byte> name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? statement)
    {
        if (name.Length > 256)
        {
            return _statements!.TryGetValue(Encoding.UTF8.GetString(name), out statement);
        }

        Span<byte> bytes = stackalloc byte[(int)name.Length];
        name.CopyTo(bytes);
        Span<char> chars = stackalloc char[bytes.Length];
        int n = Encoding.UTF8.GetChars(bytes, chars);
        return _statementLookup.TryGetValue(chars[..n], out statement);
    }

    private void DescribeStatement(string name, byte[] body, PipeWriter to)
    {
        if (!_statements!.TryGetValue(name, out PreparedStatement? statement))
        {
            WriteMessage(to, FrontendCode.Describe, body); // the backend answers 26000
            _queue.Enqueue(new Expectation(Expect.Describe));
            return;
        }

        EnsurePrepared(statement, to);
        _scratch.Reset();
        _scratch.Start(FrontendCode.Describe).Byte((byte)'S').CString(statement.ProxyName).End();
        to.Write(_scratch.Written);
        _queue.Enqueue(new Expectation(Expect.Describe));
    }

    /// <summary>Injects a Parse (reply swallowed) when the backend lacks the statement.</summary>
    private void EnsurePrepared(PreparedStatement statement, PipeWriter to)
    {
        if (!_backend.Statements.Touch(statement.ProxyName))
        {
            WriteParse(to, statement.ProxyName, statement.ParseTail, swallow: true);
        }
    }

    private void WriteParse(PipeWriter to, PreparedStatement statement, bool swallow, string? clientName = null) =>
        WriteParse(to, statement.ProxyName, statement.ParseTail, swallow, quiet: false, clientName);

    /// <param name="quiet">Even an error is not the client's (a Parse injected before a simple Query, which reports its own error).</param>
    private void WriteParse(PipeWriter to, string proxyName, ReadOnlySpan<byte> parseTail, bool swallow, bool quiet = false, string? clientName = null)
    {
        // Make room first: evict the least recently used statement with a real Close (reply swallowed).
        while (_backend.Statements.TryPickVictim(_maxPrepared, out string victim))
        {
            _backend.Statements.Remove(victim);
            _scratch.Reset();
            _scratch.Start(FrontendCode.Close).Byte((byte)'S').CString(victim).End();
            to.Write(_scratch.Written);
            _queue.Enqueue(new Expectation(Expect.Close, Swallow: true, Statement: victim, Evicts: true));
        }

        _scratch.Reset();
        _scratch.Start(FrontendCode.Parse).CString(proxyName).Bytes(parseTail).End();
        to.Write(_scratch.Written);
        _backend.Statements.Add(proxyName);
        _queue.Enqueue(new Expectation(Expect.Parse, Swallow: swallow, Statement: proxyName, ClientName: clientName, Quiet: quiet));
    }

    private void WriteMessage(PipeWriter to, byte type, byte[] body)
    {
        _scratch.Reset();
        _scratch.Start(type).Bytes(body).End();
        to.Write(_scratch.Written);
    }

    /// <summary>Undoes optimistic bookkeeping for requests the backend skipped after an error.</summary>
    private void OnDropped(Expectation e)
    {
        // A Parse the backend skipped (or that failed) never created the client's name, as in PostgreSQL.
        if (e.ClientName is not null)
        {
            _statements?.Remove(e.ClientName);
        }

        if (e.Statement is null)
        {
            return;
        }

        if (e.Kind == Expect.Parse)
        {
            _backend.Statements.Remove(e.Statement);
        }
        else if (e.Evicts)
        {
            _backend.Statements.Add(e.Statement); // the Close never ran: the backend still has it
        }
    }

    private void EnqueueSynthetic(byte[] bytes, string? clientName = null)
    {
        bool atHead = _queue.Count == 0;
        _queue.Enqueue(new Expectation(Expect.Synthetic, Synthetic: bytes, ClientName: clientName));
        if (atHead)
        {
            // Nothing from the backend will come to carry it: wake the backend loop to send it now.
            _backend.Input.CancelPendingRead();
        }
    }

    // ---- backend → client -------------------------------------------------------------------------------

    /// <summary>For tests: forwards under the lock.</summary>
    internal RelayStop ForwardFromBackend(ref ReadOnlySequence<byte> buffer, PipeWriter to)
    {
        lock (_lock)
        {
            return ForwardFromBackendLocked(ref buffer, to);
        }
    }

    private RelayStop EmitSyntheticsLocked(PipeWriter to)
    {
        bool emitted = false;
        while (_queue.TryTakeSynthetic(out byte[] bytes))
        {
            to.Write(bytes);
            emitted = true;
        }

        return emitted && ReleaseReady() ? Release() : RelayStop.None;
    }

    private bool ReleaseReady() =>
        ReleasesPerTransaction && _queue.Count == 0 && !_extendedUnsynced && !_discardUntilSync && _clientRemaining == 0 &&
        _backendRemaining == 0 && _backend.TransactionStatus == (byte)'I';

    private RelayStop Release()
    {
        _released = true;
        return RelayStop.Released;
    }

    private RelayStop ForwardFromBackendLocked(ref ReadOnlySequence<byte> buffer, PipeWriter to)
    {
        while (true)
        {
            if (_backendRemaining == 0 && _queue.Count > 0 && EmitSyntheticsLocked(to) is RelayStop.Released)
            {
                return RelayStop.Released;
            }

            if (_backendRemaining > 0)
            {
                long n = Math.Min(_backendRemaining, buffer.Length);
                if (n == 0)
                {
                    return RelayStop.None;
                }

                if (!_backendSkipping)
                {
                    Copy(buffer.Slice(0, n), to);
                }

                buffer = buffer.Slice(n);
                _backendRemaining -= n;
                if (_backendRemaining > 0)
                {
                    return RelayStop.None;
                }

                continue;
            }

            if (!MessageHeader.TryRead(buffer, out MessageHeader header, out bool malformed))
            {
                return RelayStop.None;
            }

            if (malformed)
            {
                return RelayStop.BackendClosed;
            }

            byte type = header.Type;
            switch (type)
            {
                case BackendCode.ReadyForQuery:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    if (header.BodyLength >= 1)
                    {
                        _backend.TransactionStatus = buffer.Slice(MessageHeader.Size, 1).FirstSpan[0];
                    }

                    ResponseAction ready = _queue.OnBackendMessage(type);
                    if (_mode == PoolMode.Statement && _backend.TransactionStatus != (byte)'I' && _queue.Count == 0)
                    {
                        buffer = buffer.Slice(header.TotalLength); // not forwarded: the session answers instead
                        return RelayStop.TransactionInStatementMode;
                    }

                    if (ready == ResponseAction.Forward)
                    {
                        Copy(buffer.Slice(0, header.TotalLength), to);
                    }

                    buffer = buffer.Slice(header.TotalLength);
                    if (ReleaseReady())
                    {
                        return Release();
                    }

                    continue;
                case BackendCode.ParameterStatus when header.BodyLength <= MaxInspectedBodyBytes:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    ReadParameterStatus(buffer.Slice(MessageHeader.Size, header.BodyLength), _backend);
                    break;
                case BackendCode.ErrorResponse when header.BodyLength <= MaxInspectedBodyBytes:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    _sawFatal |= IsFatal(buffer.Slice(MessageHeader.Size, header.BodyLength));
                    break;
            }

            _backendSkipping = _queue.OnBackendMessage(type) == ResponseAction.Swallow;
            _backendRemaining = header.TotalLength;
        }
    }

    private static void Copy(in ReadOnlySequence<byte> source, PipeWriter to)
    {
        foreach (ReadOnlyMemory<byte> segment in source)
        {
            to.Write(segment.Span);
        }
    }

    /// <summary>Records a ParameterStatus in the backend's view (rare message: allocation is fine here).</summary>
    internal static void ReadParameterStatus(in ReadOnlySequence<byte> body, BackendConnection backend)
    {
        var reader = new PgSpanReader(body.IsSingleSegment ? body.FirstSpan : body.ToArray());
        if (reader.TryReadCString(out string name) && reader.TryReadCString(out string value))
        {
            backend.Parameters[name] = value;
            backend.SyncedSettings = null;
        }
    }

    private static bool IsFatal(in ReadOnlySequence<byte> body) =>
        ErrorResponse.TryParse(body.IsSingleSegment ? body.FirstSpan : body.ToArray(), out ErrorResponse? error) && error!.IsFatal;
}
