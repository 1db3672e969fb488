using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>What a request sent to the backend (or answered by the proxy) expects back.</summary>
public enum Expect : byte
{
    /// <summary>Parse: ParseComplete.</summary>
    Parse,
    /// <summary>Bind: BindComplete.</summary>
    Bind,
    /// <summary>Describe: [ParameterDescription] RowDescription or NoData.</summary>
    Describe,
    /// <summary>Execute: rows, then CommandComplete, EmptyQueryResponse or PortalSuspended (COPY in between).</summary>
    Execute,
    /// <summary>Close: CloseComplete.</summary>
    Close,
    /// <summary>Sync: ReadyForQuery.</summary>
    Sync,
    /// <summary>Simple Query or FunctionCall: everything up to ReadyForQuery.</summary>
    Query,
    /// <summary>No backend request: the proxy answers with <see cref="Synthetic"/> bytes when this reaches the head.</summary>
    Synthetic,
}

/// <summary>One expected response.</summary>
/// <param name="Kind">What answers it.</param>
/// <param name="Swallow">The proxy injected the request: its reply is not forwarded.</param>
/// <param name="Statement">The backend statement a Parse creates or an eviction Close drops.</param>
/// <param name="Synthetic">The reply the proxy sends itself.</param>
/// <param name="Evicts">An LRU Close.</param>
/// <param name="ClientName">The client's statement name a Parse (forwarded or answered by the proxy) registers.</param>
/// <param name="Quiet">With <paramref name="Swallow"/>: an error answering it is swallowed too (a Parse injected before a simple Query, which reports the failure itself).</param>
/// <param name="Probe">The pin probe (a Query): its row is read by the relay (<see cref="PinProbe"/>).</param>
/// <param name="Prepares">The SQL PREPAREs a client's Query registers, undone for those an error keeps from running.</param>
public readonly record struct Expectation(
    Expect Kind, bool Swallow = false, Prepared.PreparedStatement? Statement = null, byte[]? Synthetic = null, bool Evicts = false,
    byte[]? ClientName = null, bool Quiet = false, bool Probe = false, SqlPrepares? Prepares = null);

/// <summary>
/// The SQL PREPAREs of one simple Query, by their place in it: the statements before an error ran (one CommandComplete
/// each), the PREPAREs from the failed one on did not, and their names and backend bookkeeping are undone.
/// </summary>
public sealed class SqlPrepares
{
    /// <summary>Statements of the Query completed so far.</summary>
    public int Completed { get; set; }

    /// <summary>Each PREPARE: its statement's index in the Query, the client's name, the shared statement it created on the backend (null: a throwaway ran).</summary>
    public List<(int Index, byte[] ClientName, Prepared.PreparedStatement? Created)> Entries { get; } = [];
}

/// <summary>What to do with one backend message.</summary>
public enum ResponseAction
{
    /// <summary>Forward to the client.</summary>
    Forward,
    /// <summary>Drop: it answers a request the proxy injected.</summary>
    Swallow,
}

/// <summary>
/// Keeps responses in request order when the proxy injects requests (a Parse a backend lacks, an LRU Close) or answers
/// some itself (Parse of a statement the backend has, Close, DEALLOCATE, errors). Every request the client sends that
/// the backend answers gets an entry, in order; each backend message is matched against the head. An ErrorResponse in
/// the extended protocol ends the head and, as the backend then skips to Sync, drops every entry before the next Sync,
/// synthetic replies included ("Extended Query": after an error the backend discards messages until Sync).
/// Entries dropped that way which carry bookkeeping (a statement, a client name) are kept for the caller to undo
/// (<see cref="TryTakeDropped"/>). Not thread-safe: the relay calls it under its lock.
/// <para>
/// A mutable struct, held in a field of the relay (not read-only, never copied): a client's queue is part of its relay
/// object rather than an object of its own, 48 bytes less per client.
/// </para>
/// </summary>
public struct ResponseQueue
{
    // Both arrays are allocated at first use: an idle client that never sent a request holds none.
    private Expectation[] _items;
    private int _head;
    private int _count;
    private Expectation[] _dropped;
    private int _droppedCount;

    /// <summary>An empty queue.</summary>
    public ResponseQueue()
    {
        _items = [];
        _dropped = [];
    }

    /// <summary>Entries not answered yet.</summary>
    public readonly int Count => _count;

    /// <summary>The head is the pin probe: the backend is answering it now.</summary>
    public readonly bool HeadIsProbe => _count > 0 && _items[_head].Probe;

    /// <summary>The entry the backend is answering now; false when none is outstanding.</summary>
    public readonly bool TryPeek(out Expectation head)
    {
        head = _count > 0 ? _items[_head] : default;
        return _count > 0;
    }

    /// <summary>Takes an entry an error dropped whose bookkeeping must be undone; false when there is none.</summary>
    public bool TryTakeDropped(out Expectation dropped)
    {
        if (_droppedCount == 0)
        {
            dropped = default;
            return false;
        }

        dropped = _dropped[--_droppedCount];
        _dropped[_droppedCount] = default;
        return true;
    }

    /// <summary>Forgets everything (the link ended).</summary>
    public void Clear()
    {
        Array.Clear(_items);
        Array.Clear(_dropped);
        _head = _count = _droppedCount = 0;
    }

    /// <summary>Adds an entry at the tail.</summary>
    public void Enqueue(in Expectation e)
    {
        if (_count == _items.Length)
        {
            var bigger = new Expectation[Math.Max(8, _items.Length * 2)];
            for (int i = 0; i < _count; i++)
            {
                bigger[i] = _items[(_head + i) % _items.Length];
            }

            _items = bigger;
            _head = 0;
        }

        _items[(_head + _count) % _items.Length] = e;
        _count++;
    }

    /// <summary>Removes and returns the head if it is a synthetic reply ready to send.</summary>
    public bool TryTakeSynthetic(out byte[] bytes)
    {
        if (_count > 0 && _items[_head].Kind == Expect.Synthetic)
        {
            bytes = _items[_head].Synthetic!;
            Pop(dropped: false);
            return true;
        }

        bytes = [];
        return false;
    }

    /// <summary>
    /// Matches one backend message type against the head. Messages that answer no request (notices, parameter
    /// status, notifications) are forwarded and leave the queue alone.
    /// </summary>
    public ResponseAction OnBackendMessage(byte type)
    {
        switch (type)
        {
            case BackendCode.NoticeResponse:
            case BackendCode.ParameterStatus:
            case (byte)'A': // NotificationResponse
                return ResponseAction.Forward;
        }

        if (_count == 0)
        {
            return ResponseAction.Forward;
        }

        Expectation head = _items[_head];
        ResponseAction action = head.Swallow ? ResponseAction.Swallow : ResponseAction.Forward;
        if (type == BackendCode.ErrorResponse)
        {
            if (head.Kind is Expect.Query or Expect.Sync)
            {
                // A ReadyForQuery still ends this cycle; the error is the client's unless the proxy asked quietly.
                return head.Swallow && head.Quiet ? ResponseAction.Swallow : ResponseAction.Forward;
            }

            // The error answers the head (a failed injected Parse is the client's error too: forward it, unless the
            // request was quiet), and the backend skips everything up to the next Sync.
            Pop(dropped: true);
            while (_count > 0 && _items[_head].Kind != Expect.Sync)
            {
                Pop(dropped: true);
            }

            return head.Swallow && head.Quiet ? ResponseAction.Swallow : ResponseAction.Forward;
        }

        if (Ends(head.Kind, type))
        {
            Pop(dropped: false);
        }

        return action;
    }

    private static bool Ends(Expect kind, byte type) => kind switch
    {
        Expect.Parse => type == (byte)'1',
        Expect.Bind => type == (byte)'2',
        Expect.Close => type == (byte)'3',
        Expect.Describe => type is BackendCode.RowDescription or (byte)'n',
        Expect.Execute => type is BackendCode.CommandComplete or BackendCode.EmptyQueryResponse or (byte)'s',
        Expect.Sync or Expect.Query => type == BackendCode.ReadyForQuery,
        _ => false,
    };

    private void Pop(bool dropped)
    {
        Expectation e = _items[_head];
        _items[_head] = default;
        _head = (_head + 1) % _items.Length;
        _count--;
        if (dropped && (e.Statement is not null || e.ClientName is not null))
        {
            if (_droppedCount == _dropped.Length)
            {
                Array.Resize(ref _dropped, Math.Max(4, _dropped.Length * 2));
            }

            _dropped[_droppedCount++] = e;
        }
    }
}
