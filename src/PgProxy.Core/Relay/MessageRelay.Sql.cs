using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Prepared;
using PgProxy.Core.Sql;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Transaction mode: what the SQL a client sends means to the pool, read with <see cref="StatementReader"/>.
/// <para>
/// Statements that may leave session state mark the backend for server_reset_query. Statement names are one
/// namespace per session in PostgreSQL (SQL PREPARE and protocol Parse share it), so SQL that names one of the client's
/// protocol-level statements is rewritten to the backend's name for it: EXECUTE runs the mapped statement, DEALLOCATE
/// forgets it, PREPARE of a taken name fails with 42P05. A statement the proxy must refuse is replaced by a server-side
/// RAISE of the same SQLSTATE and message, so the error lands at its place in a multi-statement query and aborts the
/// transaction exactly as the refused statement's own error would. Everything else goes to the server untouched, and
/// ordinary SQL is read without decoding or allocating (about 0.3 µs for a pgbench statement).
/// </para>
/// </summary>
public sealed partial class MessageRelay
{
    private static readonly byte[] s_sync = [FrontendCode.Sync, 0, 0, 0, 4];

    private static bool StandardConformingStrings(BackendConnection backend) =>
        !backend.Parameters.TryGetValue("standard_conforming_strings", out string? scs) || !scs.Equals("off", StringComparison.OrdinalIgnoreCase);

    /// <summary>Looks at a simple Query; true when the proxy wrote it (rewritten) itself, false to forward it as it is.</summary>
    private bool HandleQuery(BackendConnection backend, ReadOnlySequence<byte> body, PipeWriter to)
    {
        byte[]? rented = null;
        ReadOnlySpan<byte> text;
        if (body.IsSingleSegment)
        {
            text = body.FirstSpan;
        }
        else
        {
            rented = ArrayPool<byte>.Shared.Rent((int)body.Length);
            body.CopyTo(rented);
            text = rented.AsSpan(0, (int)body.Length);
        }

        try
        {
            int nul = text.IndexOf((byte)0);
            text = nul < 0 ? text : text[..nul];
            List<Edit>? edits = null;
            _queryPrepares = null;
            int index = -1;
            var reader = new StatementReader(text, StandardConformingStrings(backend));
            while (reader.MoveNext(out SqlStatement statement))
            {
                index++;
                if (PinRefusal(statement.Effects) is { } refusal)
                {
                    // Not run: the server raises the refusal at its place, and skips the rest of the query.
                    (edits ??= []).Add(new Edit(statement.Start, statement.End, RaiseStatement(refusal)));
                    break;
                }

                NoteEffects(backend, text, statement);
                if (statement.Kind != StatementKind.Other && HandleStatement(backend, text, statement, index, to, ref edits))
                {
                    break; // refused: the server raises the error at its place, and skips the rest
                }
            }

            if (edits is null)
            {
                return false;
            }

            WriteRewrittenQuery(text, edits, to);
            _queue.Enqueue(new Expectation(Expect.Query, Prepares: _queryPrepares));
            _queryPrepares = null;
            return true;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>A replacement of <c>[Start, End)</c> in the query text.</summary>
    private readonly record struct Edit(int Start, int End, byte[] Replacement);

    /// <summary>Acts on one statement the pooler knows; true when it was replaced by a refusal (the rest of the query does not run).</summary>
    private bool HandleStatement(BackendConnection backend, ReadOnlySpan<byte> text, SqlStatement statement, int index, PipeWriter to, ref List<Edit>? edits)
    {
        switch (statement.Kind)
        {
            case StatementKind.DeallocateAll:
            case StatementKind.DiscardAll:
                // The server drops every statement it has, SQL-level and mapped: forget the client's names and the backend's set.
                _statements?.Clear();
                backend.Session.Statements.Clear();
                return false;
        }

        if (_statements is null)
        {
            return false; // no mapping (session mode, or max_prepared_statements = 0): the server's namespace is the client's
        }

        string name = SqlNames.Decode(text, statement.Name);
        switch (statement.Kind)
        {
            case StatementKind.Prepare:
                if (_statements.TryGet(name, out _))
                {
                    (edits ??= []).Add(new Edit(statement.Start, statement.End,
                        RaiseStatement(ErrorResponse.Error(SqlState.DuplicatePreparedStatement, $"prepared statement \"{name}\" already exists"))));
                    return true;
                }

                MapSqlPrepare(backend, text, statement, name, index, to, ref edits);
                return false;
            case StatementKind.Execute when _statements.TryGet(name, out PreparedStatement? mapped):
                if (NoteMappedEffects(backend, mapped) is { } refusal)
                {
                    (edits ??= []).Add(new Edit(statement.Start, statement.End, RaiseStatement(refusal)));
                    return true;
                }

                EnsurePreparedForQuery(backend, mapped, to);
                (edits ??= []).Add(new Edit(statement.Name.Start, statement.Name.End, mapped.ProxyNameBytes));
                return false;
            case StatementKind.Deallocate when _statements.Forget(name):
                // The backend keeps the shared statement; DEALLOCATE runs, at its place and with PostgreSQL's own
                // answer, on a throwaway statement prepared for it. If an earlier error skips it, the throwaway
                // stays in the backend's LRU set and is closed like any other.
                PreparedStatement throwaway = PreparedStatement.Throwaway();
                EnsurePreparedForQuery(backend, throwaway, to);
                (edits ??= []).Add(new Edit(statement.Name.Start, statement.Name.End, throwaway.ProxyNameBytes));
                return false;
        }

        return false; // EXECUTE or DEALLOCATE of a name the client does not have: the server answers 26000, in its words
    }

    private SqlPrepares? _queryPrepares; // the SQL PREPAREs of the Query being read (HandleQuery)

    /// <summary>
    /// A SQL PREPARE: the client's name maps to the statement shared by every PREPARE of the same text and types, which
    /// any backend the client lands on gets prepared under its proxy-wide name (EXECUTE). The PREPARE itself runs on the
    /// server at its place, renamed: to the shared name when this backend lacks the statement, else to a throwaway name
    /// (closed later like any statement), so the client gets PostgreSQL's own answer either way, errors included.
    /// </summary>
    private void MapSqlPrepare(BackendConnection backend, ReadOnlySpan<byte> text, SqlStatement statement, string name, int index, PipeWriter to,
        ref List<Edit>? edits)
    {
        _statements = _statements!.Own();
        PreparedStatement shared = _statements.RegisterSql(name, text[statement.Name.End..statement.End], out byte[] key);
        BackendStatements statements = backend.Session.Statements;
        bool has = statements.Touch(shared);
        MakeRoomBeforeQuery(backend, to);

        PreparedStatement target = has ? PreparedStatement.Throwaway() : shared;
        statements.Add(target);
        _pool.Stats.ServerParse();
        (edits ??= []).Add(new Edit(statement.Name.Start, statement.Name.End, target.ProxyNameBytes));
        (_queryPrepares ??= new SqlPrepares()).Entries.Add((index, key, has ? target : shared));
    }

    /// <summary>
    /// The client's Query got an error: the SQL PREPAREs from the failed statement on never ran, so their names and
    /// statements are forgotten; an injected PREPARE (EXECUTE on a backend that lacked the statement) that failed is.
    /// </summary>
    private void UndoFailedQueryLocked(BackendConnection backend)
    {
        if (!_queue.TryPeek(out Expectation head) || head.Kind != Expect.Query)
        {
            return;
        }

        if (head.Prepares is { } prepares)
        {
            foreach ((int index, byte[] clientName, PreparedStatement? created) in prepares.Entries)
            {
                if (index >= prepares.Completed)
                {
                    _statements?.Forget(clientName);
                    if (created is not null)
                    {
                        backend.Session.Statements.Remove(created);
                    }
                }
            }

            prepares.Entries.Clear();
        }
        else if (head.Statement is { } injected)
        {
            backend.Session.Statements.Remove(injected);
        }
    }

    /// <summary>
    /// Before a simple Query: a Parse the backend lacks, with its own Sync, both replies swallowed, and an error too (the
    /// Query then fails by itself, with the error PostgreSQL gives: 25P02 in an aborted transaction, for example).
    /// </summary>
    private void EnsurePreparedForQuery(BackendConnection backend, PreparedStatement statement, PipeWriter to)
    {
        if (backend.Session.Statements.Touch(statement))
        {
            return;
        }

        if (statement.SqlBody is { } body)
        {
            // A SQL PREPARE's statement: prepared again in SQL (its types are names, not oids), in a Query of its own.
            MakeRoomBeforeQuery(backend, to);

            PgMessageBuilder b = Scratch.Reset().Start(FrontendCode.Query).Bytes("PREPARE "u8).Bytes(statement.ProxyNameBytes).Bytes(body).Byte(0);
            b.End();
            to.Write(b.Written);
            backend.Session.Statements.Add(statement);
            _pool.Stats.ServerParse();
            _queue.Enqueue(new Expectation(Expect.Query, Swallow: true, Quiet: true, Statement: statement));
            return;
        }

        WriteParse(backend, to, statement, swallow: true, quiet: true, clientName: null);
        to.Write(s_sync);
        _queue.Enqueue(new Expectation(Expect.Sync, Swallow: true));
    }

    /// <summary><see cref="MakeRoom"/> before a simple Query: its Closes are ended by a Sync of their own (reply swallowed).</summary>
    private void MakeRoomBeforeQuery(BackendConnection backend, PipeWriter to)
    {
        if (MakeRoom(backend, to))
        {
            to.Write(s_sync);
            _queue.Enqueue(new Expectation(Expect.Sync, Swallow: true));
        }
    }

    private static void WriteRewrittenQuery(ReadOnlySpan<byte> text, List<Edit> edits, PipeWriter to)
    {
        int length = 4 + text.Length + 1;
        foreach (Edit e in edits)
        {
            length += e.Replacement.Length - (e.End - e.Start);
        }

        Span<byte> head = to.GetSpan(5);
        head[0] = FrontendCode.Query;
        BinaryPrimitives.WriteInt32BigEndian(head[1..], length);
        to.Advance(5);
        int at = 0;
        foreach (Edit e in edits)
        {
            to.Write(text[at..e.Start]);
            to.Write(e.Replacement);
            at = e.End;
        }

        to.Write(text[at..]);
        to.Write(Nul);
    }

    /// <summary>
    /// A statement that fails on the server with <paramref name="error"/>'s SQLSTATE, message and hint (PL/pgSQL's
    /// RAISE; the client also sees its CONTEXT line). The message is quoted by the one audited helper.
    /// </summary>
    private static byte[] RaiseStatement(ErrorResponse error)
    {
        var sb = new StringBuilder("RAISE EXCEPTION USING ERRCODE = ").Append(SqlQuote.Literal(error.SqlState))
            .Append(", MESSAGE = ").Append(SqlQuote.Literal(error.Message));
        if (error.Hint is not null)
        {
            sb.Append(", HINT = ").Append(SqlQuote.Literal(error.Hint));
        }

        string body = sb.Append(';').ToString();
        string tag = "$pgproxy$";
        for (int i = 0; body.Contains(tag, StringComparison.Ordinal); i++)
        {
            tag = "$pgproxy" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + "$";
        }

        return Encoding.UTF8.GetBytes($"DO {tag}BEGIN {body} END{tag}");
    }

    /// <summary>
    /// The statement of a Parse: its session effects are noted, DISCARD ALL / DEALLOCATE ALL forget the statement
    /// names, and a statement that would pin the client past max_pinned_clients_per_pool is refused (the returned
    /// error; the proxy answers it and skips to Sync).
    /// </summary>
    private ErrorResponse? InspectParsedStatement(BackendConnection backend, ReadOnlySpan<byte> query)
    {
        if (!StatementReader.TryReadFirst(query, StandardConformingStrings(backend), out SqlStatement statement))
        {
            return null;
        }

        if (PinRefusal(statement.Effects) is { } refusal)
        {
            return refusal;
        }

        NoteEffects(backend, query, statement);
        switch (statement.Kind)
        {
            case StatementKind.DeallocateAll or StatementKind.DiscardAll:
                _statements?.Clear();
                backend.Session.Statements.Clear();
                break;
        }

        return null;
    }

    /// <summary>
    /// Marks the backend for server_reset_query when the statement may leave state a later client must not see. A
    /// session SET of a setting the server reports needs none: parameter sync gives every client its own value.
    /// </summary>
    private void NoteEffects(BackendConnection backend, ReadOnlySpan<byte> text, in SqlStatement statement)
    {
        _touched |= statement.Effects & SqlStatement.PinEffects;
        if (backend.Session.NeedsReset || statement.Effects == SessionEffects.None)
        {
            return;
        }

        if ((statement.Effects & SqlStatement.StatefulEffects) != 0)
        {
            backend.Session.NeedsReset = true;
        }
        else if ((statement.Effects & SessionEffects.Setting) != 0)
        {
            string name = statement.SettingAlias ?? SqlNames.Decode(text, statement.SettingName);
            backend.Session.NeedsReset = !backend.Parameters.ContainsKey(name) || ClientSettings.IsServerOwned(name);
        }
    }
}
