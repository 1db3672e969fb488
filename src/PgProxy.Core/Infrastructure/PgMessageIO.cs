using System.Buffers;
using System.IO.Pipelines;
using PgProxy.Protocol;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Infrastructure;

/// <summary>One whole, buffered message read outside the relay (login, auth, reset). Allocates; never on the hot path.</summary>
public readonly record struct PgMessage(byte Type, byte[] Body);

/// <summary>Whole-message reads and writes for the proxy's control flows (login, auth, reset, parameter sync).</summary>
public static class PgMessageIO
{
    /// <summary>
    /// Reads one message; null when the peer closed cleanly. Bodies above <paramref name="maxBody"/> are a protocol
    /// violation. A read woken by CancelPendingRead calls <paramref name="canceled"/> (which may throw), then reads on.
    /// </summary>
    public static async ValueTask<PgMessage?> ReadAsync(PipeReader reader, int maxBody, CancellationToken ct, Action? canceled = null)
    {
        while (true)
        {
            ReadResult result = await reader.ReadAsync(ct).ConfigureAwait(false);
            if (TryTake(reader, result, maxBody, out PgMessage? message))
            {
                return message;
            }

            // IsCanceled without completion: a backend's pump woken for a job it is running now, or the reader's owner
            // woken from outside (the client login's timeout), which canceled decides about.
            if (result.IsCanceled)
            {
                canceled?.Invoke();
            }
        }
    }

    /// <summary>
    /// The message at the front of what a read of <paramref name="reader"/> returned, or its end: true with the
    /// message (the reader advanced past it), or with null when the peer closed cleanly; false when the message is
    /// not all there yet (the reader advanced to examine everything: read again). A caller that reads in its own loop
    /// (a login, with no async method between it and the socket) uses this; <see cref="ReadAsync"/> is that loop.
    /// </summary>
    public static bool TryTake(PipeReader reader, in ReadResult result, int maxBody, out PgMessage? message)
    {
        ReadOnlySequence<byte> buffer = result.Buffer;
        message = null;
        if (MessageHeader.TryRead(buffer, out MessageHeader header, out bool malformed))
        {
            if (malformed)
            {
                reader.AdvanceTo(buffer.Start);
                throw new ProxyException(SqlState.ProtocolViolation, $"invalid message length {header.Length}");
            }

            if (header.BodyLength > maxBody)
            {
                reader.AdvanceTo(buffer.Start);
                throw new ProxyException(SqlState.ProtocolViolation,
                    $"message of type '{(char)header.Type}' is too large ({header.BodyLength} bytes, limit {maxBody})");
            }

            if (buffer.Length >= header.TotalLength)
            {
                byte[] body = buffer.Slice(MessageHeader.Size, header.BodyLength).ToArray();
                reader.AdvanceTo(buffer.GetPosition(header.TotalLength));
                message = new PgMessage(header.Type, body);
                return true;
            }
        }

        reader.AdvanceTo(buffer.Start, buffer.End);
        return result.IsCompleted;
    }

    /// <summary>Writes what <paramref name="builder"/> holds and flushes.</summary>
    public static async ValueTask WriteAsync(PipeWriter writer, PgMessageBuilder builder, CancellationToken ct)
    {
        builder.FlushTo(writer);
        await writer.FlushAsync(ct).ConfigureAwait(false);
    }
}
