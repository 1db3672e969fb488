using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using PgProxy.Core.Cancellation;

namespace PgProxy.IntegrationTests;

/// <summary>
/// Peering (PgBouncer's peer_id and [peers.N]): two proxies on one machine, as two replicas behind a Service. A
/// client of one sends its CancelRequest to the other (as a Service may route it); the key carries the owner's
/// peer_id, so the other forwards it and the query is canceled. A key that would go round in circles stops.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PeeringTests(PostgresFixture pg)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact(Timeout = 90_000)]
    public async Task ACancelSentToTheOtherReplica_CancelsTheQuery()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy a = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\npeer_id = 1", authType: "trust");
        await using TestProxy b = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\npeer_id = 2", authType: "trust");
        // Now that the ports are known, each learns the other (a reload, as an operator would roll it out).
        await AddPeerAsync(a, 2, b.Port);
        await AddPeerAsync(b, 1, a.Port);

        await using RawPgClient client = await RawPgClient.ConnectAsync(a.Port, ct);
        (int pid, int secret) = await LoginAsync(client, ct);

        Assert.Equal(1, CancelKeyMap.PeerOf(pid)); // the key names its replica

        await client.SendAsync(RawPgClient.Message('Q', [.. Encoding.UTF8.GetBytes("SELECT pg_sleep(30)"), 0]), ct);
        await Await.UntilAsync(async () => await pg.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'", ct: ct) == 1, ct, seconds: 10);

        await SendCancelAsync(b.Port, pid, secret, ct); // to the replica that does not hold the client
        (char Type, byte[] Body) reply = (await client.ReadMessageAsync(Wait, ct))!.Value;
        while (reply.Type is 'T' or 'N')
        {
            reply = (await client.ReadMessageAsync(Wait, ct))!.Value;
        }

        Assert.Equal('E', reply.Type);
        Assert.Equal("57014", RawPgClient.ErrorFields(reply.Body)['C']);
        await Await.UntilAsync(() => b.LogText.Contains("forwarded to peer 1", StringComparison.Ordinal), ct, seconds: 10);

        // A wrong key reaches nothing on either replica, and a key of no configured peer is ignored.
        await SendCancelAsync(b.Port, pid, secret + 1, ct);
        await SendCancelAsync(b.Port, (7 << CancelKeyMap.PeerShift) | 5, secret, ct);
        // b cannot judge the secret of a's client: it forwards the wrong key too, and a matches nothing with it.
        await Await.UntilAsync(() => a.Log.Any(l => l.Contains("matched no client", StringComparison.Ordinal)), ct, seconds: 10);
        Assert.Equal(2, b.Log.Count(l => l.Contains("forwarded to peer 1", StringComparison.Ordinal)));
        // Peer 7 is nobody b knows: nothing is forwarded.
        await Await.UntilAsync(() => b.Log.Any(l => l.Contains("matched no client", StringComparison.Ordinal)), ct, seconds: 10);
    }

    [Fact(Timeout = 90_000)]
    public async Task PeersFoundThroughDns_GetTheCancel_AndNoneSendsItOn()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        // Two replicas on one port at two loopback addresses, as pods behind a headless Service.
        int port = FreePort();
        string section(int id) => $"pool_mode = \"transaction\"\npeer_id = {id}\npeer_dns = \"pgproxy-peers.test:{port}\"";
        await using TestProxy a = await TestProxy.StartAsync(pg, section(1), authType: "trust", listen: $"127.0.0.1:{port}");
        await using TestProxy b = await TestProxy.StartAsync(pg, section(2), authType: "trust", listen: $"127.0.0.2:{port}");
        Task<System.Net.IPAddress[]> Resolve(string name, CancellationToken _) =>
            Task.FromResult(name == "pgproxy-peers.test" ? new[] { System.Net.IPAddress.Parse("127.0.0.1"), System.Net.IPAddress.Parse("127.0.0.2") } : []);
        a.Services.ResolvePeers = Resolve;
        b.Services.ResolvePeers = Resolve;

        await using RawPgClient client = await RawPgClient.ConnectAsync(a.Port, ct);
        (int pid, int secret) = await LoginAsync(client, ct);
        await client.SendAsync(RawPgClient.Message('Q', [.. Encoding.UTF8.GetBytes("SELECT pg_sleep(31)"), 0]), ct);
        await Await.UntilAsync(async () => await pg.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(31)' AND state = 'active'", ct: ct) == 1, ct, seconds: 10);

        // From a client address (not a peer's), to b: b sends it to a, the owner.
        await SendCancelAsync(System.Net.IPAddress.Parse("127.0.0.2"), port, pid, secret, System.Net.IPAddress.Parse("127.0.0.3"), ct);
        (char Type, byte[] Body) reply = (await client.ReadMessageAsync(Wait, ct))!.Value;
        while (reply.Type is 'T' or 'N')
        {
            reply = (await client.ReadMessageAsync(Wait, ct))!.Value;
        }

        Assert.Equal("57014", RawPgClient.ErrorFields(reply.Body)['C']);
        Assert.Contains(b.Log, l => l.Contains("sent to the 1 other addresses of peer_dns", StringComparison.Ordinal));

        // From a peer's address, the request was forwarded already: b does not send it on.
        await SendCancelAsync(System.Net.IPAddress.Parse("127.0.0.2"), port, pid, secret, System.Net.IPAddress.Parse("127.0.0.1"), ct);
        await Await.UntilAsync(() => b.Log.Any(l => l.Contains("matched no client", StringComparison.Ordinal)), ct, seconds: 10);
        Assert.Single(b.Log, l => l.Contains("other addresses of peer_dns", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task AKeyThatWouldGoRoundInCircles_IsForwardedOnce()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy b = await TestProxy.StartAsync(pg, "peer_id = 2", authType: "trust");
        // Misconfigured: peer 1 is said to be this very process.
        await AddPeerAsync(b, 1, b.Port);
        await SendCancelAsync(b.Port, (1 << CancelKeyMap.PeerShift) | 42, 1234, ct);
        await Await.UntilAsync(() => b.LogText.Contains("came back while it was being forwarded", StringComparison.Ordinal), ct, seconds: 10);
    }

    [Fact]
    public void PeersNeedAPeerId()
    {
        string dir = Directory.CreateTempSubdirectory("pgproxy-peers").FullName;
        try
        {
            string path = Path.Combine(dir, "p.toml");
            File.WriteAllText(path, "[auth]\ntype = \"trust\"\n[databases.x]\nhost = \"h\"\n[peers.2]\nhost = \"10.0.0.2\"\n[peers.zero]\nport = 1\n");
            string errors = string.Join("\n", Core.Configuration.ConfigLoader.LoadFile(path).Errors);
            Assert.Contains("[peers.N] sections and peer_dns need [proxy] peer_id", errors, StringComparison.Ordinal);
            File.WriteAllText(path, "[proxy]\npeer_id = 3\npeer_dns = \"pgproxy-headless\"\n[auth]\ntype = \"trust\"\n[databases.x]\nhost = \"h\"\n");
            Assert.Contains("peer_dns: expected \"NAME:PORT\"", string.Join("\n", Core.Configuration.ConfigLoader.LoadFile(path).Errors), StringComparison.Ordinal);
            Assert.Contains("[peers.zero]: the section's name is a peer_id, 1 to 16383", errors, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task AddPeerAsync(TestProxy proxy, int id, int port)
    {
        await File.AppendAllTextAsync(proxy.ConfigPath,
            $"\n[peers.{id.ToString(CultureInfo.InvariantCulture)}]\nhost = \"127.0.0.1\"\nport = {port.ToString(CultureInfo.InvariantCulture)}\n");
        Assert.Null(proxy.Services.Reload!());
        Assert.True(proxy.Services.Config.Peers.ContainsKey(id));
    }

    private static int FreePort()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        return ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static async Task<(int Pid, int Secret)> LoginAsync(RawPgClient client, CancellationToken ct)
    {
        await client.SendAsync(RawPgClient.Startup(196608, ("user", PostgresFixture.Alice), ("database", PostgresFixture.Database)), ct);
        (int pid, int secret) = (0, 0);
        while (true)
        {
            (char type, byte[] body) = (await client.ReadMessageAsync(Wait, ct))!.Value;
            if (type == 'K')
            {
                (pid, secret) = (BinaryPrimitives.ReadInt32BigEndian(body), BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(4)));
            }
            else if (type == 'Z')
            {
                return (pid, secret);
            }
        }
    }

    /// <summary>A CancelRequest to address:port from the source address <paramref name="from"/>; returns once the proxy closed it.</summary>
    private static async Task SendCancelAsync(System.Net.IPAddress to, int port, int pid, int secret, System.Net.IPAddress from, CancellationToken ct)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(from, 0));
        await socket.ConnectAsync(new System.Net.IPEndPoint(to, port), ct);
        await socket.SendAsync(CancelPacket(pid, secret), ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Wait);
        Assert.Equal(0, await socket.ReceiveAsync(new byte[16], timeout.Token)); // closed once the proxy acted on it
    }

    private static byte[] CancelPacket(int pid, int secret)
    {
        byte[] packet = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(packet, 16);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), 80877102);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(8), pid);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(12), secret);
        return packet;
    }

    private static async Task SendCancelAsync(int port, int pid, int secret, CancellationToken ct)
    {
        await using RawPgClient cancel = await RawPgClient.ConnectAsync(port, ct);
        await cancel.SendAsync(CancelPacket(pid, secret), ct);
        Assert.True(await cancel.IsClosedAsync(Wait, ct), "the proxy closes a cancel connection once it has acted on it");
    }
}
