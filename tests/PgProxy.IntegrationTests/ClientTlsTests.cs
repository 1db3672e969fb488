using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace PgProxy.IntegrationTests;

/// <summary>
/// TLS toward clients (client_tls_sslmode): psql and Npgsql with verify-full against a test CA, plaintext refused under
/// require, a client certificate checked against its user under verify-full, a wrong CA, and plaintext bytes sent
/// after the SSLRequest. The certificates are made here with .NET's CertificateRequest.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClientTlsTests(PostgresFixture pg) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-tls").FullName;

    [Fact(Timeout = 60_000)]
    public async Task Require_ServesTlsClients_VerifiedByTheirCa_AndRefusesPlaintext()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("require", pki), authType: "trust");

        await using (var secure = new NpgsqlConnection(proxy.ConnectionString(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile}")))
        {
            await secure.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand("SELECT 42", secure);
            Assert.Equal(42, await cmd.ExecuteScalarAsync(ct));
            Assert.StartsWith("TLSv1.", Assert.Single(Tls(proxy)), StringComparison.Ordinal);
        }

        ProcessRunner.Result psql = await PsqlAsync(proxy, $"sslmode=verify-full sslrootcert={pki.CaFile}", ct);
        Assert.True(psql.ExitCode == 0, psql.All);
        Assert.Contains("42", psql.StdOut, StringComparison.Ordinal);

        PostgresException plain = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct));
        Assert.Equal("28000", plain.SqlState);
        Assert.Equal("SSL required", plain.MessageText);

        // A client that does not trust the proxy's CA gives up in the handshake; the proxy logs it once, at info.
        ProcessRunner.Result wrongCa = await PsqlAsync(proxy, $"sslmode=verify-full sslrootcert={pki.OtherCaFile}", ct);
        Assert.NotEqual(0, wrongCa.ExitCode);
        Assert.Contains("certificate verify failed", wrongCa.StdErr, StringComparison.Ordinal);
        await Await.UntilAsync(() => proxy.LogText.Contains("TLS handshake failed", StringComparison.Ordinal), ct, seconds: 10);
        Assert.Contains(proxy.Log, l => l.StartsWith("Information", StringComparison.Ordinal) && l.Contains("TLS handshake failed", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task Prefer_ServesBothTlsAndPlaintextClients()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("prefer", pki), authType: "trust");
        await using NpgsqlConnection plain = await proxy.OpenAsync(extra: "SSL Mode=Disable", ct: ct);
        Assert.Equal([""], Tls(proxy));
        await using NpgsqlConnection secure = await proxy.OpenAsync(extra: $"SSL Mode=VerifyCA;Root Certificate={pki.CaFile}", ct: ct);
        Assert.Equal(2, Tls(proxy).Length);
        Assert.Contains(Tls(proxy), t => t.StartsWith("TLSv1.", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task VerifyFull_AsksForAClientCertificate_WhoseNameMustBeTheUser()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("verify-full", pki) + $"\nclient_tls_ca_file = \"{pki.CaFile}\"", authType: "trust");
        string withCert = $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile};SSL Certificate={pki.ClientFile};SSL Key={pki.ClientKeyFile}";

        await using (NpgsqlConnection alice = await proxy.OpenAsync(extra: withCert, ct: ct))
        await using (var cmd = new NpgsqlCommand("SELECT 1", alice))
        {
            Assert.Equal(1, await cmd.ExecuteScalarAsync(ct));
            Assert.StartsWith("TLSv1.", Assert.Single(Tls(proxy)), StringComparison.Ordinal);
        }

        PostgresException mismatch = await Assert.ThrowsAsync<PostgresException>(() =>
            proxy.OpenAsync(PostgresFixture.Bob, PostgresFixture.BobPassword, extra: withCert, ct: ct));
        Assert.Equal("28000", mismatch.SqlState);
        Assert.Equal($"certificate validation (clientcert=verify-full) failed for user \"{PostgresFixture.Bob}\": CN mismatch", mismatch.MessageText);

        // No client certificate: the handshake fails, and the client is told so by TLS; nothing hangs.
        await Assert.ThrowsAnyAsync<Exception>(() => proxy.OpenAsync(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile}", ct: ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task CertAuth_LogsTheClientInAsItsCertificatesName_WithoutAPassword()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("verify-ca", pki) + $"\nclient_tls_ca_file = \"{pki.CaFile}\"", authType: "cert");
        string withCert = $"sslmode=verify-full sslrootcert={pki.CaFile} sslcert={pki.ClientFile} sslkey={pki.ClientKeyFile}";

        // psql with no password at all: the certificate is the credential (the server leg uses the userlist's password).
        ProcessRunner.Result psql = await PsqlAsync(proxy, withCert, ct);
        Assert.True(psql.ExitCode == 0, psql.All);
        Assert.Contains("42", psql.StdOut, StringComparison.Ordinal);
        await Await.UntilAsync(() => proxy.LogText.Contains("(cert, TLSv1.", StringComparison.Ordinal), ct, seconds: 10);

        // The same certificate does not log in another user.
        PostgresException other = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(PostgresFixture.Bob, "",
            extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile};SSL Certificate={pki.ClientFile};SSL Key={pki.ClientKeyFile}", ct: ct));
        Assert.Equal("28000", other.SqlState);
        Assert.Equal($"certificate authentication failed for user \"{PostgresFixture.Bob}\"", other.MessageText);
    }

    [Fact(Timeout = 60_000)]
    public async Task Ciphers_LimitTheTls12Suites_TheHandshakeMayChoose()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            Tls("require", pki) + "\nclient_tls_protocols = \"tlsv1.2\"\nclient_tls_ciphers = \"ECDHE-RSA-AES256-GCM-SHA384\"", authType: "trust");
        await using NpgsqlConnection conn = await proxy.OpenAsync(extra: $"SSL Mode=VerifyFull;Root Certificate={pki.CaFile}", ct: ct);
        Assert.Equal("TLSv1.2/TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Assert.Single(Tls(proxy)));

        // A client that offers only another suite finds none in common (openssl s_client speaks the SSLRequest itself).
        ProcessRunner.Result other = await ProcessRunner.RunAsync("openssl",
            ["s_client", "-connect", $"127.0.0.1:{proxy.Port.ToString(CultureInfo.InvariantCulture)}", "-starttls", "postgres", "-tls1_2",
                "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
            TimeSpan.FromSeconds(30), stdin: "", ct: ct);
        Assert.NotEqual(0, other.ExitCode);
        Assert.Contains("handshake failure", other.All, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task PlaintextBytesAfterTheSslRequest_AreRefused_AsPostgresRefusesThem()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("prefer", pki), authType: "trust");
        await using RawPgClient raw = await RawPgClient.ConnectAsync(proxy.Port, ct);
        byte[] sslRequest = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F];
        await raw.SendAsync([.. sslRequest, .. RawPgClient.Startup(196608, ("user", PostgresFixture.Alice))], ct);
        (char Type, byte[] Body)? reply = await raw.ReadMessageAsync(TimeSpan.FromSeconds(10), ct);
        Assert.Equal('E', reply!.Value.Type);
        Dictionary<char, string> error = RawPgClient.ErrorFields(reply.Value.Body);
        Assert.Equal("08P01", error['C']);
        Assert.Equal("received unencrypted data after SSL request", error['M']);
        Assert.True(await raw.IsClosedAsync(TimeSpan.FromSeconds(10), ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task ClientStalledInTheTlsHandshake_ClosedAtTheLoginTimeout()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tls("prefer", pki) + "\nclient_login_timeout = \"500ms\"", authType: "trust");
        await using RawPgClient raw = await RawPgClient.ConnectAsync(proxy.Port, ct);
        await raw.SendAsync([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F], ct);
        Assert.Equal('S', await raw.ReadByteAsync(TimeSpan.FromSeconds(10), ct));
        // No ClientHello follows: the handshake's read waits until the login timeout wakes it.
        Assert.True(await raw.IsClosedAsync(TimeSpan.FromSeconds(10), ct));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (proxy.Services.ClientCount != 0)
        {
            await Task.Delay(20, deadline.Token);
        }
    }

    [Fact]
    public void Config_RequiresTheCertificate_AndTheCaForVerifyModes()
    {
        string Load(string lines, string auth = "trust")
        {
            string path = Path.Combine(_dir, "check.toml");
            File.WriteAllText(path, $"[proxy]\n{lines}\n[auth]\ntype = \"{auth}\"\n[databases.x]\nhost = \"h\"\n");
            return string.Join("\n", Core.Configuration.ConfigLoader.LoadFile(path).Errors);
        }

        Assert.Contains("client_tls_cert_file and client_tls_key_file are required", Load("client_tls_sslmode = \"require\""), StringComparison.Ordinal);
        Pki pki = Pki.Create(_dir);
        Assert.Contains("client_tls_ca_file is required", Load(Tls("verify-ca", pki)), StringComparison.Ordinal);
        Assert.Contains("expected disable, allow, prefer, require, verify-ca or verify-full", Load("client_tls_sslmode = \"on\""), StringComparison.Ordinal);
        Assert.Contains("TLS 1.0 and 1.1 are not offered", Load("client_tls_protocols = \"tlsv1.1\""), StringComparison.Ordinal);
        Assert.Equal("", Load(Tls("require", pki) + "\nclient_tls_protocols = \"tlsv1.3\""));
        Assert.Contains("\"HIGH\" is not a cipher suite", Load(Tls("require", pki) + "\nclient_tls_ciphers = \"HIGH:!aNULL\""), StringComparison.Ordinal);
        Assert.Equal("", Load(Tls("require", pki) +
            "\nclient_tls_ciphers = \"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:DHE-RSA-AES256-SHA256\""));
        Assert.Contains("names no TLS 1.2 suite", Load(Tls("require", pki) + "\nclient_tls_ciphers = \"TLS_AES_128_GCM_SHA256\""), StringComparison.Ordinal);
        Assert.Equal("", Load(Tls("require", pki) + "\nclient_tls_ciphers = \"TLS_AES_128_GCM_SHA256\"\nclient_tls_protocols = \"tlsv1.3\""));
        Assert.Contains("type \"cert\" needs [proxy] client_tls_sslmode", Load(Tls("require", pki), auth: "cert"), StringComparison.Ordinal);
        Assert.Equal("", Load(Tls("verify-ca", pki) + $"\nclient_tls_ca_file = \"{pki.CaFile}\"", auth: "cert"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>SHOW CLIENTS' tls column of every logged-in client.</summary>
    private static string[] Tls(TestProxy proxy) =>
        [.. proxy.Services.CancelKeys.Targets.OfType<Core.Client.ClientSession>().Select(s => s.Tls)];

    private static string Tls(string mode, Pki pki) =>
        $"client_tls_sslmode = \"{mode}\"\nclient_tls_cert_file = \"{pki.ServerFile}\"\nclient_tls_key_file = \"{pki.ServerKeyFile}\"";

    private Task<ProcessRunner.Result> PsqlAsync(TestProxy proxy, string ssl, CancellationToken ct) =>
        ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-c", "SELECT 42",
                $"host=127.0.0.1 port={proxy.Port.ToString(CultureInfo.InvariantCulture)} user={PostgresFixture.Alice} dbname={PostgresFixture.Database} {ssl}"],
            TimeSpan.FromSeconds(30), new Dictionary<string, string> { ["PGCONNECT_TIMEOUT"] = "10" }, ct: ct);
}
