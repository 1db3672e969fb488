using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Client;
using PgProxy.Transport;

namespace PgProxy.Hosting;

/// <summary>
/// Accepts PostgreSQL clients on the listen addresses and runs one <see cref="ClientSession"/> per socket.
/// Each accepted socket becomes a <see cref="SocketConnection"/> (reader and writer directly on the socket, driven by
/// the poll loops; see there why not Kestrel or .NET's socket engine). Stopping closes the listeners, waits for
/// sessions until the deadline, then aborts the rest.
/// </summary>
public sealed class ClientListener : ISocketConnectionOwner
{
    private readonly ProxyServices _services;
    private readonly ILogger _logger;
    private readonly List<PollListener> _listeners = [];
    // The open connections, to abort at stop: a list threaded through the connections themselves (two fields each),
    // not a dictionary node and bucket per client.
    private readonly Lock _connectionsLock = new();
    private SocketConnection? _first;
    private long _nextId;

    private ClientListener(ProxyServices services, ILogger logger)
    {
        _services = services;
        _logger = logger;
    }

    /// <summary>The endpoints bound (port 0 resolved).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => _listeners.Select(l => l.LocalEndPoint).ToList();

    /// <summary>Binds every endpoint (throws <see cref="SocketException"/> when one cannot be bound) and starts accepting.</summary>
    public static ClientListener Start(IEnumerable<IPEndPoint> endpoints, ProxyServices services, ILogger logger)
    {
        var listener = new ClientListener(services, logger);
        try
        {
            foreach (IPEndPoint endpoint in endpoints)
            {
                listener._listeners.Add(PollListener.Start(endpoint, listener.Accepted, listener.AcceptFailed));
            }
        }
        catch
        {
            foreach (PollListener l in listener._listeners)
            {
                l.Dispose();
            }

            throw;
        }

        return listener;
    }

    private void Accepted(PollSocket socket)
    {
        var connection = new SocketConnection(socket, 'c', Interlocked.Increment(ref _nextId), this);
        lock (_connectionsLock)
        {
            connection.NextInOwner = _first;
            if (_first is not null)
            {
                _first.PreviousInOwner = connection;
            }

            _first = connection;
        }

        // Started on the accepting thread, up to its first wait (usually the startup packet's read, or the first read
        // after a trust login whose bytes were already there): no thread-pool hop per login. The session owns the
        // connection and disposes it at its end, which removes it here: no wrapper task per client.
        _ = new ClientSession(connection, _services).RunAsync();
    }

    private void AcceptFailed(SocketError error) =>
        // Out of file descriptors and the like: say so; the listener tries again shortly.
        _logger.LogWarning(new EventId(Core.Diagnostics.ProxyEventIds.Listening, "AcceptFailed"), "accept() failed: {Error}", error);

    /// <inheritdoc />
    void ISocketConnectionOwner.Closed(SocketConnection connection)
    {
        lock (_connectionsLock)
        {
            if (connection.PreviousInOwner is { } previous)
            {
                previous.NextInOwner = connection.NextInOwner;
            }
            else if (_first == connection)
            {
                _first = connection.NextInOwner;
            }
            else
            {
                return; // not listed (or unlisted already)
            }

            if (connection.NextInOwner is { } next)
            {
                next.PreviousInOwner = connection.PreviousInOwner;
            }

            connection.PreviousInOwner = connection.NextInOwner = null;
        }
    }

    private bool HasConnections
    {
        get
        {
            lock (_connectionsLock)
            {
                return _first is not null;
            }
        }
    }

    /// <summary>Stops accepting, gives sessions until <paramref name="ct"/> to end, then closes the rest.</summary>
    public async Task StopAsync(CancellationToken ct)
    {
        foreach (PollListener listen in _listeners)
        {
            listen.Dispose();
        }

        if (await DrainedAsync(ct).ConfigureAwait(false))
        {
            return;
        }

        var open = new List<SocketConnection>();
        lock (_connectionsLock)
        {
            for (SocketConnection? c = _first; c is not null; c = c.NextInOwner)
            {
                open.Add(c);
            }
        }

        foreach (SocketConnection connection in open)
        {
            connection.Abort();
        }

        // Aborted sessions end at their next read or write; give them a bounded moment to clean up their servers.
        using var aborting = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await DrainedAsync(aborting.Token).ConfigureAwait(false);
    }

    private async Task<bool> DrainedAsync(CancellationToken ct)
    {
        while (HasConnections)
        {
            try
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return !HasConnections;
            }
        }

        return true;
    }
}
