using Microsoft.Extensions.Logging;
using PgProxy.Core.Diagnostics;

namespace PgProxy.Core.Client;

/// <summary>Log messages of <see cref="ClientSession"/>. Never a password, SCRAM message or startup packet.</summary>
public sealed partial class ClientSession
{
    [LoggerMessage(EventId = ProxyEventIds.ClientLogin, Level = LogLevel.Information,
        Message = "Client {ConnectionId} from {Remote} logged in to {Database} as {User} ({Auth})")]
    // The session and the peer's address are rendered (their ToString) by the log writer's thread, not the relaying one.
    private static partial void LogLogin(ILogger logger, ClientSession connectionId, object remote, string database, string user, string auth);

    [LoggerMessage(EventId = ProxyEventIds.ClientLinked, Level = LogLevel.Debug,
        Message = "Client {ConnectionId} linked to backend {BackendId} (server pid {ServerPid})")]
    private static partial void LogLinked(ILogger logger, string connectionId, long backendId, int serverPid);

    [LoggerMessage(EventId = ProxyEventIds.ClientLogout, Level = LogLevel.Information,
        Message = "Client {ConnectionId} ({Database}/{User}) logged out: {Reason}")]
    private static partial void LogLogout(ILogger logger, ClientSession connectionId, string database, string user, DisconnectReason reason);

    [LoggerMessage(EventId = ProxyEventIds.ClientUnlinked, Level = LogLevel.Debug, Message = "Client {ConnectionId} unlinked from backend {BackendId}: {Stop}")]
    private static partial void LogUnlinked(ILogger logger, string connectionId, long backendId, Relay.RelayStop stop);

    [LoggerMessage(EventId = ProxyEventIds.ClientRefused, Level = LogLevel.Warning,
        Message = "Client {ConnectionId} from {Remote} refused (database {Database}, user {User}): {SqlState} {Reason}")]
    private static partial void LogRefused(ILogger logger, string connectionId, string remote, string database, string user, string sqlState, string reason);

    [LoggerMessage(EventId = ProxyEventIds.ClientError, Level = LogLevel.Error, Message = "Client {ConnectionId}: unexpected error")]
    private static partial void LogUnexpected(ILogger logger, Exception ex, string connectionId);

    [LoggerMessage(EventId = ProxyEventIds.CancelForwarded, Level = LogLevel.Information,
        Message = "Cancel for client {ConnectionId} forwarded to backend {BackendId} (server pid {ServerPid}){OverTls}")]
    private static partial void LogCancelForwarded(ILogger logger, string connectionId, long backendId, int serverPid, string overTls);

    [LoggerMessage(EventId = ProxyEventIds.CancelForwarded, Level = LogLevel.Information,
        Message = "Cancel received by {ConnectionId} forwarded to peer {PeerId} ({Host}:{Port}), whose client it is")]
    private static partial void LogCancelToPeer(ILogger logger, string connectionId, int peerId, string host, int port);

    [LoggerMessage(EventId = ProxyEventIds.CancelForwarded, Level = LogLevel.Information,
        Message = "Cancel received by {ConnectionId} for peer {PeerId} sent to the {Count} other addresses of peer_dns {PeerDns}")]
    private static partial void LogCancelToPeers(ILogger logger, string connectionId, int peerId, int count, string peerDns);

    [LoggerMessage(EventId = ProxyEventIds.CancelUnknown, Level = LogLevel.Warning,
        Message = "Cancel received by {ConnectionId} for peer {PeerId} came back while it was being forwarded: not forwarded again (are two replicas using the same peer_id?)")]
    private static partial void LogCancelLoop(ILogger logger, string connectionId, int peerId);

    [LoggerMessage(EventId = ProxyEventIds.CancelIgnored, Level = LogLevel.Debug, Message = "Cancel for client {ConnectionId} ignored: no backend linked")]
    private static partial void LogCancelIgnored(ILogger logger, string connectionId);

    [LoggerMessage(EventId = ProxyEventIds.CancelUnknown, Level = LogLevel.Debug, Message = "Cancel request on {ConnectionId} matched no client")]
    private static partial void LogCancelUnknown(ILogger logger, string connectionId);

    [LoggerMessage(EventId = ProxyEventIds.CancelFailed, Level = LogLevel.Warning, Message = "Cancel request on {ConnectionId} could not be forwarded: {Reason}")]
    private static partial void LogCancelFailed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(EventId = ProxyEventIds.ClientTlsFailed, Level = LogLevel.Information,
        Message = "Client {ConnectionId} from {Remote}: TLS handshake failed: {Reason}")]
    private static partial void LogTlsFailed(ILogger logger, string connectionId, string remote, string reason);

    [LoggerMessage(EventId = ProxyEventIds.ClientTlsUnavailable, Level = LogLevel.Error,
        Message = "TLS for clients is unavailable: cannot load client_tls_cert_file {CertFile} with client_tls_key_file {KeyFile}; answering SSLRequest with N")]
    private static partial void LogTlsUnavailable(ILogger logger, Exception ex, string certFile, string keyFile);
}
