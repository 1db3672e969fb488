using PgProxy.Protocol.Auth;

namespace PgProxy.Protocol.Tests;

/// <summary>SCRAM-SHA-256 against RFC 7677 section 3, in both roles; md5 against independently computed values.</summary>
public sealed class AuthTests
{
    private const string ClientNonce = "rOprNGfwEbeRWgbNEkqO";
    private const string ServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    private const string Salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
    private const string ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    private const string ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    private const string ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    private const string ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    [Fact]
    public void Server_Rfc7677Vector()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        Assert.Equal(ServerFirst, server.HandleClientFirst(ClientFirst, out string? e1));
        Assert.Null(e1);
        Assert.Equal(ServerFinal, server.HandleClientFinal(ClientFinal, out string? e2));
        Assert.Null(e2);
        Assert.NotNull(server.ClientKey);
    }

    [Fact]
    public void Server_WrongProof_Fails_AndMockAlwaysFails()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        server.HandleClientFirst(ClientFirst, out _);
        string tampered = ClientFinal[..^5] + "AAAA=";
        Assert.Null(server.HandleClientFinal(tampered, out string? error));
        Assert.Equal("password does not match", error);

        var mock = new ScramServerExchange(verifier, mockFailure: true, serverNonce: ServerNonce);
        mock.HandleClientFirst(ClientFirst, out _);
        Assert.Null(mock.HandleClientFinal(ClientFinal, out _));
    }

    [Theory]
    [InlineData("p=tls-server-end-point,,n=,r=abc", "malformed SCRAM message: the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data")]
    [InlineData("n,a=admin,n=,r=abc", "client uses authorization identity, but it is not supported")]
    [InlineData("x,,n=,r=abc", "malformed SCRAM message")]
    [InlineData("n,,r=abc", "malformed SCRAM message")]
    [InlineData("n,,n=user,r=abc,", "malformed SCRAM message")] // a trailing comma is an empty attribute
    [InlineData("n,,n=user,,r=abc", "malformed SCRAM message")]
    [InlineData("n,,n=user,r=", "malformed SCRAM message")] // an empty nonce
    [InlineData("n,,r=abc,n=user", "malformed SCRAM message")] // the user name comes first
    [InlineData("n,,m=ext,n=user,r=abc", "client requires an unsupported SCRAM extension")]
    [InlineData("n,,m=ext,bad", "client requires an unsupported SCRAM extension")]
    [InlineData("n,,n=user,r=a\u007fb", "malformed SCRAM message: invalid nonce")]
    [InlineData("n,,n=user,r=a b", "malformed SCRAM message: invalid nonce")]
    [InlineData("n,,n=user", "malformed SCRAM message")]
    [InlineData("n,", "malformed SCRAM message")]
    public void Server_RejectsMalformedClientFirst(string message, string expected)
    {
        var server = new ScramServerExchange(ScramVerifier.FromPassword("x", [1, 2, 3]));
        Assert.Null(server.HandleClientFirst(message, out string? error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Server_RejectsNonceMismatch()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        server.HandleClientFirst(ClientFirst, out _);
        Assert.Null(server.HandleClientFinal(ClientFinal.Replace("rOpr", "XXXX", StringComparison.Ordinal), out string? error));
        Assert.Equal("SCRAM nonce mismatch", error);
    }

    [Theory]
    [InlineData("c=biws,r={0},p={1},", "malformed SCRAM message")] // a trailing comma
    [InlineData("c=biws,p={1}", "malformed SCRAM message")] // no nonce
    [InlineData("r={0},c=biws,p={1}", "malformed SCRAM message")] // out of order
    [InlineData("c=biws,r={0},p={1}x", "malformed SCRAM message: invalid proof")]
    [InlineData("c=biws,r={0},p=AAAA", "malformed SCRAM message: invalid proof")] // 3 bytes, not 32
    [InlineData("c=eSws,r={0},p={1}", "SCRAM channel binding check failed")] // "y,," where the client said "n,,"
    public void Server_RejectsMalformedClientFinal(string template, string expected)
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        server.HandleClientFirst(ClientFirst, out _);
        string message = string.Format(System.Globalization.CultureInfo.InvariantCulture, template,
            ClientNonce + ServerNonce, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        Assert.Null(server.HandleClientFinal(message, out string? error));
        Assert.Equal(expected, error);
        Assert.Null(server.ClientKey);
    }

    [Fact]
    public void Server_ExtensionsAfterTheNonce_AndWhitespaceInTheProof_AreAccepted_AsPostgresAccepts()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        // PostgreSQL reads past extension attributes after the nonce, and its base64 decoder skips whitespace.
        var withExtension = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        Assert.NotNull(withExtension.HandleClientFirst(ClientFirst + ",x=later", out string? error));
        Assert.Null(error);

        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        Assert.Equal(ServerFirst, server.HandleClientFirst(ClientFirst, out _));
        string spaced = ClientFinal.Replace("p=dHzb", "p=dHzb \r\n", StringComparison.Ordinal);
        Assert.Equal(ServerFinal, server.HandleClientFinal(spaced, out error));
        Assert.Null(error);
    }

    [Fact]
    public void Server_ByteApi_AnswersAsTheStringApi_AndALongFinalMessageIsVerified()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        Assert.True(server.TryHandleClientFirst(System.Text.Encoding.ASCII.GetBytes(ClientFirst), plus: false, out string? error), error);
        Assert.Equal(ServerFirst, System.Text.Encoding.ASCII.GetString(server.ServerFirstMessage));
        byte[] final = new byte[ScramServerExchange.ServerFinalLength];
        Assert.True(server.TryHandleClientFinal(System.Text.Encoding.ASCII.GetBytes(ClientFinal), final, out error), error);
        Assert.Equal(ServerFinal, System.Text.Encoding.ASCII.GetString(final));

        // An extension attribute of 2 000 bytes in client-final: the auth message outgrows the stack buffer. The proof
        // is computed here over that auth message, as RFC 5802 defines it.
        byte[] salted = ScramSha256.SaltedPassword("pencil", Convert.FromBase64String(Salt), 4096);
        byte[] clientKey = ScramSha256.Hmac(salted, "Client Key"u8);
        var longer = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        string serverFirst = longer.HandleClientFirst(ClientFirst, out _)!;
        string withoutProof = "c=biws,r=" + ClientNonce + ServerNonce + ",x=" + new string('e', 2000);
        byte[] authMessage = System.Text.Encoding.ASCII.GetBytes("n=user,r=" + ClientNonce + "," + serverFirst + "," + withoutProof);
        byte[] proof = ScramSha256.Xor(clientKey, ScramSha256.Hmac(ScramSha256.Hash(clientKey), authMessage));
        string? serverFinal = longer.HandleClientFinal(withoutProof + ",p=" + Convert.ToBase64String(proof), out error);
        Assert.Null(error);
        Assert.Equal("v=" + Convert.ToBase64String(ScramSha256.Hmac(verifier.ServerKey, authMessage)), serverFinal);
        Assert.Equal(clientKey, longer.ClientKey);
    }

    [Fact]
    public void Server_MutatedAndRandomMessages_AreRefusedWithAnError_NeverAnException()
    {
        // A client's SCRAM messages are untrusted bytes: every malformed one must come back as an error to send.
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        byte[] first = System.Text.Encoding.ASCII.GetBytes(ClientFirst);
        byte[] final = System.Text.Encoding.ASCII.GetBytes(ClientFinal);
        byte[] alphabet = System.Text.Encoding.ASCII.GetBytes("npyrcmsiv=,+/ Aa0\u007f");
        var random = new Random(20261206);
        byte[] serverFinal = new byte[ScramServerExchange.ServerFinalLength];
        for (int i = 0; i < 20_000; i++)
        {
            var server = new ScramServerExchange(verifier, serverNonce: ServerNonce, bindingData: i % 3 == 0 ? new byte[32] : null);
            byte[] clientFirst = i % 4 == 0 ? first : Mutate(first, random, alphabet);
            if (server.TryHandleClientFirst(clientFirst, plus: i % 5 == 0, out string? error))
            {
                Assert.Null(error);
                bool ok = server.TryHandleClientFinal(Mutate(final, random, alphabet), serverFinal, out error);
                Assert.True(ok == (error is null), error);
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
            }
        }

        static byte[] Mutate(byte[] message, Random random, byte[] alphabet)
        {
            if (random.Next(10) == 0)
            {
                byte[] noise = new byte[random.Next(0, 80)];
                random.NextBytes(noise);
                return noise;
            }

            var bytes = new List<byte>(message);
            for (int edits = random.Next(1, 4); edits > 0 && bytes.Count > 0; edits--)
            {
                int at = random.Next(bytes.Count);
                switch (random.Next(3))
                {
                    case 0:
                        bytes.RemoveAt(at);
                        break;
                    case 1:
                        bytes.Insert(at, alphabet[random.Next(alphabet.Length)]);
                        break;
                    default:
                        bytes[at] = alphabet[random.Next(alphabet.Length)];
                        break;
                }
            }

            return [.. bytes];
        }
    }

    [Fact]
    public void Verifier_ReusedSignatureContexts_MatchOneShotHmac_FromManyThreadsAtOnce()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            byte[] message = System.Text.Encoding.ASCII.GetBytes($"auth message {i} {new string('x', i % 300)}");
            Span<byte> client = stackalloc byte[32];
            Span<byte> server = stackalloc byte[32];
            verifier.ClientSignature(message, client);
            verifier.ServerSignature(message, server);
            if (!client.SequenceEqual(System.Security.Cryptography.HMACSHA256.HashData(verifier.StoredKey, message)) ||
                !server.SequenceEqual(System.Security.Cryptography.HMACSHA256.HashData(verifier.ServerKey, message)))
            {
                failures.Add($"message {i}");
            }
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void Client_Rfc7677Vector_FromPassword()
    {
        ScramClientExchange client = ScramClientExchange.FromPassword("pencil", ClientNonce);
        Assert.Equal("n,,n=,r=" + ClientNonce, client.ClientFirst());
        // With the empty user name libpq sends, the auth message differs from the RFC's, so verify against our server.
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var server = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        string serverFirst = server.HandleClientFirst("n,,n=,r=" + ClientNonce, out _)!;
        Assert.Equal(ServerFirst, serverFirst);
        string clientFinal = client.HandleServerFirst(serverFirst, out _)!;
        string serverFinal = server.HandleClientFinal(clientFinal, out string? error)!;
        Assert.Null(error);
        Assert.True(client.VerifyServerFinal(serverFinal, out _));
        Assert.False(client.VerifyServerFinal("v=" + Convert.ToBase64String(new byte[32]), out _));
    }

    [Fact]
    public void Client_Passthrough_WithCapturedClientKey()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        var login = new ScramServerExchange(verifier, serverNonce: ServerNonce);
        login.HandleClientFirst(ClientFirst, out _);
        login.HandleClientFinal(ClientFinal, out _);

        ScramClientExchange client = ScramClientExchange.FromKeys(login.ClientKey!, verifier, "othernonce");
        var server = new ScramServerExchange(verifier);
        string serverFirst = server.HandleClientFirst(client.ClientFirst(), out _)!;
        string serverFinal = server.HandleClientFinal(client.HandleServerFirst(serverFirst, out _)!, out string? error)!;
        Assert.Null(error);
        Assert.True(client.VerifyServerFinal(serverFinal, out _));
    }

    [Fact]
    public void Verifier_ParsesAndPrints_PostgresFormat()
    {
        ScramVerifier v = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        string text = v.ToString();
        Assert.StartsWith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$", text, StringComparison.Ordinal);
        Assert.True(ScramVerifier.TryParse(text, out ScramVerifier? parsed));
        Assert.Equal(v.StoredKey, parsed!.StoredKey);
        Assert.Equal(v.ServerKey, parsed.ServerKey);
        Assert.False(ScramVerifier.TryParse("SCRAM-SHA-256$x:abc$def:ghi", out _));
        Assert.False(ScramVerifier.TryParse("md5abc", out _));
    }

    [Fact]
    public void Md5_MatchesIndependentComputation()
    {
        Assert.Equal("md520c46e3762c864548e296b33c3406aa9", Md5Password.Hash("pencil", "user"));
        Assert.Equal("md54376eb6913b38f9aaff38dc7cf19ca76", Md5Password.Response("md520c46e3762c864548e296b33c3406aa9", [1, 2, 3, 4]));
        Assert.True(Md5Password.IsMd5Hash("md520c46e3762c864548e296b33c3406aa9"));
        Assert.False(Md5Password.IsMd5Hash("md5short"));
    }

    [Fact]
    public void SaslPrep_AsciiUnchanged_NonAsciiSpaceMapped()
    {
        Assert.Equal("pencil"u8.ToArray(), SaslPrep.Normalize("pencil"));
        Assert.Equal("a b"u8.ToArray(), SaslPrep.Normalize("a\u00A0b"));
        Assert.Equal("ab"u8.ToArray(), SaslPrep.Normalize("a\u00ADb"));
    }

    [Fact]
    public void SecureRandom_HandsOutFreshBytes_AcrossBlockRefills()
    {
        var seen = new HashSet<long>();
        Span<byte> eight = stackalloc byte[8];
        for (int i = 0; i < 1000; i++) // 8000 bytes: many 512-byte blocks
        {
            SecureRandom.Fill(eight);
            Assert.True(seen.Add(BitConverter.ToInt64(eight)), "a value repeated");
        }

        Assert.All(Enumerable.Range(0, 1000).Select(_ => SecureRandom.NextPositive(1)), v => Assert.InRange(v, 1, int.MaxValue - 1));
        byte[] big = SecureRandom.GetBytes(1000);
        Assert.True(big.Distinct().Count() > 200, "a large request is random too");
        Assert.Equal(24, ScramSha256.NewNonce().Length);
    }

    private static (string? ServerFinal, string? Error) Run(ScramClientExchange client, ScramServerExchange server)
    {
        string? serverFirst = server.HandleClientFirst(client.ClientFirst(), out string? error, client.Mechanism);
        if (serverFirst is null)
        {
            return (null, error);
        }

        string clientFinal = client.HandleServerFirst(serverFirst, out error)!;
        string? serverFinal = server.HandleClientFinal(clientFinal, out error);
        return (serverFinal, error);
    }

    [Fact]
    public void ScramPlus_BindsBothSidesToTheSameCertificateHash_AndRefusesAnother()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        byte[] hash = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];
        var server = new ScramServerExchange(verifier, bindingData: hash);
        Assert.Equal(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], server.Mechanisms);
        ScramClientExchange client = ScramClientExchange.FromPassword("pencil").With(new ChannelBinding(true, hash));
        Assert.Equal("SCRAM-SHA-256-PLUS", client.Mechanism);
        Assert.StartsWith("p=tls-server-end-point,,n=,r=", client.ClientFirst(), StringComparison.Ordinal);
        (string? final, string? error) = Run(client, server);
        Assert.True(final is not null, error);
        Assert.True(client.VerifyServerFinal(final!, out _));

        // A man in the middle terminates TLS with its own certificate: the client binds to that one's hash.
        byte[] other = [.. hash.Select(b => (byte)(b ^ 0xFF))];
        (final, error) = Run(ScramClientExchange.FromPassword("pencil").With(new ChannelBinding(true, other)), new ScramServerExchange(verifier, bindingData: hash));
        Assert.Null(final);
        Assert.Equal("SCRAM channel binding check failed", error);
    }

    [Fact]
    public void ScramChannelBindingFlags_AreCheckedAsPostgresChecksThem()
    {
        ScramVerifier verifier = ScramVerifier.FromPassword("pencil", Convert.FromBase64String(Salt));
        byte[] hash = new byte[32];
        // "y": the client could bind but thinks the server cannot; a server that offered -PLUS sees a downgrade.
        (string? final, string? error) = Run(ScramClientExchange.FromPassword("pencil").With(new ChannelBinding(true, null)), new ScramServerExchange(verifier, bindingData: hash));
        Assert.Null(final);
        Assert.StartsWith("SCRAM channel binding negotiation error", error, StringComparison.Ordinal);
        // ... and is fine for a server that could not bind (plaintext leg), in both directions of the "c=" check.
        (final, error) = Run(ScramClientExchange.FromPassword("pencil").With(new ChannelBinding(true, null)), new ScramServerExchange(verifier));
        Assert.True(final is not null, error);
        // "p=" under plain SCRAM-SHA-256, and -PLUS on a connection that cannot bind, are refused.
        var plainServer = new ScramServerExchange(verifier, bindingData: hash);
        Assert.Null(plainServer.HandleClientFirst("p=tls-server-end-point,,n=,r=abc", out error));
        Assert.Contains("includes channel binding data", error, StringComparison.Ordinal);
        Assert.Null(new ScramServerExchange(verifier).HandleClientFirst("p=tls-server-end-point,,n=,r=abc", out error, ScramSha256.PlusMechanism));
        Assert.Contains("cannot bind", error, StringComparison.Ordinal);
        Assert.Null(plainServer.HandleClientFirst("p=tls-unique,,n=,r=abc", out error, ScramSha256.PlusMechanism));
        Assert.Equal("unsupported SCRAM channel-binding type \"tls-unique\"", error);
        Assert.Null(plainServer.HandleClientFirst("n,,n=,r=abc", out error, ScramSha256.PlusMechanism));
        Assert.Contains("does not include channel binding data", error, StringComparison.Ordinal);
    }
}
