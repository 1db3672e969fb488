using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>Backend to client: the attached backend's pump calls <see cref="ForwardFromBackend"/> once per read batch.</summary>
public sealed partial class MessageRelay
{
    /// <summary>
    /// Forwards what <paramref name="from"/> sent to the client (and the replies the proxy owes at the head of the
    /// queue). Stops with <see cref="RelayStop.Released"/> when a transaction-mode link may end: the relay has then
    /// begun to detach, and the pump completes it after flushing (<see cref="CompleteDetach"/>).
    /// <see cref="RelayStop.TransactionInStatementMode"/> detaches the same way, with the ReadyForQuery held back.
    /// <see cref="RelayStop.Detached"/>: <paramref name="from"/> is not (or no longer) attached.
    /// </summary>
    public RelayStop ForwardFromBackend(BackendConnection from, ref ReadOnlySequence<byte> buffer)
    {
        RelayStop stop = ForwardFromBackendUnderLock(from, ref buffer);
        if (_probeWake)
        {
            // Off the lock: the session's read completes inline, on this thread, and takes the lock itself.
            _probeWake = false;
            _clientInput.CancelPendingRead();
        }

        return stop;
    }

    private RelayStop ForwardFromBackendUnderLock(BackendConnection from, ref ReadOnlySequence<byte> buffer)
    {
        lock (this)
        {
            if (!ReferenceEquals(_backend, from))
            {
                return RelayStop.Detached;
            }

            if (_detachRequested)
            {
                _detachedQuiescent = _queue.Count == 0 && !_extendedUnsynced && _backendRemaining == 0 && _clientRemaining == 0 && !_sawFatal;
                BeginDetachLocked();
                return RelayStop.DetachRequested;
            }

            long length = buffer.Length;
            RelayStop stop = ForwardFromBackendLocked(from, ref buffer);
            _pool.Stats.Sent(length - buffer.Length);
            if (stop is RelayStop.Released or RelayStop.TransactionInStatementMode)
            {
                BeginDetachLocked();
            }

            UpdateBusyLocked();
            return stop;
        }
    }

    /// <summary>Writes the proxy's own replies that have reached the head of the queue; true when one was written.</summary>
    private bool EmitSyntheticsLocked()
    {
        bool emitted = false;
        while (_queue.TryTakeSynthetic(out byte[] bytes))
        {
            _clientOutput.Write(bytes);
            emitted = true;
        }

        return emitted;
    }

    /// <summary>
    /// The link may end: transaction mode, nothing outstanding or half-forwarded either way, the transaction over.
    /// With a client write still unflushed it ends after the flush instead (the session wakes the pump).
    /// </summary>
    private bool ReleaseReady(BackendConnection backend)
    {
        if (!ReleasesPerTransaction || _queue.Count != 0 || _extendedUnsynced || _discardUntilSync || _clientRemaining != 0 ||
            _backendRemaining != 0 || backend.TransactionStatus != TransactionStatus.Idle || KeepsServerForState())
        {
            return false;
        }

        _releaseDeferred = _clientFlushPending;
        return !_clientFlushPending;
    }

    private RelayStop ForwardFromBackendLocked(BackendConnection backend, ref ReadOnlySequence<byte> buffer)
    {
        PipeWriter to = _clientOutput;
        if (_releaseDeferred && ReleaseReady(backend))
        {
            return RelayStop.Released;
        }

        while (true)
        {
            if (_backendRemaining == 0 && _queue.Count > 0 && EmitSyntheticsLocked() && ReleaseReady(backend))
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
            ErrorResponse? error = null;
            switch (type)
            {
                case BackendCode.ReadyForQuery:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    if (header.BodyLength >= 1)
                    {
                        backend.TransactionStatus = (TransactionStatus)buffer.Slice(MessageHeader.Size, 1).FirstSpan[0];
                    }

                    bool probe = _queue.HeadIsProbe;
                    ResponseAction ready = _queue.OnBackendMessage(type);
                    if (probe)
                    {
                        ApplyProbe(backend.TransactionStatus);
                    }
                    else
                    {
                        CountReadyForQuery(backend.TransactionStatus);
                    }

                    if (_mode == PoolMode.Statement && backend.TransactionStatus != TransactionStatus.Idle && _queue.Count == 0)
                    {
                        buffer = buffer.Slice(header.TotalLength); // not forwarded: the pump answers instead
                        return RelayStop.TransactionInStatementMode;
                    }

                    if (ready == ResponseAction.Forward)
                    {
                        Copy(buffer.Slice(0, header.TotalLength), to);
                    }

                    buffer = buffer.Slice(header.TotalLength);
                    if (ReleaseReady(backend))
                    {
                        return RelayStop.Released;
                    }

                    continue;
                case BackendCode.CommandComplete or BackendCode.EmptyQueryResponse when _queue.TryPeek(out Expectation query) && query.Prepares is { } prepares:
                    prepares.Completed++; // one more statement of a Query with SQL PREPAREs ran
                    break;
                case BackendCode.DataRow when _queue.HeadIsProbe && header.BodyLength <= MaxInspectedBodyBytes:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    ReadOnlySequence<byte> row = buffer.Slice(MessageHeader.Size, header.BodyLength);
                    ReadProbeRow(row.IsSingleSegment ? row.FirstSpan : row.ToArray());
                    break;
                case BackendCode.ParameterStatus when header.BodyLength <= MaxInspectedBodyBytes:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    backend.RecordParameterStatus(buffer.Slice(MessageHeader.Size, header.BodyLength));
                    break;
                case BackendCode.ErrorResponse when header.BodyLength <= MaxInspectedBodyBytes:
                    if (buffer.Length < header.TotalLength)
                    {
                        return RelayStop.None;
                    }

                    error = Parse(buffer.Slice(MessageHeader.Size, header.BodyLength));
                    _sawFatal |= error is { IsFatal: true };
                    break;
            }

            if (type == BackendCode.ErrorResponse)
            {
                UndoFailedQueryLocked(backend);
            }

            _backendSkipping = _queue.OnBackendMessage(type) == ResponseAction.Swallow;
            _backendRemaining = header.TotalLength;
            if (type == BackendCode.ErrorResponse)
            {
                UndoDroppedLocked(backend);
                if (!_backendSkipping && error is not null)
                {
                    _pool.Stats.Error(error.SqlState); // errors are rare: parsed, and counted by SQLSTATE
                }
            }
        }
    }

    private static ErrorResponse? Parse(in ReadOnlySequence<byte> body) =>
        ErrorResponse.TryParse(body.IsSingleSegment ? body.FirstSpan : body.ToArray(), out ErrorResponse? error) ? error : null;
}
