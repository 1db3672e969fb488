using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace PgProxy.Core.Infrastructure;

/// <summary>
/// The one classifier for "the transport is gone": the peer closed or reset the connection, it was aborted, or the
/// socket was disposed under a pending operation. Such failures end a connection quietly (logged at Debug).
/// Anything else, InvalidOperationException included, is a bug and reaches the per-connection catch-all.
/// </summary>
public static class TransportErrors
{
    /// <summary>True when <paramref name="ex"/> means the connection is gone, not that the proxy misbehaved.</summary>
    public static bool IsTransportGone(Exception ex) =>
        ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException;
}
