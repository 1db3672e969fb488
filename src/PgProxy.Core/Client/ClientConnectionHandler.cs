using Microsoft.AspNetCore.Connections;

namespace PgProxy.Core.Client;

/// <summary>Kestrel's entry point for the PostgreSQL port: one <see cref="ClientSession"/> per accepted socket.</summary>
public sealed class ClientConnectionHandler : ConnectionHandler
{
    private readonly ProxyServices _services;

    /// <summary>Creates the handler.</summary>
    public ClientConnectionHandler(ProxyServices services)
    {
        _services = services;
    }

    /// <inheritdoc />
    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        var session = new ClientSession(connection, _services);
        return session.RunAsync();
    }
}
