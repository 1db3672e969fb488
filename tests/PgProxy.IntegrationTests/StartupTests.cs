using System.Buffers.Binary;
using System.Text;

namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class StartupTests(PostgresFixture pg)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static async Task<Dictionary<char, string>> ExpectFatalAsync(RawPgClient client)
    {
        (char Type, byte[] Body)? m = await client.ReadMessageAsync(Wait);
        while (m is { Type: 'v' })
        {
            m = await client.ReadMessageAsync(Wait);
        }

        Assert.NotNull(m);
        Assert.Equal('E', m.Value.Type);
        Dictionary<char, string> fields = RawPgClient.ErrorFields(m.Value.Body);
        Assert.Equal("FATAL", fields['V']);
        Assert.True(await client.IsClosedAsync(Wait), "socket closed after FATAL");
        return fields;
    }

    [Theory(Timeout = 60_000)]
    [InlineData(4)]
    [InlineData(7)]
    [InlineData(10_001)]
    [InlineData(-1)]
    public async Task StartupLength_OutOfRange_Fatal08P01(int length)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] packet = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(packet, length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), 196608);
        await client.SendAsync(packet, ct: TestContext.Current.CancellationToken);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("08P01", e['C']);
        Assert.Equal("invalid length of startup packet", e['M']);
    }

    [Fact(Timeout = 60_000)]
    public async Task UnknownProtocolCode_Fatal08P01()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await client.SendAsync(RawPgClient.Startup(0x00020000, ("user", "alice")), ct: TestContext.Current.CancellationToken);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("08P01", e['C']);
        Assert.Contains("unsupported frontend protocol 2.0", e['M'], StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task UnterminatedParameters_Fatal08P01()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] packet = RawPgClient.Startup(196608, ("user", "alice"));
        packet[^1] = (byte)'x';
        await client.SendAsync(packet, ct: TestContext.Current.CancellationToken);
        Assert.Equal("08P01", (await ExpectFatalAsync(client))['C']);
    }

    [Fact(Timeout = 60_000)]
    public async Task SslAndGssRequests_AnsweredN_ThenStartupProceeds()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] gss = EncryptionRequest(80877104);
        await client.SendAsync(gss, ct: TestContext.Current.CancellationToken);
        Assert.Equal('N', await client.ReadByteAsync(Wait, ct: TestContext.Current.CancellationToken));
        byte[] ssl = EncryptionRequest(80877103);
        await client.SendAsync(ssl, ct: TestContext.Current.CancellationToken);
        Assert.Equal('N', await client.ReadByteAsync(Wait, ct: TestContext.Current.CancellationToken));
        await client.SendAsync(RawPgClient.Startup(196608, ("user", "alice"), ("database", "appdb")), ct: TestContext.Current.CancellationToken);
        (char Type, byte[] Body)? m = await client.ReadMessageAsync(Wait, ct: TestContext.Current.CancellationToken);
        Assert.Equal('R', m!.Value.Type);
        Assert.Equal(10, BinaryPrimitives.ReadInt32BigEndian(m.Value.Body)); // AuthenticationSASL
    }

    [Fact(Timeout = 60_000)]
    public async Task ThirdEncryptionRequest_Fatal08P01()
    {
        // Two requests are answered 'N' before the login starts, the third is counted on by the login and refused.
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] ssl = EncryptionRequest(80877103);
        for (int i = 0; i < 2; i++)
        {
            await client.SendAsync(ssl, ct: TestContext.Current.CancellationToken);
            Assert.Equal('N', await client.ReadByteAsync(Wait, ct: TestContext.Current.CancellationToken));
        }

        await client.SendAsync(ssl, ct: TestContext.Current.CancellationToken);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("08P01", e['C']);
        Assert.Equal("too many encryption negotiation requests", e['M']);
    }

    [Fact(Timeout = 60_000)]
    public async Task SslRequestAndStartupInOneWrite_AnsweredN_ThenLogsIn()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] ssl = EncryptionRequest(80877103);
        byte[] startup = RawPgClient.Startup(196608, ("user", PostgresFixture.Alice), ("database", PostgresFixture.Database));
        await client.SendAsync([.. ssl, .. startup], ct: TestContext.Current.CancellationToken);
        Assert.Equal('N', await client.ReadByteAsync(Wait, ct: TestContext.Current.CancellationToken));
        (char Type, byte[] Body)? message;
        do
        {
            message = await client.ReadMessageAsync(Wait, TestContext.Current.CancellationToken);
            Assert.NotNull(message);
            Assert.NotEqual('E', message.Value.Type);
        }
        while (message.Value.Type != 'Z');
    }

    [Fact(Timeout = 60_000)]
    public async Task NewerMinorAndPqOptions_GetNegotiateProtocolVersion()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await client.SendAsync(RawPgClient.Startup(196610, ("user", "alice"), ("database", "appdb"), ("_pq_.future", "on")), ct: TestContext.Current.CancellationToken);
        (char Type, byte[] Body)? m = await client.ReadMessageAsync(Wait, ct: TestContext.Current.CancellationToken);
        Assert.Equal('v', m!.Value.Type);
        Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(m.Value.Body));
        Assert.Equal(1, BinaryPrimitives.ReadInt32BigEndian(m.Value.Body.AsSpan(4)));
        Assert.Equal("_pq_.future\0", Encoding.UTF8.GetString(m.Value.Body, 8, m.Value.Body.Length - 8));
        Assert.Equal('R', (await client.ReadMessageAsync(Wait, ct: TestContext.Current.CancellationToken))!.Value.Type);
    }

    [Fact(Timeout = 60_000)]
    public async Task NoUser_Fatal28000()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await client.SendAsync(RawPgClient.Startup(196608, ("database", "appdb")), ct: TestContext.Current.CancellationToken);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("28000", e['C']);
        Assert.Equal("no PostgreSQL user name specified in startup packet", e['M']);
    }

    [Fact(Timeout = 60_000)]
    public async Task UnknownDatabase_Fatal3D000_WordedLikePostgres()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(database: "nosuchdb", ct: TestContext.Current.CancellationToken));
        Assert.Equal("3D000", ex.SqlState);
        Assert.Equal("database \"nosuchdb\" does not exist", ex.MessageText);
    }

    [Fact(Timeout = 60_000)]
    public async Task OversizedPasswordMessage_Fatal08P01()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "md5");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await client.SendAsync(RawPgClient.Startup(196608, ("user", "bob"), ("database", "appdb")), ct: TestContext.Current.CancellationToken);
        Assert.Equal('R', (await client.ReadMessageAsync(Wait, ct: TestContext.Current.CancellationToken))!.Value.Type);
        byte[] header = new byte[5];
        header[0] = (byte)'p';
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), 100_000_000);
        await client.SendAsync(header, ct: TestContext.Current.CancellationToken);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("08P01", e['C']);
    }

    [Fact(Timeout = 60_000)]
    public async Task MaxClientConn_RefusesTheNextClient_With53300()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "max_client_conn = 3");
        var held = new List<NpgsqlConnection>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                held.Add(await proxy.OpenAsync(ct: TestContext.Current.CancellationToken));
            }

            PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(ct: TestContext.Current.CancellationToken));
            Assert.Equal("53300", ex.SqlState);
            Assert.Equal("sorry, too many clients already", ex.MessageText);
        }
        finally
        {
            foreach (NpgsqlConnection c in held)
            {
                await c.DisposeAsync();
            }
        }

        // Slots free again once clients leave: as soon as the proxy has seen them go (their Terminate is handled on
        // the proxy's side, a moment after the client's close returns).
        for (int i = 0; i < 100 && proxy.Services.ClientCount > 0; i++)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        Assert.Equal(0, proxy.Services.ClientCount);
        await using NpgsqlConnection again = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        Assert.Equal(System.Data.ConnectionState.Open, again.State);
    }

    [Fact(Timeout = 60_000)]
    public async Task SilentClient_ToldLoginTimeout57014_AndDropped()
    {
        // The session of a client that has sent nothing waits on a parked read (no login running yet): the deadline
        // wakes it, and it ends as a stalled login does.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "client_login_timeout = \"500ms\"");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await WaitForClientsAsync(proxy, 1);
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("57014", e['C']);
        Assert.True(await client.IsClosedAsync(TimeSpan.FromSeconds(10), ct: TestContext.Current.CancellationToken));
        await WaitForNoClientsAsync(proxy);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartupPacketInPieces_AfterAPause_LogsIn()
    {
        // The first bytes start the login; the rest of the packet comes later, and the login waits for it.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        byte[] startup = RawPgClient.Startup(196608, ("user", PostgresFixture.Alice), ("database", PostgresFixture.Database));
        await Task.Delay(200, TestContext.Current.CancellationToken);
        await client.SendAsync(startup[..3], ct: TestContext.Current.CancellationToken);
        await Task.Delay(200, TestContext.Current.CancellationToken);
        await client.SendAsync(startup[3..], ct: TestContext.Current.CancellationToken);
        (char Type, byte[] Body)? message;
        do
        {
            message = await client.ReadMessageAsync(Wait, TestContext.Current.CancellationToken);
            Assert.NotNull(message);
            Assert.NotEqual('E', message.Value.Type);
        }
        while (message.Value.Type != 'Z');
    }

    [Fact(Timeout = 60_000)]
    public async Task ClientStalledAtPasswordRequest_ToldLoginTimeout57014_AndClosed()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "client_login_timeout = \"500ms\"", authType: "md5");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        // SSLRequest answered 'N' (no TLS configured), then the startup packet; the client never answers the md5 request.
        await client.SendAsync([0, 0, 0, 8, 4, 210, 22, 47], ct: TestContext.Current.CancellationToken);
        Assert.Equal('N', await client.ReadByteAsync(Wait, TestContext.Current.CancellationToken));
        await client.SendAsync(RawPgClient.Startup(196608, ("user", PostgresFixture.Alice), ("database", PostgresFixture.Database)),
            ct: TestContext.Current.CancellationToken);
        (char Type, byte[] Body)? request = await client.ReadMessageAsync(Wait, TestContext.Current.CancellationToken);
        Assert.Equal('R', request?.Type);
        Assert.Equal(5, BinaryPrimitives.ReadInt32BigEndian(request!.Value.Body)); // AuthenticationMD5Password

        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("57014", e['C']);
        Assert.Equal("canceling authentication due to timeout (client_login_timeout 500ms)", e['M']);
        await WaitForNoClientsAsync(proxy);
    }

    [Fact(Timeout = 60_000)]
    public async Task ClientStalledAfterSslRequest_ToldLoginTimeout_AndALaterLoginWorks()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "client_login_timeout = \"500ms\"");
        await using RawPgClient client = await RawPgClient.ConnectAsync(proxy.Port, ct: TestContext.Current.CancellationToken);
        await client.SendAsync([0, 0, 0, 8, 4, 210, 22, 47], ct: TestContext.Current.CancellationToken);
        Assert.Equal('N', await client.ReadByteAsync(Wait, TestContext.Current.CancellationToken));
        Dictionary<char, string> e = await ExpectFatalAsync(client);
        Assert.Equal("57014", e['C']);
        await WaitForNoClientsAsync(proxy);

        // A login well within the timeout is not cut short by it, nor is the session after it.
        await using Npgsql.NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await Task.Delay(800, TestContext.Current.CancellationToken);
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT 41 + 1", conn);
        Assert.Equal(42, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    /// <summary>An SSLRequest (80877103) or GSSENCRequest (80877104): length 8, then the code.</summary>
    private static byte[] EncryptionRequest(int code)
    {
        byte[] request = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(request, 8);
        BinaryPrimitives.WriteInt32BigEndian(request.AsSpan(4), code);
        return request;
    }

    private static Task WaitForNoClientsAsync(TestProxy proxy) => WaitForClientsAsync(proxy, 0);

    private static async Task WaitForClientsAsync(TestProxy proxy, int count)
    {
        using var cts = new CancellationTokenSource(Wait);
        while (proxy.Services.ClientCount != count)
        {
            await Task.Delay(20, cts.Token);
        }
    }
}
