using System.Net;
using System.Net.Sockets;
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
        Socket socket = await ConnectSocketAsync(host, port, ct).ConfigureAwait(false);
        return new SocketConnection(socket, "s" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <inheritdoc />
    public async ValueTask SendCancelAsync(string host, int port, ReadOnlyMemory<byte> packet, CancellationToken ct)
    {
        using Socket socket = await ConnectSocketAsync(host, port, ct).ConfigureAwait(false);
        await socket.SendAsync(packet, SocketFlags.None, ct).ConfigureAwait(false);
        // PostgreSQL answers a CancelRequest by closing; wait for that so the cancel is delivered before we return.
        byte[] sink = new byte[1];
        try
        {
            await socket.ReceiveAsync(sink, SocketFlags.None, ct).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            // Closed with a reset: also fine.
        }
    }

    private static async Task<Socket> ConnectSocketAsync(string host, int port, CancellationToken ct)
    {
        EndPoint endpoint = IPAddress.TryParse(host, out IPAddress? address) ? new IPEndPoint(address, port) : new DnsEndPoint(host, port);
        var socket = new Socket(endpoint.AddressFamily == AddressFamily.Unspecified ? AddressFamily.InterNetworkV6 : endpoint.AddressFamily,
            SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
        };
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.DualMode = true;
        }

        try
        {
            await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
