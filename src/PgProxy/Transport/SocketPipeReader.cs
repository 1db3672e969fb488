using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Transport;

/// <summary>
/// A <see cref="PipeReader"/> directly on a non-blocking socket: no receive loop and no pipe between the socket and
/// its reader. Bytes are received into one pooled array on the reader's own thread (or on the poll loop's thread
/// while the reader waits), so a relayed message costs one <c>recv</c> and no hand-off.
/// <para>
/// Waiting is a flag in the <see cref="PollSocket"/> (the poll loop calls back when the socket becomes readable): a
/// connection with nothing buffered holds no array and no pending operation, which is what keeps an idle client
/// small. The wait is started as soon as the socket is drained, whether or not anyone reads, so a peer that
/// closes is noticed even while nothing reads (<see cref="SocketConnection.ConnectionClosed"/>). Bytes that arrive while nobody reads are
/// received ahead, up to <see cref="ReadAheadLimit"/>; past that the socket is left alone until the reader catches up.
/// </para>
/// <para>
/// <see cref="CancelPendingRead"/> only wakes the reader; the wait stays pending for the next read, so cancelling
/// never touches the socket (with a stream-based reader it cancels the receive itself). Continuations run
/// synchronously where the data arrived, like Kestrel's <c>UnsafePreferInlineScheduling</c>.
/// </para>
/// </summary>
public sealed class SocketPipeReader : PipeReader, IValueTaskSource<ReadResult>, IPollReader, IParkableReader
{
    /// <summary>Size of the first array rented for a read.</summary>
    public const int InitialBufferSize = 4096;

    /// <summary>Bytes received ahead while nobody reads, at most.</summary>
    public const int ReadAheadLimit = 64 * 1024;

    private const int MinimumReadSize = 1024;

    private static readonly Action<object?> s_onTokenCanceled = static state => ((SocketPipeReader)state!).WakeReader(byToken: true);

    private readonly PollSocket _socket;
    private readonly SocketConnection? _connection;
    // The lock is this reader's own monitor (lock (this)): no lock object per connection, which an idle client would
    // keep for nothing (40 B); a monitor that is never contended lives in the object header.
    private ManualResetValueTaskSourceCore<ReadResult> _source;
    private CancellationTokenRegistration _tokenRegistration;
    private CancellationToken _readToken;
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private Exception? _error;
    private ReaderFlags _flags;

    /// <summary>Creates the reader; <paramref name="connection"/> hears when the peer closes.</summary>
    public SocketPipeReader(PollSocket socket, SocketConnection? connection = null)
    {
        _socket = socket;
        _connection = connection;
        Set(ReaderFlags.MayHaveData, true); // a new connection's first bytes are often there already: try a receive before waiting
    }

    /// <summary>
    /// The reader's state, one field: what the reader holds and waits for, what the socket may have, and how the
    /// stream ended. Changed only under the lock.
    /// </summary>
    [Flags]
    private enum ReaderFlags
    {
        None = 0,
        /// <summary>The reader looked at everything buffered (a read must wait for more).</summary>
        ExaminedAll = 1 << 0,
        /// <summary>A read returned a buffer that AdvanceTo has not given back yet.</summary>
        Holding = 1 << 1,
        /// <summary>A read is parked, waiting for bytes.</summary>
        ReaderWaiting = 1 << 2,
        /// <summary>The wait for readability is registered with the socket.</summary>
        WaitPending = 1 << 3,
        /// <summary>The socket may have bytes: try a receive before waiting.</summary>
        MayHaveData = 1 << 4,
        /// <summary>CancelPendingRead came while no read was parked: the next read returns canceled.</summary>
        CancelRequested = 1 << 5,
        /// <summary>The peer closed its side.</summary>
        Eof = 1 << 6,
        /// <summary>Complete was called.</summary>
        Completed = 1 << 7,
        /// <summary>The connection heard that the peer closed.</summary>
        ClosedReported = 1 << 8,
    }

    /// <summary>True when any of <paramref name="flags"/> is set.</summary>
    private bool Has(ReaderFlags flags) => (_flags & flags) != 0;

    private void Set(ReaderFlags flag, bool on) => _flags = on ? _flags | flag : _flags & ~flag;

    /// <summary>For tests: whether an array is held (an idle connection holds none).</summary>
    internal bool HoldsBuffer
    {
        get
        {
            lock (this)
            {
                return _buffer is not null;
            }
        }
    }

    /// <inheritdoc />
    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ReadResult>(cancellationToken);
        }

        bool startWait;
        bool closed;
        ValueTask<ReadResult> outcome;
        lock (this)
        {
            ThrowIfNotReadableLocked();

            if (TryGetResultLocked(out ReadResult result, out Exception? error))
            {
                Set(ReaderFlags.Holding, error is null);
                outcome = error is null ? new ValueTask<ReadResult>(result) : ValueTask.FromException<ReadResult>(error);
            }
            else
            {
                _source.Reset();
                Set(ReaderFlags.ReaderWaiting, true);
                outcome = new ValueTask<ReadResult>(this, _source.Version);
                if (cancellationToken.CanBeCanceled)
                {
                    // Registered under the lock (Monitor is reentrant): a token cancelled meanwhile completes the read here.
                    _readToken = cancellationToken;
                    _tokenRegistration = cancellationToken.UnsafeRegister(s_onTokenCanceled, this);
                }
            }

            startWait = ShouldWaitLocked();
            closed = ShouldReportClosedLocked();
        }

        Exit(startWait, closed);
        return outcome;
    }

    /// <inheritdoc />
    public bool TryReadOrPark(Action<object?> resume, object state, out ReadResult result)
    {
        ValueTask<ReadResult> read = ReadAsync();
        if (read.IsCompleted)
        {
            result = read.Result;
            return true;
        }

        // The parked read's continuation is the caller's static callback and state: nothing is allocated, and a read
        // completed meanwhile calls it at once. Continuations run inline, as for an awaiting reader.
        _source.OnCompleted(resume, state, _source.Version, ValueTaskSourceOnCompletedFlags.None);
        result = default;
        return false;
    }

    /// <inheritdoc />
    public ReadResult TakeParkedResult() => _source.GetResult(_source.Version);

    /// <inheritdoc />
    public override bool TryRead(out ReadResult result)
    {
        bool startWait;
        bool closed;
        bool got;
        lock (this)
        {
            ThrowIfNotReadableLocked();

            got = TryGetResultLocked(out result, out Exception? error);
            if (error is not null)
            {
                // Reported as the end here (a probe of an idle connection); the next ReadAsync throws it.
                result = new ReadResult(SequenceLocked(), isCanceled: false, isCompleted: true);
            }

            Set(ReaderFlags.Holding, got);
            startWait = ShouldWaitLocked();
            closed = ShouldReportClosedLocked();
        }

        Exit(startWait, closed);
        return got;
    }

    private void ThrowIfNotReadableLocked()
    {
        if (Has(ReaderFlags.Completed | ReaderFlags.Holding | ReaderFlags.ReaderWaiting))
        {
            throw new InvalidOperationException(Has(ReaderFlags.Completed) ? "Reading is not allowed after the reader was completed." : "Reading is already in progress.");
        }
    }

    /// <inheritdoc />
    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    /// <inheritdoc />
    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        lock (this)
        {
            if (!Has(ReaderFlags.Holding))
            {
                throw new InvalidOperationException("No reading operation to complete.");
            }

            Set(ReaderFlags.Holding, false);
            if (_buffer is null || !ReferenceEquals(consumed.GetObject(), _buffer))
            {
                // The read returned an empty buffer: nothing was consumed, and whatever arrived since is unexamined.
                Set(ReaderFlags.ExaminedAll, _buffer is null);
                return;
            }

            int c = consumed.GetInteger();
            int e = examined.GetInteger();
            if (c < _start || c > _end || e < c || e > _end || !ReferenceEquals(examined.GetObject(), _buffer))
            {
                throw new InvalidOperationException("The positions are not within the buffer returned by the last read.");
            }

            _start = c;
            Set(ReaderFlags.ExaminedAll, e == _end);
            if (_start == _end)
            {
                ReturnBufferLocked();
            }
        }
    }

    /// <inheritdoc />
    public override void CancelPendingRead() => WakeReader(byToken: false);

    /// <inheritdoc />
    public override void Complete(Exception? exception = null)
    {
        lock (this)
        {
            Set(ReaderFlags.Completed, true);
            Set(ReaderFlags.Holding, false);
            ReturnBufferLocked();
        }
    }

    /// <summary>
    /// Completes a parked read: with IsCanceled (<see cref="CancelPendingRead"/>; remembered for the next read when
    /// none is parked) or with <see cref="OperationCanceledException"/> (the read's token).
    /// </summary>
    private void WakeReader(bool byToken)
    {
        ReadResult result;
        CancellationTokenRegistration registration;
        CancellationToken token;
        lock (this)
        {
            if (byToken ? !Has(ReaderFlags.ReaderWaiting) || !_readToken.IsCancellationRequested : !Has(ReaderFlags.ReaderWaiting))
            {
                // A token firing late, after its read completed, must not cancel the next read.
                if (!byToken)
                {
                    Set(ReaderFlags.CancelRequested, true);
                }

                return;
            }

            Set(ReaderFlags.ReaderWaiting, false);
            token = _readToken;
            registration = TakeRegistrationLocked();
            result = new ReadResult(SequenceLocked(), isCanceled: true, isCompleted: false);
            Set(ReaderFlags.Holding, !byToken);
        }

        Deliver(registration, result, byToken ? new OperationCanceledException(token) : null);
    }

    /// <summary>Off the lock: completes the parked read (its continuation runs here, inline).</summary>
    private void Deliver(CancellationTokenRegistration registration, in ReadResult result, Exception? error)
    {
        registration.Unregister();
        if (error is null)
        {
            _source.SetResult(result);
        }
        else
        {
            _source.SetException(error);
        }
    }

    /// <summary>The poll loop says the parked wait is over (bytes, the end or an error to receive).</summary>
    void IPollReader.OnReadable()
    {
        (bool startWait, bool closed) = ProcessWait();
        Exit(startWait, closed);
    }

    /// <summary>The wait is over: hand bytes (or the end) to a parked reader, or receive them ahead.</summary>
    private (bool StartWait, bool Closed) ProcessWait()
    {
        bool complete = false;
        bool startWait;
        bool closed;
        ReadResult result = default;
        Exception? error = null;
        CancellationTokenRegistration registration = default;
        lock (this)
        {
            Set(ReaderFlags.WaitPending, false);
            if (Has(ReaderFlags.Completed))
            {
                return (false, false);
            }

            Set(ReaderFlags.MayHaveData, true);
            if (Has(ReaderFlags.ReaderWaiting))
            {
                if (TryGetResultLocked(out result, out error))
                {
                    Set(ReaderFlags.ReaderWaiting, false);
                    Set(ReaderFlags.Holding, error is null);
                    registration = TakeRegistrationLocked();
                    complete = true;
                }
            }
            else if (_error is null && !Has(ReaderFlags.Eof) && _end - _start < ReadAheadLimit && EnsureSpaceLocked())
            {
                ReceiveLocked();
            }

            // Decided before the reader runs: if its next read needs a wait, it finds this one already due.
            startWait = ShouldWaitLocked();
            closed = ShouldReportClosedLocked();
        }

        if (complete)
        {
            Deliver(registration, result, error);
        }

        return (startWait, closed);
    }

    /// <summary>What a read returns now, if anything: a pending cancel, unexamined bytes, end of stream, an error, or a receive.</summary>
    private bool TryGetResultLocked(out ReadResult result, out Exception? error)
    {
        error = null;
        if (Has(ReaderFlags.CancelRequested))
        {
            Set(ReaderFlags.CancelRequested, false);
            result = new ReadResult(SequenceLocked(), isCanceled: true, isCompleted: false);
            return true;
        }

        if (_end > _start && !Has(ReaderFlags.ExaminedAll))
        {
            result = new ReadResult(SequenceLocked(), isCanceled: false, isCompleted: Has(ReaderFlags.Eof));
            return true;
        }

        if (!Has(ReaderFlags.Eof) && _error is null && Has(ReaderFlags.MayHaveData) && EnsureSpaceLocked())
        {
            ReceiveLocked();
            if (_end > _start && !Has(ReaderFlags.ExaminedAll))
            {
                result = new ReadResult(SequenceLocked(), isCanceled: false, isCompleted: Has(ReaderFlags.Eof));
                return true;
            }
        }

        if (_error is not null)
        {
            result = default;
            error = _error;
            return true;
        }

        if (Has(ReaderFlags.Eof))
        {
            result = new ReadResult(SequenceLocked(), isCanceled: false, isCompleted: true);
            return true;
        }

        result = default;
        return false;
    }

    /// <summary>One non-blocking receive into the free tail of the buffer.</summary>
    private void ReceiveLocked()
    {
        Span<byte> space = _buffer.AsSpan(_end);
        int n;
        SocketError status;
        try
        {
            n = _socket.Receive(space, out status);
        }
        catch (ObjectDisposedException)
        {
            n = -1;
            status = SocketError.OperationAborted;
        }

        if (status == SocketError.Success)
        {
            if (n == 0)
            {
                Set(ReaderFlags.Eof, true);
                Set(ReaderFlags.MayHaveData, false);
            }
            else
            {
                _end += n;
                Set(ReaderFlags.ExaminedAll, false);
                Set(ReaderFlags.MayHaveData, n == space.Length);
            }
        }
        else if (status == SocketError.WouldBlock)
        {
            Set(ReaderFlags.MayHaveData, false);
        }
        else
        {
            _error ??= Translate(new SocketException((int)status));
            Set(ReaderFlags.MayHaveData, false);
        }

        if (_start == _end && !Has(ReaderFlags.Holding))
        {
            ReturnBufferLocked();
        }
    }

    /// <summary>Makes room for a receive of at least <see cref="MinimumReadSize"/> bytes; false when the reader holds bytes that would have to move.</summary>
    private bool EnsureSpaceLocked()
    {
        if (_buffer is null)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
            _start = _end = 0;
            return true;
        }

        if (_buffer.Length - _end >= MinimumReadSize)
        {
            return true;
        }

        if (Has(ReaderFlags.Holding))
        {
            return false;
        }

        int unread = _end - _start;
        if (_buffer.Length - unread >= MinimumReadSize && _start > 0)
        {
            _buffer.AsSpan(_start, unread).CopyTo(_buffer);
        }
        else
        {
            byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, unread + MinimumReadSize));
            _buffer.AsSpan(_start, unread).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        _start = 0;
        _end = unread;
        return true;
    }

    private void ReturnBufferLocked()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }

        _start = _end = 0;
    }

    private ReadOnlySequence<byte> SequenceLocked() =>
        _buffer is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_buffer, _start, _end - _start);

    private CancellationTokenRegistration TakeRegistrationLocked()
    {
        CancellationTokenRegistration registration = _tokenRegistration;
        _tokenRegistration = default;
        _readToken = default;
        return registration;
    }

    /// <summary>
    /// A wait is due when the socket is drained and the connection open: start it now. Past the read-ahead limit only
    /// a parked reader (which needs more than it has) starts one.
    /// </summary>
    private bool ShouldWaitLocked()
    {
        if (Has(ReaderFlags.WaitPending | ReaderFlags.MayHaveData | ReaderFlags.Eof | ReaderFlags.Completed) || _error is not null ||
            (_end - _start >= ReadAheadLimit && !Has(ReaderFlags.ReaderWaiting)))
        {
            return false;
        }

        Set(ReaderFlags.WaitPending, true);
        return true;
    }

    private bool ShouldReportClosedLocked()
    {
        if (Has(ReaderFlags.ClosedReported) || (!Has(ReaderFlags.Eof) && _error is null))
        {
            return false;
        }

        Set(ReaderFlags.ClosedReported, true);
        return true;
    }

    /// <summary>
    /// Off the lock: reports a closed peer and parks the wait on the socket. A socket readable that completes at once is
    /// processed in this loop, not by recursion, so a peer that keeps the socket busy cannot deepen the stack.
    /// </summary>
    private void Exit(bool startWait, bool closed)
    {
        while (true)
        {
            if (closed)
            {
                _connection?.FireClosed();
            }

            if (!startWait || IsCompleted())
            {
                // Completed while the reader ran inline (a Terminate ends the session, which disposes the socket before
                // this returns): a receive now would only throw ObjectDisposedException, which costs about 20 µs.
                return;
            }

            _socket.HandOffIfDue(); // a client past its first moments moves to its own loop before it waits
            if (_socket.ParkReader(this))
            {
                return; // the poll loop calls OnReadable
            }

            (startWait, closed) = ProcessWait();
        }
    }

    private bool IsCompleted()
    {
        lock (this)
        {
            return Has(ReaderFlags.Completed);
        }
    }

    /// <summary>Socket errors as the exceptions the rest of the proxy classifies (Kestrel's convention).</summary>
    internal static Exception Translate(Exception ex) => ex switch
    {
        SocketException { SocketErrorCode: SocketError.ConnectionReset } s => new ConnectionResetException(s.Message, s),
        SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted or SocketError.Shutdown } s =>
            new ConnectionAbortedException(s.Message, s),
        SocketException s => new IOException(s.Message, s),
        ObjectDisposedException o => new ConnectionAbortedException("The connection was closed.", o),
        _ => ex,
    };

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _source.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _source.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _source.OnCompleted(continuation, state, token, flags);
}
