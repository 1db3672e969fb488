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
        return new SocketConnection(socket, 's', Interlocked.Increment(ref _nextId));
    }
}
