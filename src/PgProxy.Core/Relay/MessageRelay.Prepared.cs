using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using PgProxy.Core.Backend;
using PgProxy.Core.Prepared;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Transaction mode: protocol-level prepared statements ("Extended Query"). A named Parse is mapped to the shared
/// statement of its text and types (<see cref="StatementMapper"/>); Bind and Describe are rewritten to the backend's
/// name, with the Parse injected first on a backend that lacks it; Close only forgets the client's name.
/// </summary>
public sealed partial class MessageRelay
{
    private static readonly byte[] s_parseComplete = [(byte)'1', 0, 0, 0, 4];
    private static readonly byte[] s_closeComplete = [(byte)'3', 0, 0, 0, 4];

    private enum ParseOutcome
    {
        Forward,
        NeedMore,
        Done,
        TooLarge,
    }

    private enum BindRewrite
    {
        NeedMore,
        PassThrough,
        Done,
    }

    /// <summary>
    /// Looks at a Parse: LISTEN is refused, statements that leave session state mark the backend for reset, and a
    /// named statement is mapped to its backend name (consumed here: <see cref="ParseOutcome.Done"/>).
    /// </summary>
    private ParseOutcome HandleParse(BackendConnection backend, ref ReadOnlySequence<byte> buffer, MessageHeader header, PipeWriter to)
    {
        if (header.BodyLength > MaxParseBytes)
        {
            if (_statements is not null && buffer.Length > MessageHeader.Size && buffer.Slice(MessageHeader.Size, 1).FirstSpan[0] != 0)
            {
                return ParseOutcome.TooLarge;
            }

            backend.Session.NeedsReset = true; // too large to read: assume the worst
            return ParseOutcome.Forward;
        }

        if (buffer.Length < header.TotalLength)
        {
            return ParseOutcome.NeedMore;
        }

        ReadOnlySequence<byte> bodySequence = buffer.Slice(MessageHeader.Size, header.BodyLength);
        ReadOnlySpan<byte> body = bodySequence.IsSingleSegment ? bodySequence.FirstSpan : bodySequence.ToArray();
        int nameEnd = body.IndexOf((byte)0);
        int queryEnd = nameEnd < 0 ? -1 : body[(nameEnd + 1)..].IndexOf((byte)0);
        if (queryEnd < 0)
        {
            return ParseOutcome.Forward; // malformed: the backend says so
        }

        ReadOnlySpan<byte> name = body[..nameEnd];
        if (InspectParsedStatement(backend, body.Slice(nameEnd + 1, queryEnd)) is { } refusal)
        {
            buffer = buffer.Slice(header.TotalLength);
            EnqueueError(backend, refusal);
            return ParseOutcome.Done;
        }

        if (name.IsEmpty)
        {
            return ParseOutcome.Forward; // unnamed statements pass through untouched
        }

        if (_statements is null)
        {
            backend.Session.NeedsReset = true; // mapping off (max_prepared_statements = 0): a named statement is session state
            return ParseOutcome.Forward;
        }

        ReadOnlySpan<byte> tail = body[(nameEnd + 1)..];
        _statements = _statements.Own();
        if (!_statements.TryRegister(name, tail, out PreparedStatement? statement, out byte[] key))
        {
            buffer = buffer.Slice(header.TotalLength);
            EnqueueError(backend, ErrorResponse.Error(SqlState.DuplicatePreparedStatement, $"prepared statement \"{Encoding.UTF8.GetString(name)}\" already exists"));
            return ParseOutcome.Done;
        }

        buffer = buffer.Slice(header.TotalLength);
        _pool.Stats.ClientParse();
        if (backend.Session.Statements.Touch(statement))
        {
            EnqueueSynthetic(s_parseComplete, key);
        }
        else
        {
            WriteParse(backend, to, statement, swallow: false, quiet: false, key);
        }

        return ParseOutcome.Done;
    }

    /// <summary>
    /// An error the proxy raises in the extended protocol: answered in order, and the rest of the batch is skipped to Sync.
    /// <para>
    /// The server is made to fail too, with the same error raised by an unnamed statement whose replies are swallowed:
    /// so the transaction the batch is part of (a BEGIN block, or the batch's own implicit one, which may have run
    /// statements before this one) is aborted and rolled back exactly as PostgreSQL's own error would.
    /// </para>
    /// </summary>
    private void EnqueueError(BackendConnection backend, ErrorResponse error)
    {
        PgMessageBuilder b = Scratch.Reset();
        error.Write(b);
        EnqueueSynthetic(b.Written.ToArray());
        PipeWriter to = backend.Output;
        b = Scratch.Reset().Start(FrontendCode.Parse).Byte(0).Bytes(RaiseStatement(error)).Byte(0).Int16(0).End();
        to.Write(b.Written);
        b = Scratch.Reset().Start(FrontendCode.Bind).Byte(0).Byte(0).Int16(0).Int16(0).Int16(0).End();
        to.Write(b.Written);
        b = Scratch.Reset().Start(FrontendCode.Execute).Byte(0).Int32(0).End();
        to.Write(b.Written);
        _queue.Enqueue(new Expectation(Expect.Parse, Swallow: true, Quiet: true));
        _queue.Enqueue(new Expectation(Expect.Bind, Swallow: true, Quiet: true));
        _queue.Enqueue(new Expectation(Expect.Execute, Swallow: true, Quiet: true));
        _discardUntilSync = true;
        _pool.Stats.Error(error.SqlState);
    }

    /// <summary>Parses the Bind prefix (portal, statement); rewrites the statement name when the client's name is mapped.</summary>
    private BindRewrite TryRewriteBind(BackendConnection backend, ref ReadOnlySequence<byte> buffer, MessageHeader header, PipeWriter to)
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
        if (statementName.IsEmpty || !TryGetStatement(statementName, out PreparedStatement? statement) || statement.SqlBody is not null)
        {
            // Unnamed, or unknown to us: the backend answers (26000 for an unknown name). A SQL PREPARE's statement is
            // not bound from the protocol (it cannot be prepared again mid-batch without touching the client's unnamed one).
            return BindRewrite.PassThrough;
        }

        if (NoteMappedEffects(backend, statement) is { } refusal)
        {
            EnqueueError(backend, refusal); // and the Bind is dropped, as the server drops messages after its own error
            _clientSkipping = true;
            _clientRemaining = header.TotalLength;
            return BindRewrite.Done;
        }

        EnsurePrepared(backend, statement, to);
        long prefix = portal.Length + 1 + statementName.Length + 1;
        byte[] proxyName = statement.ProxyNameBytes;
        int newLength = checked((int)(header.Length - statementName.Length + proxyName.Length));
        Span<byte> head = to.GetSpan(5);
        head[0] = FrontendCode.Bind;
        BinaryPrimitives.WriteInt32BigEndian(head[1..], newLength);
        to.Advance(5);
        Copy(portal, to);
        to.Write(Nul);
        to.Write(proxyName);
        to.Write(Nul);
        buffer = buffer.Slice(MessageHeader.Size + prefix);
        _clientRemaining = header.BodyLength - prefix; // parameters stream through untouched
        _queue.Enqueue(new Expectation(Expect.Bind));
        _pool.Stats.Bind();
        return BindRewrite.Done;
    }

    /// <summary>The client's statement named by wire bytes, without allocating (names are at most NAMEDATALEN bytes in practice).</summary>
    private bool TryGetStatement(in ReadOnlySequence<byte> name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PreparedStatement? statement)
    {
        if (name.IsSingleSegment)
        {
            return _statements!.TryGet(name.FirstSpan, out statement);
        }

        if (name.Length > 256)
        {
            return _statements!.TryGet(name.ToArray(), out statement);
        }

        Span<byte> bytes = stackalloc byte[(int)name.Length];
        name.CopyTo(bytes);
        return _statements!.TryGet(bytes, out statement);
    }

    /// <summary>
    /// Describe or Close of a named statement: Close only forgets the client's name (statements are shared on
    /// backends) and is answered by the proxy; Describe is rewritten to the backend's name. True when consumed here.
    /// </summary>
    private bool HandleStatementTarget(BackendConnection backend, ReadOnlySequence<byte> bodySequence, byte type, PipeWriter to)
    {
        ReadOnlySpan<byte> body = bodySequence.IsSingleSegment ? bodySequence.FirstSpan : bodySequence.ToArray();
        if (body.Length < 2 || body[0] != (byte)'S' || body[1] == 0 || body[^1] != 0)
        {
            return false; // a portal, the unnamed statement, or malformed: the backend answers
        }

        ReadOnlySpan<byte> name = body[1..^1];
        if (type == FrontendCode.Close)
        {
            _statements!.Forget(name);
            EnqueueSynthetic(s_closeComplete);
            return true;
        }

        if (!_statements!.TryGet(name, out PreparedStatement? statement) || statement.SqlBody is not null)
        {
            return false; // the backend answers 26000 (also for a SQL PREPARE's statement, as for Bind)
        }

        EnsurePrepared(backend, statement, to);
        Scratch.Reset().Start(FrontendCode.Describe).Byte((byte)'S').CString(statement.ProxyNameBytes).End();
        to.Write(Scratch.Written);
        _queue.Enqueue(new Expectation(Expect.Describe));
        return true;
    }

    /// <summary>Injects a Parse (reply swallowed) when the backend lacks the statement.</summary>
    private void EnsurePrepared(BackendConnection backend, PreparedStatement statement, PipeWriter to)
    {
        if (!backend.Session.Statements.Touch(statement))
        {
            WriteParse(backend, to, statement, swallow: true, quiet: false, clientName: null);
        }
    }

    /// <param name="backend">The backend written to.</param>
    /// <param name="to">Its output.</param>
    /// <param name="statement">The statement to prepare there.</param>
    /// <param name="swallow">The proxy's own request: its ParseComplete is not forwarded.</param>
    /// <param name="quiet">Even an error is not the client's (a Parse injected before a simple Query, which reports its own error).</param>
    /// <param name="clientName">The client's name the Parse registers (undone if the server skips or refuses it).</param>
    private void WriteParse(BackendConnection backend, PipeWriter to, PreparedStatement statement, bool swallow, bool quiet, byte[]? clientName)
    {
        MakeRoom(backend, to);
        BackendStatements statements = backend.Session.Statements;
        Scratch.Reset().Start(FrontendCode.Parse).CString(statement.ProxyNameBytes).Bytes(statement.ParseTail).End();
        to.Write(Scratch.Written);
        statements.Add(statement);
        _pool.Stats.ServerParse();
        _queue.Enqueue(new Expectation(Expect.Parse, Swallow: swallow, Statement: statement, ClientName: clientName, Quiet: quiet));
    }

    /// <summary>Makes room for one more statement: evicts the least recently used with a real Close (reply swallowed); true when one was.</summary>
    private bool MakeRoom(BackendConnection backend, PipeWriter to)
    {
        bool evicted = false;
        BackendStatements statements = backend.Session.Statements;
        while (statements.TryPickVictim(_statements!.MaxPerBackend, out PreparedStatement? victim))
        {
            statements.Remove(victim);
            Scratch.Reset().Start(FrontendCode.Close).Byte((byte)'S').CString(victim.ProxyNameBytes).End();
            to.Write(Scratch.Written);
            _queue.Enqueue(new Expectation(Expect.Close, Swallow: true, Statement: victim, Evicts: true));
            evicted = true;
        }

        return evicted;
    }

    /// <summary>Undoes optimistic bookkeeping for requests the backend skipped or refused after an error.</summary>
    private void UndoDroppedLocked(BackendConnection backend)
    {
        while (_queue.TryTakeDropped(out Expectation e))
        {
            // A Parse the backend skipped (or that failed) never created the client's name, as in PostgreSQL.
            if (e.ClientName is not null)
            {
                _statements?.Forget(e.ClientName);
            }

            if (e.Statement is null)
            {
                continue;
            }

            if (e.Kind == Expect.Parse)
            {
                backend.Session.Statements.Remove(e.Statement);
            }
            else if (e.Evicts)
            {
                backend.Session.Statements.Add(e.Statement); // the Close never ran: the backend still has it
            }
        }
    }

    /// <summary>
    /// Queues a reply the proxy gives itself. At the head of the queue no backend message will carry it, so the pump
    /// is to be woken to send it, by the session after its flush (<see cref="ClientFlushed"/>): never from here, under
    /// the lock, where the woken pump could run inline in the middle of this forwarding.
    /// </summary>
    private void EnqueueSynthetic(byte[] bytes, byte[]? clientName = null)
    {
        _wakePending |= _queue.Count == 0;
        _queue.Enqueue(new Expectation(Expect.Synthetic, Synthetic: bytes, ClientName: clientName));
    }
}
