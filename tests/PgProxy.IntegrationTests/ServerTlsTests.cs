using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Pooling;

namespace PgProxy.IntegrationTests;

/// <summary>
/// TLS toward servers (server_tls_*) against the fixture's PostgreSQL with ssl turned on: the server leg encrypted and
/// verified, SCRAM bound to the server's certificate, and each certificate failure a prompt 08006 that names the
/// database and the reason. Also the client side's channel binding (libpq and Npgsql with channel binding required)
/// and direct TLS (Npgsql's SSL Negotiation=Direct, a ClientHello without ALPN, and the server leg's
/// server_tls_direct toward a second proxy).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ServerTlsTests(PostgresFixture pg) : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-server-tls").FullName;
    private bool _sslOn;

    [Fact(Timeout = 120_000)]
    public async Task VerifyFull_EncryptsTheServerLeg_AndBindsScramToTheServersCertificate()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await SslOnAsync(pki.ServerFile, pki.ServerKeyFile);
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"localhost\"\nport = {pg.Port}\n"; // SNI and the DNS name
        // md5 toward clients (bob's secret is an md5 hash); toward the server alice logs in with SCRAM, bob with md5.
        await using TestProxy proxy = await TestProxy.StartAsync(pg, ServerTls("verify-full", pki.CaFile), authType: "md5", databases: databases);

        foreach ((string user, string password, string auth) in new[]
                 {
                     (PostgresFixture.Alice, PostgresFixture.AlicePassword, "SCRAM-SHA-256-PLUS"), (PostgresFixture.Bob, PostgresFixture.BobPassword, "md5"),
                 })
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(user, password, extra: "SSL Mode=Disable", ct: ct);
            await using var cmd = new NpgsqlCommand("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", conn);
            await using NpgsqlDataReader reader = await cmd.ExecuteReaderAsync(ct);
            Assert.True(await reader.ReadAsync(ct));
            Assert.True(reader.GetBoolean(0), "the server leg is TLS");
            Assert.StartsWith("TLSv1.", reader.GetString(1), StringComparison.Ordinal);
            // The server offered SCRAM-SHA-256-PLUS over TLS and the proxy bound to its certificate; a wrong binding
            // would have failed the login ("SCRAM channel binding check failed").
            Assert.True(proxy.Log.Any(l => l.Contains($"connected for {PostgresFixture.Database}/{user}", StringComparison.Ordinal) &&
                                           l.Contains($", {auth}, TLSv1.", StringComparison.Ordinal)), proxy.LogText);
        }

        Assert.All(Servers(proxy), b => Assert.StartsWith("TLSv1.", b.Tls, StringComparison.Ordinal));

        // A cancel goes to the server the way the session does: over TLS.
        await using NpgsqlConnection sleeper = await proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct);
        await using var sleep = new NpgsqlCommand("SELECT pg_sleep(30)", sleeper);
        Task running = sleep.ExecuteNonQueryAsync(ct);
        await Await.UntilAsync(() => Servers(proxy).Any(b => b.State == Core.Backend.BackendState.Active), ct, seconds: 10);
        await Task.Delay(200, ct);
        sleep.Cancel();
        OperationCanceledException canceled = await Assert.ThrowsAsync<OperationCanceledException>(() => running);
        Assert.Equal("57014", Assert.IsType<PostgresException>(canceled.InnerException).SqlState);
        Assert.Contains(proxy.Log, l => l.Contains("forwarded to backend", StringComparison.Ordinal) && l.EndsWith("over TLS", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task AServerThatClosesAfterTheSslRequest_IsALostConnection_ClientsWait_NotARefusal()
    {
        // A PostgreSQL shutting down or restarting may accept and close: under prefer that is a lost connection, which
        // the pool retries while clients wait (up to query_wait_timeout), not a TLS refusal that fails them at once.
        CancellationToken ct = TestContext.Current.CancellationToken;
        using var closing = new TcpListener(System.Net.IPAddress.Loopback, 0);
        closing.Start();
        int port = ((System.Net.IPEndPoint)closing.LocalEndpoint).Port;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task acceptor = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using TcpClient accepted = await closing.AcceptTcpClientAsync(stop.Token);
                    await accepted.GetStream().ReadExactlyAsync(new byte[8], stop.Token); // the SSLRequest, then close
                }
            }
            catch (OperationCanceledException)
            {
                // done
            }
        }, ct);
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"127.0.0.1\"\nport = {port.ToString(CultureInfo.InvariantCulture)}\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "server_tls_sslmode = \"prefer\"\nquery_wait_timeout = \"2s\"\nserver_login_retry = \"250ms\"",
            databases: databases);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        PostgresException waited = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct));
        Assert.Contains("query_wait_timeout", waited.MessageText, StringComparison.Ordinal);
        Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(1.5), $"the client waited ({sw.Elapsed})");
        Assert.DoesNotContain(proxy.Log, l => l.Contains("reason=\"tls\"", StringComparison.Ordinal));
        await stop.CancelAsync();
        await acceptor;
    }

    [Fact(Timeout = 120_000)]
    public async Task UntrustedExpiredOrMisnamedCertificates_AreRefusedAtOnce_With08006_NamingTheDatabaseAndTheReason()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await SslOnAsync(pki.ServerFile, pki.ServerKeyFile);
        await ExpectRefusalAsync(ServerTls("verify-ca", pki.OtherCaFile), "server certificate verify failed: unable to get local issuer certificate", ct);

        await SslOnAsync(pki.ExpiredFile, pki.ServerKeyFile);
        await ExpectRefusalAsync(ServerTls("verify-ca", pki.CaFile), "server certificate verify failed: certificate has expired", ct);

        await SslOnAsync(pki.WrongNameFile, pki.ServerKeyFile);
        await ExpectRefusalAsync(ServerTls("verify-full", pki.CaFile), $"server certificate for \"db.example\" does not match host name \"{pg.Host}\"", ct);
        // The same certificate is fine when only the CA is checked, and when nothing is.
        foreach (string mode in new[] { "verify-ca", "require" })
        {
            await using TestProxy proxy = await TestProxy.StartAsync(pg, ServerTls(mode, pki.CaFile));
            await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct);
            Assert.True(await ScalarAsync<bool>(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", ct));
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Require_RefusesAServerWithoutTls_WhilePreferFallsBackToPlaintext()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await ExpectRefusalAsync(ServerTls("require", null), "server does not support SSL, but server_tls_sslmode requires it", ct);

        // The default (prefer), here set per database over [proxy]'s require.
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"{pg.Host}\"\nport = {pg.Port}\nserver_tls_sslmode = \"prefer\"\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, ServerTls("require", null), databases: databases);
        await using NpgsqlConnection conn = await proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct);
        Assert.False(await ScalarAsync<bool>(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", ct));
        Assert.All(Servers(proxy), b => Assert.Equal("", b.Tls));
    }

    [Fact(Timeout = 120_000)]
    public async Task ChannelBindingRequired_ByPsqlAndNpgsql_IsServedWithScramSha256Plus()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, ClientTls("require", pki));
        ProcessRunner.Result psql = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-c", "SELECT 42",
                $"host=localhost port={proxy.Port.ToString(CultureInfo.InvariantCulture)} user={PostgresFixture.Alice} dbname={PostgresFixture.Database} " +
                $"sslmode=verify-full sslrootcert={pki.CaFile} channel_binding=require"],
            TimeSpan.FromSeconds(30), new Dictionary<string, string> { ["PGPASSWORD"] = PostgresFixture.AlicePassword, ["PGCONNECT_TIMEOUT"] = "10" }, ct: ct);
        Assert.True(psql.ExitCode == 0, psql.All);
        Assert.Contains("42", psql.StdOut, StringComparison.Ordinal);

        await using (NpgsqlConnection conn = await proxy.OpenAsync(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile};Channel Binding=Require", ct: ct))
        {
            Assert.Equal(1, await ScalarAsync<int>(conn, "SELECT 1", ct));
        }

        Assert.Equal(2, proxy.Log.Count(l => l.Contains("logged in to", StringComparison.Ordinal) && l.Contains("(SCRAM-SHA-256-PLUS, TLSv1.", StringComparison.Ordinal)));

        // A client that does not bind still gets plain SCRAM-SHA-256 on the same TLS port.
        await using (NpgsqlConnection conn = await proxy.OpenAsync(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile};Channel Binding=Disable", ct: ct))
        {
            Assert.Equal(1, await ScalarAsync<int>(conn, "SELECT 1", ct));
        }

        Assert.Contains(proxy.Log, l => l.Contains("logged in to", StringComparison.Ordinal) && l.Contains("(SCRAM-SHA-256, TLSv1.", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task DirectTls_FromNpgsql_AndFromASecondProxysServerLeg_ButNotWithoutAlpn()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy front = await TestProxy.StartAsync(pg, ClientTls("require", pki), authType: "trust");
        await using (NpgsqlConnection conn = await front.OpenAsync(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile};SSL Negotiation=Direct", ct: ct))
        {
            Assert.Equal(1, await ScalarAsync<int>(conn, "SELECT 1", ct));
        }

        // A second proxy whose server is the first one, reached with direct TLS and verified.
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"localhost\"\nport = {front.Port}\n";
        await using TestProxy second = await TestProxy.StartAsync(pg,
            ServerTls("verify-full", pki.CaFile) + "\nserver_tls_direct = true", authType: "trust", databases: databases);
        await using (NpgsqlConnection conn = await second.OpenAsync(extra: "SSL Mode=Disable", ct: ct))
        {
            Assert.Equal(7, await ScalarAsync<int>(conn, "SELECT 7", ct));
        }

        Assert.True(second.Log.Any(l => l.Contains("connected for", StringComparison.Ordinal) && l.Contains(", trust, TLSv1.", StringComparison.Ordinal)), second.LogText);
        Assert.Equal(2, front.Log.Count(l => l.Contains("logged in to", StringComparison.Ordinal) && l.Contains("(trust, TLSv1.", StringComparison.Ordinal)));

        // A ClientHello that does not ask for ALPN "postgresql" (an HTTPS client, say): PostgreSQL 17's error, over TLS.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", front.Port, ct);
        using X509Certificate2 ca = X509CertificateLoader.LoadCertificateFromFile(pki.CaFile);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) => certificate is not null &&
            TrustedBy(ca, certificate));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, ct);
        byte[] reply = await ReadToEndAsync(tls, ct);
        Assert.Equal((byte)'E', reply[0]);
        string text = System.Text.Encoding.UTF8.GetString(reply);
        Assert.Contains("C08P01", text, StringComparison.Ordinal);
        Assert.Contains("received direct SSL connection request without ALPN protocol negotiation extension", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_ChecksTheServerTlsKeys_InProxyAndPerDatabase()
    {
        string Load(string proxy, string database = "")
        {
            string path = Path.Combine(_dir, "check.toml");
            File.WriteAllText(path, $"[proxy]\n{proxy}\n[auth]\ntype = \"trust\"\n[databases.x]\nhost = \"h\"\n{database}\n");
            return string.Join("\n", Core.Configuration.ConfigLoader.LoadFile(path).Errors);
        }

        Pki pki = Pki.Create(_dir);
        Assert.Equal("", Load(ServerTls("verify-full", pki.CaFile), "server_tls_sslmode = \"disable\""));
        Assert.Contains("server_tls_direct needs server_tls_sslmode require", Load("server_tls_direct = true"), StringComparison.Ordinal);
        Assert.Contains("[databases.x] server_tls_direct needs", Load("", "server_tls_direct = true"), StringComparison.Ordinal);
        Assert.Contains("server_tls_cert_file and server_tls_key_file go together", Load($"server_tls_cert_file = \"{pki.ClientFile}\""), StringComparison.Ordinal);
        Assert.Contains("[databases.x] server_tls_ca_file '/nonexistent.pem' does not exist", Load("", "server_tls_ca_file = \"/nonexistent.pem\""), StringComparison.Ordinal);
        Assert.Contains("expected disable, allow, prefer, require, verify-ca or verify-full", Load("", "server_tls_sslmode = \"on\""), StringComparison.Ordinal);
        Assert.Contains("unknown key 'server_tls_bogus' in [databases.x]", Load("", "server_tls_bogus = 1"), StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        if (_sslOn)
        {
            await pg.SetSslAsync(null, null);
        }

        Directory.Delete(_dir, recursive: true);
    }

    private async Task SslOnAsync(string cert, string key)
    {
        _sslOn = true;
        await pg.SetSslAsync(cert, key);
    }

    /// <summary>A proxy with this [proxy] setting refuses the login at once (well before query_wait_timeout) with 08006, naming the database and the reason.</summary>
    private async Task ExpectRefusalAsync(string proxySection, string reason, CancellationToken ct)
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, proxySection);
        for (int attempt = 0; attempt < 2; attempt++) // the first builds the pool; the second is refused from the pool's remembered failure
        {
            PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct));
            Assert.Equal("08006", refused.SqlState);
            Assert.StartsWith($"could not connect to server for database \"{PostgresFixture.Database}\": {reason}", refused.MessageText, StringComparison.Ordinal);
        }

        Assert.Contains(proxy.Log, l => l.Contains(reason, StringComparison.Ordinal) && l.Contains(PostgresFixture.Database, StringComparison.Ordinal));
        Assert.True(proxy.Services.Pools.Pools.Sum(p => p.Stats.ConnectFailures(ConnectFailure.Tls)) >= 1);
    }

    private static IEnumerable<Core.Backend.BackendConnection> Servers(TestProxy proxy) => proxy.Services.Pools.Pools.SelectMany(p => p.Backends);

    private static string ServerTls(string mode, string? ca) =>
        $"server_tls_sslmode = \"{mode}\"" + (ca is null ? "" : $"\nserver_tls_ca_file = \"{ca}\"");

    private static string ClientTls(string mode, Pki pki) =>
        $"client_tls_sslmode = \"{mode}\"\nclient_tls_cert_file = \"{pki.ServerFile}\"\nclient_tls_key_file = \"{pki.ServerKeyFile}\"";

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private static bool TrustedBy(X509Certificate2 ca, X509Certificate certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }

    private static async Task<byte[]> ReadToEndAsync(Stream stream, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var all = new MemoryStream();
        byte[] buffer = new byte[4096];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                all.Write(buffer, 0, n);
            }
        }
        catch (IOException)
        {
            // closed with a reset after the error: what arrived is what counts
        }

        return all.ToArray();
    }
}
