using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Backend;
using PgProxy.Transport;

namespace PgProxy.Hosting;

/// <summary>Backend sockets as <see cref="SocketConnection"/>s, the same transport as the client side.</summary>
public sealed class SocketBackendTransport : IBackendTransport
{
    private long _nextId;

    /// <inheritdoc />
    public async ValueTask<ConnectionContext> ConnectAsync(string host, int port, CancellationToken ct)
    {
        PollSocket socket = await PollSocket.ConnectAsync(host, port, ct).ConfigureAwait(false);
        return new SocketConnection(socket, "s" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <inheritdoc />
    public async ValueTask SendCancelAsync(string host, int port, ReadOnlyMemory<byte> packet, CancellationToken ct)
    {
        PollSocket socket = await PollSocket.ConnectAsync(host, port, ct).ConfigureAwait(false);
        await using var connection = new SocketConnection(socket, "cancel");
        await connection.Output.WriteAsync(packet, ct).ConfigureAwait(false);
        // PostgreSQL answers a CancelRequest by closing; wait for that so the cancel is delivered before we return.
        try
        {
            while (true)
            {
                ReadResult read = await connection.Input.ReadAsync(ct).ConfigureAwait(false);
                connection.Input.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (IOException)
        {
            // Closed with a reset: also fine.
        }
    }
}
