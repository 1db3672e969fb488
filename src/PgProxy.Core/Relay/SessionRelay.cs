using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Backend;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Relays one client and its linked backend, like PgBouncer's sbuf: each direction is one long-lived loop that reads
/// the 5-byte header, decides, and forwards Length+1 bytes untouched, streaming messages larger than a read.
/// Inspected: from the client X (Terminate, not forwarded), Q/S/F (each owes one ReadyForQuery) and extended-protocol
/// messages (unsynced work); from the backend Z (transaction status), S (ParameterStatus) and E (FATAL).
/// One flush per read batch. Each loop is the only writer of its output pipe.
/// </summary>
public sealed class SessionRelay
{
    /// <summary>Messages the relay buffers to inspect are capped; larger ones are forwarded uninspected.</summary>
    public const int MaxInspectedBodyBytes = 64 * 1024;

    private readonly PipeReader _clientInput;
    private readonly PipeWriter _clientOutput;
    private readonly BackendConnection _backend;
    private int _pendingReadyForQuery;
    private bool _extendedUnsynced;
    private long _clientRemaining;
    private long _backendRemaining;
    private bool _sawFatal;

    /// <summary>Creates a relay between a client's pipes and a backend.</summary>
    public SessionRelay(PipeReader clientInput, PipeWriter clientOutput, BackendConnection backend)
    {
        _clientInput = clientInput;
        _clientOutput = clientOutput;
        _backend = backend;
    }

    /// <summary>The backend sent a FATAL error (already forwarded to the client).</summary>
    public bool SawFatal => _sawFatal;

    /// <summary>Nothing is outstanding and no message is half-forwarded in either direction.</summary>
    public bool IsQuiescent =>
        Volatile.Read(ref _pendingReadyForQuery) == 0 && !_extendedUnsynced && _backendRemaining == 0 && _clientRemaining == 0;

    /// <summary>Total bytes each way (for stats).</summary>
    public long BytesFromClient { get; private set; }

    /// <summary>Total bytes from the backend.</summary>
    public long BytesFromBackend { get; private set; }

    /// <summary>Runs both directions until one stops, then stops the other; returns the first reason.</summary>
    public async Task<RelayStop> RunAsync()
    {
        Task<RelayStop> fromClient = ClientToBackendAsync();
        Task<RelayStop> fromBackend = BackendToClientAsync();
        Task<RelayStop> first = await Task.WhenAny(fromClient, fromBackend).ConfigureAwait(false);
        if (first == fromClient)
        {
            _backend.Input.CancelPendingRead();
            _clientOutput.CancelPendingFlush();
        }
        else
        {
            _clientInput.CancelPendingRead();
            _backend.Output.CancelPendingFlush();
        }

        await Task.WhenAll(fromClient, fromBackend).ConfigureAwait(false);
        return first.Result;
    }

    private Task<RelayStop> ClientToBackendAsync() => PumpAsync(_clientInput, _backend.Output, fromClient: true);

    private Task<RelayStop> BackendToClientAsync() => PumpAsync(_backend.Input, _clientOutput, fromClient: false);

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
                if (read.IsCanceled)
                {
                    from.AdvanceTo(read.Buffer.Start);
                    return RelayStop.Canceled;
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                long before = buffer.Length;
                RelayStop stop;
                if (fromClient)
                {
                    stop = ForwardFromClient(ref buffer, to);
                    BytesFromClient += before - buffer.Length;
                }
                else
                {
                    stop = ForwardFromBackend(ref buffer, to);
                    BytesFromBackend += before - buffer.Length;
                }

                from.AdvanceTo(buffer.Start, read.Buffer.End);
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

                if (flush.IsCanceled)
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

    /// <summary>Forwards whole and partial client messages; synchronous, allocation-free.</summary>
    internal RelayStop ForwardFromClient(ref ReadOnlySequence<byte> buffer, PipeWriter to)
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

                Copy(buffer.Slice(0, n), to);
                buffer = buffer.Slice(n);
                _clientRemaining -= n;
                if (_clientRemaining > 0)
                {
                    return RelayStop.None;
                }
            }

            if (!MessageHeader.TryRead(buffer, out MessageHeader header, out bool malformed))
            {
                return RelayStop.None;
            }

            if (malformed)
            {
                return RelayStop.ClientProtocolViolation;
            }

            switch (header.Type)
            {
                case FrontendCode.Terminate:
                    buffer = buffer.Slice(Math.Min(buffer.Length, header.TotalLength));
                    return RelayStop.ClientTerminated;
                case FrontendCode.Sync:
                    _extendedUnsynced = false;
                    Interlocked.Increment(ref _pendingReadyForQuery);
                    break;
                case FrontendCode.Query:
                case FrontendCode.FunctionCall:
                    Interlocked.Increment(ref _pendingReadyForQuery);
                    break;
                case FrontendCode.Parse:
                case FrontendCode.Bind:
                case FrontendCode.Execute:
                case FrontendCode.Describe:
                case FrontendCode.Close:
                case FrontendCode.Flush:
                    _extendedUnsynced = true;
                    break;
            }

            _clientRemaining = header.TotalLength;
        }
    }

    /// <summary>Forwards backend messages, reading Z, S and E on the way.</summary>
    internal RelayStop ForwardFromBackend(ref ReadOnlySequence<byte> buffer, PipeWriter to)
    {
        while (true)
        {
            if (_backendRemaining > 0)
            {
                long n = Math.Min(_backendRemaining, buffer.Length);
                if (n == 0)
                {
                    return RelayStop.None;
                }

                Copy(buffer.Slice(0, n), to);
                buffer = buffer.Slice(n);
                _backendRemaining -= n;
                if (_backendRemaining > 0)
                {
                    return RelayStop.None;
                }
            }

            if (!MessageHeader.TryRead(buffer, out MessageHeader header, out bool malformed))
            {
                return RelayStop.None;
            }

            if (malformed)
            {
                return RelayStop.BackendClosed;
            }

            switch (header.Type)
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

                    Interlocked.Decrement(ref _pendingReadyForQuery);
                    break;
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
        }
    }

    private static bool IsFatal(in ReadOnlySequence<byte> body) =>
        ErrorResponse.TryParse(body.IsSingleSegment ? body.FirstSpan : body.ToArray(), out ErrorResponse? error) && error!.IsFatal;
}
