using System.Net;
using PgProxy.Core.Cancellation;
using PgProxy.Core.Configuration;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Client;

/// <summary>
/// A CancelRequest arriving on a fresh connection: the client it names is ours (forwarded to its linked backend), or,
/// with peering on, another replica's, whose address [peers.N] or peer_dns gives.
/// </summary>
public sealed partial class ClientSession
{
    private async Task HandleCancelRequestAsync(StartupPacket packet)
    {
        int pid = packet.CancelProcessId;
        int secret = packet.CancelSecretKey;
        ICancelTarget? target = _services.CancelKeys.Find(pid, secret);
        int peer = CancelKeyMap.PeerOf(pid);
        bool toPeer = target is null && Config.Proxy.PeerId != 0 && peer != Config.Proxy.PeerId;
        PeerConfig? owner = null;
        bool throughDns = toPeer && !Config.Peers.TryGetValue(peer, out owner) && Config.Proxy.PeerDns.Length > 0;
        if (target is null && owner is null && !throughDns)
        {
            LogCancelUnknown(Logger, _connection.ConnectionId);
            return;
        }

        using var cts = new CancellationTokenSource(Config.Proxy.ServerConnectTimeout > TimeSpan.Zero ? Config.Proxy.ServerConnectTimeout : TimeSpan.FromSeconds(15));
        try
        {
            if (target is not null)
            {
                await target.CancelAsync(cts.Token).ConfigureAwait(false);
            }
            else if (owner is not null)
            {
                if (await ForwardToPeersAsync(pid, secret, peer, [(owner.Host, owner.Port)], cts.Token).ConfigureAwait(false) > 0)
                {
                    LogCancelToPeer(Logger, _connection.ConnectionId, peer, owner.Host, owner.Port);
                }
            }
            else if (await PeerDnsTargetsAsync(cts.Token).ConfigureAwait(false) is { } others)
            {
                await ForwardToPeersAsync(pid, secret, peer, others, cts.Token).ConfigureAwait(false);
                LogCancelToPeers(Logger, _connection.ConnectionId, peer, others.Count, Config.Proxy.PeerDns);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException or
                                       PgProxy.Core.Tls.ServerTlsException or ArgumentException)
        {
            LogCancelFailed(Logger, _connection.ConnectionId, ex.Message);
        }
    }

    /// <summary>
    /// peer_dns: every address the name resolves to but this replica's own; null (and logged) when the request came
    /// from one of them, which forwarded it already, so it is not sent on.
    /// </summary>
    private async Task<List<(string Host, int Port)>?> PeerDnsTargetsAsync(CancellationToken ct)
    {
        if (ConfigLoader.PeerDnsTarget(Config.Proxy.PeerDns) is not { } dns)
        {
            return null;
        }

        IPAddress[] addresses = await _services.ResolvePeers(dns.Name, ct).ConfigureAwait(false);
        IPAddress? from = (_connection.RemoteEndPoint as IPEndPoint)?.Address;
        if (from is not null && addresses.Any(a => a.Equals(from)))
        {
            LogCancelUnknown(Logger, _connection.ConnectionId);
            return null;
        }

        IPAddress? self = (_connection.LocalEndPoint as IPEndPoint)?.Address;
        return [.. addresses.Where(a => !a.Equals(self)).Select(a => (a.ToString(), dns.Port))];
    }

    /// <summary>
    /// Forwards another replica's CancelRequest to <paramref name="targets"/> (the owner acts on it, others find no
    /// client), unless the same key is being forwarded from here already: then it came back round a loop. Returns
    /// how many targets took it (failures are logged).
    /// </summary>
    private async Task<int> ForwardToPeersAsync(int pid, int secret, int peer, List<(string Host, int Port)> targets, CancellationToken ct)
    {
        if (!_services.PeerCancels.TryBegin(pid, secret))
        {
            LogCancelLoop(Logger, _connection.ConnectionId, peer);
            return 0;
        }

        try
        {
            bool[] delivered = await Task.WhenAll(targets.Select(async t =>
            {
                try
                {
                    await _services.Pools.Connector.ForwardCancelAsync(t.Host, t.Port, pid, secret, ct).ConfigureAwait(false);
                    return true;
                }
                catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException)
                {
                    LogCancelFailed(Logger, _connection.ConnectionId, $"{t.Host}:{t.Port}: {ex.Message}");
                    return false;
                }
            })).ConfigureAwait(false);
            return delivered.Count(d => d);
        }
        finally
        {
            _services.PeerCancels.End(pid, secret);
        }
    }
}
