using Microsoft.AspNetCore.Connections;

namespace PgProxy.Core.Backend;

/// <summary>Opens a connected transport to a backend. The composition root supplies the socket implementation.</summary>
public interface IBackendTransport
{
    /// <summary>Connects to host:port; throws on failure or cancellation.</summary>
    ValueTask<ConnectionContext> ConnectAsync(string host, int port, CancellationToken ct);
}
