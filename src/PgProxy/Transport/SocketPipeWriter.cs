using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace PgProxy.Transport;

/// <summary>
/// A <see cref="PipeWriter"/> directly on a non-blocking socket: bytes are written into one pooled array and
/// <see cref="FlushAsync"/> sends them on the caller's thread with a non-blocking <c>send</c>, so a relayed message
/// costs one system call and no hand-off to a send loop. Only when the socket's send buffer is full does the rest go
/// out in the background; the flush then waits for it, which is the back-pressure a pipe's thresholds would give.
/// <para>
/// After a flush the array goes back to the pool, so an idle connection holds none. A peer that is gone makes flushes
/// report <see cref="FlushResult.IsCompleted"/> and discards further bytes, as Kestrel's output does.
/// <see cref="CancelPendingFlush"/> wakes a waiting flush without touching the send in progress, so no byte is lost
/// or reordered.
/// </para>
/// </summary>
public sealed class SocketPipeWriter : PipeWriter
{
    private const int InitialBufferSize = 4096;

    private readonly PollSocket _socket;
    private byte[]? _buffer;
    private int _written;
    private Task<bool>? _sending;
    private TaskCompletionSource? _flushWaiter;
    private int _cancelRequested;
    private bool _broken;
    private bool _completed;

    /// <summary>Creates the writer.</summary>
    public SocketPipeWriter(PollSocket socket)
    {
        _socket = socket;
    }

    /// <inheritdoc />
    public override bool CanGetUnflushedBytes => true;

    /// <inheritdoc />
    public override long UnflushedBytes => _written;

    /// <summary>For tests: whether an array is held (an idle connection holds none).</summary>
    internal bool HoldsBuffer => _buffer is not null;

    /// <summary>Completes when nothing is left to send (a send that would have blocked has finished or failed).</summary>
    public Task WhenSentAsync() => _sending ?? Task.CompletedTask;

    /// <inheritdoc />
    public override void Advance(int bytes)
    {
        if (bytes < 0 || _written + bytes > (_buffer?.Length ?? 0))
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), "Advanced past the memory returned by GetMemory/GetSpan.");
        }

        _written += bytes;
    }

    /// <inheritdoc />
    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsMemory(_written);
    }

    /// <inheritdoc />
    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        EnsureCapacity(sizeHint);
        return _buffer.AsSpan(_written);
    }

    /// <inheritdoc />
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (_sending is null && TrySendNow())
        {
            return new ValueTask<FlushResult>(new FlushResult(TakeCancel(), _broken));
        }

        return FlushSlowAsync(cancellationToken);
    }

    /// <inheritdoc />
    public override void CancelPendingFlush()
    {
        // Remembered for the next flush, and a waiting flush is woken (which then takes the flag).
        Volatile.Write(ref _cancelRequested, 1);
        Interlocked.Exchange(ref _flushWaiter, null)?.TrySetResult();
    }

    /// <summary>Sends what was written but not flushed (best effort, without waiting), then releases the array.</summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        if (_written > 0 && exception is null && _sending is null)
        {
            TrySendNow();
        }

        _written = 0;
        ReturnBuffer();
    }

    private void EnsureCapacity(int sizeHint)
    {
        if (_completed)
        {
            throw new InvalidOperationException("Writing is not allowed after the writer was completed.");
        }

        int needed = _written + Math.Max(sizeHint, 1);
        if (_buffer is null)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(needed, InitialBufferSize));
        }
        else if (needed > _buffer.Length)
        {
            byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _buffer.Length * 2));
            _buffer.AsSpan(0, _written).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }
    }

    /// <summary>
    /// Sends the written bytes without blocking. True when all went out (or were discarded, the peer being gone);
    /// false when the socket was full and the rest now goes out in the background (<see cref="_sending"/>).
    /// </summary>
    private bool TrySendNow()
    {
        if (_broken || _written == 0)
        {
            _written = 0;
            ReturnBuffer();
            return true;
        }

        int offset = 0;
        while (offset < _written)
        {
            int n;
            SocketError status;
            try
            {
                n = _socket.Send(_buffer.AsSpan(offset, _written - offset), out status);
            }
            catch (ObjectDisposedException)
            {
                n = -1;
                status = SocketError.OperationAborted;
            }

            if (status == SocketError.Success)
            {
                offset += n;
            }
            else if (status == SocketError.WouldBlock)
            {
                _sending = SendRestAsync(_buffer!, offset, _written);
                _buffer = null;
                _written = 0;
                return false;
            }
            else
            {
                _broken = true;
                break;
            }
        }

        _written = 0;
        ReturnBuffer();
        return true;
    }

    /// <summary>The socket was full: waits until it is writable and sends the rest, as often as it takes.</summary>
    private async Task<bool> SendRestAsync(byte[] buffer, int offset, int end)
    {
        try
        {
            while (offset < end)
            {
                await _socket.WaitWritableAsync().ConfigureAwait(false);
                while (offset < end)
                {
                    // Forget old readiness before the send: an EAGAIN now is only ended by a later event.
                    _socket.ResetWritable();
                    int n = _socket.Send(buffer.AsSpan(offset, end - offset), out SocketError status);
                    if (n >= 0)
                    {
                        offset += n;
                    }
                    else if (status == SocketError.WouldBlock)
                    {
                        break;
                    }
                    else
                    {
                        return false;
                    }
                }
            }

            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async ValueTask<FlushResult> FlushSlowAsync(CancellationToken ct)
    {
        while (true)
        {
            Task<bool>? sending = _sending;
            if (sending is null)
            {
                if (TrySendNow())
                {
                    return new FlushResult(TakeCancel(), _broken);
                }

                continue;
            }

            if (!sending.IsCompleted)
            {
                var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Volatile.Write(ref _flushWaiter, waiter);
                if (TakeCancel())
                {
                    Interlocked.CompareExchange(ref _flushWaiter, null, waiter);
                    return new FlushResult(isCanceled: true, isCompleted: false);
                }

                Task woken;
                using (ct.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), waiter))
                {
                    woken = await Task.WhenAny(sending, waiter.Task).ConfigureAwait(false);
                }

                Interlocked.CompareExchange(ref _flushWaiter, null, waiter);
                if (woken != sending)
                {
                    ct.ThrowIfCancellationRequested();
                    TakeCancel();
                    return new FlushResult(isCanceled: true, isCompleted: false);
                }
            }

            if (!await sending.ConfigureAwait(false))
            {
                _broken = true;
            }

            _sending = null;
        }
    }

    private bool TakeCancel() => Volatile.Read(ref _cancelRequested) != 0 && Interlocked.Exchange(ref _cancelRequested, 0) != 0;

    private void ReturnBuffer()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }
}
