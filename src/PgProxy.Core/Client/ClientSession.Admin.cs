using System.Globalization;
using System.Net;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Client;

/// <summary>What the admin console reads of a session (SHOW CLIENTS) and how it ends one (KILL, KILL_CLIENT).</summary>
public sealed partial class ClientSession
{
    /// <summary>The database name the client asked for.</summary>
    internal string Database => _database;

    /// <summary>The user the client logged in as.</summary>
    internal string User => _user;

    /// <summary>The client's pool, once logged in.</summary>
    internal Pool? Pool => _pool;

    /// <summary>The client's relay, once welcomed.</summary>
    internal MessageRelay? Relay => Volatile.Read(ref _relay);

    /// <summary>The number in the connection id (<c>c42</c>: 42): SHOW CLIENTS' id, what KILL_CLIENT takes.</summary>
    internal long Id =>
        long.TryParse(_connection.ConnectionId.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? id : 0;

    /// <summary>The connection id, as the log names the client.</summary>
    internal string ConnectionId => _connection.ConnectionId;

    /// <summary>The client's address (asked of the kernel).</summary>
    internal EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>The proxy's address the client connected to.</summary>
    internal EndPoint? LocalEndPoint => _connection.LocalEndPoint;

    /// <summary>The TLS protocol and cipher suite ("TLSv1.3/TLS_AES_256_GCM_SHA384"), or "" for a plaintext client.</summary>
    internal string Tls => PgProxy.Core.Tls.TlsPipe.Describe(_connection.Transport);

    /// <summary>When the client connected (the pool clock's timestamp).</summary>
    internal long ConnectedAt => _connectedAt;

    /// <summary>The session is being ended (a timeout, the drain, KILL): PgBouncer's close_needed.</summary>
    internal bool CloseNeeded => Volatile.Read(ref _abort) is not null;

    /// <summary>
    /// KILL and KILL_CLIENT: the client is told FATAL 57P01 <paramref name="message"/> and closed now, with whatever
    /// it runs canceled on the server first; a client waiting for a server stops waiting.
    /// </summary>
    internal void Kill(string message)
    {
        if (_ended || Volatile.Read(ref _abort) is not null)
        {
            return;
        }

        if (Volatile.Read(ref _relay) is { } relay)
        {
            if (relay.BusySince != 0)
            {
                _ = CancelQuietlyAsync();
            }

            if (relay.State == ClientState.Waiting)
            {
                _pool?.FailWaiter(new ProxyException(SqlState.AdminShutdown, message), _connection.ConnectionClosed);
            }
        }

        Abort(ErrorResponse.Fatal(SqlState.AdminShutdown, message));
    }
}
