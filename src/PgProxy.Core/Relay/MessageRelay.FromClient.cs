using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Core.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>Client to backend: the session's loop calls <see cref="ForwardFromClient"/> once per read batch.</summary>
public sealed partial class MessageRelay
{
    /// <summary>
    /// Forwards what the client sent to the attached backend. Stops with <see cref="RelayStop.NeedBackend"/> at a
    /// message boundary when none is attached (the rest stays in <paramref name="buffer"/>, unexamined), and with
    /// <see cref="RelayStop.ClientTerminated"/> at Terminate. <paramref name="target"/> is the backend written to:
    /// the session flushes it, then calls <see cref="ClientFlushed"/>. Until then the link cannot end, so no other
    /// client can write to that backend while these bytes wait in its output.
    /// </summary>
    public RelayStop ForwardFromClient(ref ReadOnlySequence<byte> buffer, out BackendConnection? target)
    {
        Volatile.Write(ref _lastClientActivity, _pool.Time.GetTimestamp());
        long length = buffer.Length;
        lock (this)
        {
            BackendConnection? backend = _backend;
            long before = Unflushed(backend);
            RelayStop stop = ForwardFromClientLocked(ref buffer);
            if (_probeWanted)
            {
                WriteProbeLocked(); // behind what the client sent: the probe's answer then covers it too
            }

            _pool.Stats.Received(length - buffer.Length);
            target = backend is not null && (before < 0 || Unflushed(backend) != before) ? backend : null;
            _clientFlushPending |= target is not null;
            UpdateBusyLocked();
            return stop;
        }
    }

    /// <summary>Bytes written to a backend and not flushed yet; -1 (always "changed") for a writer that cannot tell.</summary>
    private static long Unflushed(BackendConnection? backend) =>
        backend is null ? 0 : backend.Output.CanGetUnflushedBytes ? backend.Output.UnflushedBytes : -1;

    /// <summary>
    /// The session flushed what <see cref="ForwardFromClient"/> wrote. Returns the backend whose pump must be woken
    /// (a reply the proxy owes is at the head of the queue, or the link may end now), or null. Waking is left to the
    /// caller, off the lock: a woken pump may run at once on the waking thread.
    /// </summary>
    public BackendConnection? ClientFlushed()
    {
        lock (this)
        {
            _clientFlushPending = false;
            bool wake = _wakePending || _releaseDeferred;
            _wakePending = false;
            return wake ? _backend : null;
        }
    }

    private RelayStop ForwardFromClientLocked(ref ReadOnlySequence<byte> buffer)
    {
        BackendConnection? backend = _backend;
        while (true)
        {
            if (_clientRemaining > 0)
            {
                long n = Math.Min(_clientRemaining, buffer.Length);
                if (n == 0)
                {
                    return RelayStop.None;
                }

                if (!_clientSkipping && backend is not null)
                {
                    Copy(buffer.Slice(0, n), backend.Output);
                }

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

            byte type = header.Type;
            if (type == FrontendCode.Terminate)
            {
                buffer = buffer.Slice(Math.Min(buffer.Length, header.TotalLength));
                return RelayStop.ClientTerminated;
            }

            if (backend is null || !ReferenceEquals(backend, _backend))
            {
                return RelayStop.NeedBackend; // between links: the rest waits, unexamined, for the next backend
            }

            PipeWriter to = backend.Output;
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

                        if (HandleQuery(backend, buffer.Slice(MessageHeader.Size, header.BodyLength), to))
                        {
                            buffer = buffer.Slice(header.TotalLength);
                            continue;
                        }
                    }
                    else if (ReleasesPerTransaction)
                    {
                        backend.Session.NeedsReset = true; // too large to read: assume the worst
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
                        ParseOutcome parse = HandleParse(backend, ref buffer, header, to);
                        if (parse == ParseOutcome.NeedMore)
                        {
                            return RelayStop.None;
                        }

                        if (parse == ParseOutcome.TooLarge)
                        {
                            return RelayStop.ClientMessageTooLarge;
                        }

                        if (parse == ParseOutcome.Done)
                        {
                            continue;
                        }
                    }

                    _queue.Enqueue(new Expectation(Expect.Parse));
                    break;
                case FrontendCode.Bind:
                    _extendedUnsynced = true;
                    if (_statements is not null)
                    {
                        BindRewrite rewrite = TryRewriteBind(backend, ref buffer, header, to);
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

                        if (HandleStatementTarget(backend, buffer.Slice(MessageHeader.Size, header.BodyLength), type, to))
                        {
                            buffer = buffer.Slice(header.TotalLength);
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
}
