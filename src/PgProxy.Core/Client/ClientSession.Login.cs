using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using PgProxy.Core.Auth;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;
using PgProxy.Protocol.Auth;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Client;

/// <summary>What a successful login produced.</summary>
/// <param name="Pool">The client's pool; null for a login to the admin console.</param>
/// <param name="Settings">The startup settings.</param>
/// <param name="Auth">How the client authenticated (trust, md5, SCRAM-SHA-256, SCRAM-SHA-256-PLUS), for the log.</param>
internal sealed record LoginResult(Pool? Pool, List<KeyValuePair<string, string>> Settings, string Auth)
{
    public bool IsConsole => Pool is null;
}

/// <summary>Start-up and authentication ("Message Flow: Start-up"), bounded by client_login_timeout.</summary>
public sealed partial class ClientSession
{
    /// <summary>PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH.</summary>
    private const int MaxAuthMessageBytes = 65535;

    private static readonly byte[] s_mockSaltKey = RandomNumberGenerator.GetBytes(32);

    /// <summary>
    /// The login's deadline (client_login_timeout) is the session's entry in the deadline queue, as every other client
    /// timeout is: when it fires before the login is done, the login's read is woken and fails with
    /// PostgreSQL's words for it. No cancellation token, timer or registration per login.
    /// </summary>
    private void ArmLoginTimeout()
    {
        TimeSpan timeout = Config.Proxy.ClientLoginTimeout;
        if (timeout > TimeSpan.Zero)
        {
            _services.Deadlines.Schedule(this, _connectedAt + Ticks(timeout));
        }
    }

    /// <summary>The login is done: its deadline no longer applies (the session's timeouts, if any, schedule it again).</summary>
    private void EndLoginTimeout()
    {
        if (IsScheduled)
        {
            _services.Deadlines.Cancel(this);
        }
    }

    /// <summary>
    /// The login's deadline passed: its read is woken and fails with <see cref="_abort"/>. Only reads wait: what a login
    /// sends (a byte, an auth request, the TLS handshake's few kilobytes) goes into an empty socket buffer at once.
    /// </summary>
    private void LoginTimedOut() =>
        Abort(ErrorResponse.Fatal(SqlState.QueryCanceled,
            $"canceling authentication due to timeout (client_login_timeout {DurationText.Format(Config.Proxy.ClientLoginTimeout)})"));

    /// <summary>A login read woken from outside (IsCanceled): fails with the session's abort, the login timeout.</summary>
    private void WokenDuringLogin(in System.IO.Pipelines.ReadResult read)
    {
        Input.AdvanceTo(read.Buffer.Start);
        ThrowIfAborted();
    }

    /// <remarks>
    /// A ValueTask, and from the pooling builder: a trust login completes it without suspending, and a Task would then
    /// be made for its result alone; a SCRAM login suspends, and takes a pooled state machine rather than a new one.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<LoginResult?> LoginAsync()
    {
        StartupPacket? startup = null;
        int negotiations = _negotiations;
        bool encrypted = false;
        string? certificateName = null;
        while (startup is null)
        {
            if (negotiations == 0 && !encrypted && Config.Proxy.ClientTlsSslMode != TlsMode.Disable &&
                await StartsWithTlsHandshakeAsync().ConfigureAwait(false))
            {
                // Direct TLS (PostgreSQL 17's sslnegotiation=direct): a ClientHello instead of an SSLRequest.
                negotiations++;
                (TlsStart tls, string? name) = await StartTlsAsync(direct: true).ConfigureAwait(false);
                if (tls != TlsStart.Started)
                {
                    return null;
                }

                encrypted = true;
                certificateName = name;
                continue;
            }

            StartupPacket? packet = await ReadStartupPacketAsync().ConfigureAwait(false);
            if (packet is null)
            {
                return null;
            }

            switch (packet.Kind)
            {
                case StartupPacketKind.SslRequest:
                case StartupPacketKind.GssEncRequest:
                    if (++negotiations > MaxEncryptionRequests)
                    {
                        throw new ProxyException(SqlState.ProtocolViolation, "too many encryption negotiation requests");
                    }

                    if (encrypted)
                    {
                        throw new ProxyException(SqlState.ProtocolViolation, "encryption negotiation request over an encrypted connection");
                    }

                    if (!AnsweredInPlaintext(packet.Code))
                    {
                        (TlsStart tls, string? name) = await StartTlsAsync(direct: false).ConfigureAwait(false);
                        if (tls == TlsStart.Failed)
                        {
                            return null; // logged; the client was told by the TLS alert, nothing more can reach it
                        }

                        encrypted = tls == TlsStart.Started;
                        certificateName = name;

                        break;
                    }

                    // 'N' tells the client to go on in plaintext.
                    Output.Write("N"u8);
                    await Output.FlushAsync().ConfigureAwait(false);
                    break;
                case StartupPacketKind.CancelRequest:
                    await HandleCancelRequestAsync(packet).ConfigureAwait(false);
                    return null;
                default:
                    startup = packet;
                    break;
            }
        }

        if (startup.MinorVersion > 0 || HasProtocolOptions(startup.Parameters))
        {
            BackendMessages.NegotiateProtocolVersion(Builder, 0,
                [.. startup.Parameters.Where(p => SessionParameters.IsProtocolOption(p.Key)).Select(p => p.Key)]);
        }

        string? user = startup.Get("user");
        if (string.IsNullOrEmpty(user))
        {
            throw new ProxyException(SqlState.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet");
        }

        _user = user;
        string? database = startup.Get("database");
        _database = string.IsNullOrEmpty(database) ? user : database;
        TlsMode tlsMode = Config.Proxy.ClientTlsSslMode;
        if (!encrypted && tlsMode >= TlsMode.Require)
        {
            throw new ProxyException(SqlState.InvalidAuthorizationSpecification, "SSL required",
                $"client_tls_sslmode is {ConfigPrinter.SslMode(tlsMode)}: connect with sslmode=require (or verify-ca, verify-full)");
        }

        if (tlsMode == TlsMode.VerifyFull && encrypted && certificateName != user)
        {
            // PostgreSQL's words for clientcert=verify-full.
            throw new ProxyException(SqlState.InvalidAuthorizationSpecification,
                $"certificate validation (clientcert=verify-full) failed for user \"{user}\": CN mismatch");
        }

        if (startup.Get("replication") is { } replication && replication != "false" && replication != "0" && replication != "off")
        {
            throw new ProxyException(SqlState.FeatureNotSupported, "replication connections are not supported by the pooler");
        }

        if (_services.RefusesLogins)
        {
            throw new ProxyException(SqlState.AdminShutdown, ShuttingDownMessage);
        }

        if (!_counted)
        {
            throw new ProxyException(SqlState.TooManyConnections, "sorry, too many clients already",
                $"max_client_conn ({Config.Proxy.MaxClientConn}) reached");
        }

        if (Admin.AdminConsole.IsConsoleDatabase(_database))
        {
            string consoleAuth = await AuthenticateAsync(user, certificateName).ConfigureAwait(false);
            if (!Admin.AdminConsole.MayUse(Config.Admin, user))
            {
                // PgBouncer's word for it; 28000 as PostgreSQL's pg_hba "no entry" refusal.
                throw new ProxyException(SqlState.InvalidAuthorizationSpecification, "not allowed",
                    $"user \"{user}\" is in neither [admin] admin_users nor stats_users");
            }

            BackendMessages.AuthenticationOk(Builder);
            _user = user;
            return new LoginResult(null, [], consoleAuth);
        }

        DatabaseConfig db = Config.FindDatabase(_database)
            ?? throw new ProxyException(SqlState.InvalidCatalogName, $"database \"{_database}\" does not exist");
        if (_services.Pools.IsDisabled(_database))
        {
            // PostgreSQL's words for a database that does not allow connections.
            throw new ProxyException(SqlState.ObjectNotInPrerequisiteState, $"database \"{_database}\" is not currently accepting connections",
                "disabled in the pooler by the admin console's DISABLE; ENABLE lets clients in again");
        }

        List<KeyValuePair<string, string>> settings = SessionParameters.FromStartup(startup.Parameters);

        string auth = await AuthenticateAsync(user, certificateName).ConfigureAwait(false);
        // Not flushed: AuthenticationOk (after a SCRAM exchange's final message) goes out with the welcome, in one send.
        BackendMessages.AuthenticationOk(Builder);

        _pool = _services.Pools.GetOrCreate(db, _database, user);
        // The pool's copies of the names (equal strings): a logged-in client keeps none of its own.
        _database = _pool.Key.Database;
        _user = _pool.Key.User;
        return new LoginResult(_pool, settings, auth);
    }

    /// <summary>Encryption requests a client may send before its startup packet (PostgreSQL's limit: GSSAPI, then TLS).</summary>
    private const int MaxEncryptionRequests = 2;

    /// <summary>
    /// An encryption request (by its protocol code) the proxy answers 'N': GSSAPI encryption is never offered, TLS not
    /// when client_tls_sslmode is disable.
    /// </summary>
    private bool AnsweredInPlaintext(int code) =>
        code == ProtocolCodes.GssEncRequest || (code == ProtocolCodes.SslRequest && Config.Proxy.ClientTlsSslMode == TlsMode.Disable);

    /// <summary>True when the startup packet asks for protocol options ("_pq_." parameters), which are refused by NegotiateProtocolVersion.</summary>
    private static bool HasProtocolOptions(IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        for (int i = 0; i < parameters.Count; i++)
        {
            if (SessionParameters.IsProtocolOption(parameters[i].Key))
            {
                return true;
            }
        }

        return false;
    }

    private enum TlsStart
    {
        Started,
        Refused,
        Failed,
    }

    /// <summary>
    /// An SSLRequest while client_tls_sslmode is not disable: 'S' and the TLS handshake, after which the connection's
    /// transport is the TLS stream's pipes. Bytes the client sent after the SSLRequest and before the handshake are
    /// refused, as PostgreSQL refuses them (they would be taken for TLS-protected data: CVE-2021-23214). When the
    /// certificate cannot be loaded the client is told 'N' (and refused later if TLS is required); a failed handshake
    /// is logged once, at info, with the peer's address.
    /// </summary>
    /// <returns>How it went, and the client certificate's common name (verify-full compares it with the user).</returns>
    private async Task<(TlsStart Result, string? CertificateName)> StartTlsAsync(bool direct)
    {
        if (!direct && Input.TryRead(out System.IO.Pipelines.ReadResult pending))
        {
            bool early = !pending.Buffer.IsEmpty;
            Input.AdvanceTo(pending.Buffer.Start);
            if (early)
            {
                throw new ProxyException(SqlState.ProtocolViolation, "received unencrypted data after SSL request");
            }
        }

        System.Net.Security.SslServerAuthenticationOptions options;
        try
        {
            options = _services.ClientTls.Options(Config.Proxy);
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            LogTlsUnavailable(Logger, ex, Config.Proxy.ClientTlsCertFile ?? "", Config.Proxy.ClientTlsKeyFile ?? "");
            if (direct)
            {
                return (TlsStart.Failed, null); // nothing a TLS client could read: the connection just closes
            }

            Output.Write("N"u8);
            await Output.FlushAsync().ConfigureAwait(false);
            return (TlsStart.Refused, null);
        }

        string remote = _connection.RemoteEndPoint?.ToString() ?? "?"; // asked now: after a failed handshake the socket may be gone
        if (!direct)
        {
            Output.Write("S"u8);
            await Output.FlushAsync().ConfigureAwait(false);
        }

        // A handshake costs milliseconds of CPU: it runs on the client's own thread, not the accepting one.
        (_connection as ILoginHandOff)?.HandOff();
        var ssl = new System.Net.Security.SslStream(PgProxy.Core.Tls.TlsPipe.Stream(_connection.Transport), leaveInnerStreamOpen: false);
        try
        {
            // The login timeout wakes the socket's read, which the TLS stream's read then fails with.
            await ssl.AuthenticateAsServerAsync(options).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
        {
            LogTlsFailed(Logger, _connection.ConnectionId, remote, ex.InnerException?.Message ?? ex.Message);
            await ssl.DisposeAsync().ConfigureAwait(false);
            return (TlsStart.Failed, null);
        }

        _connection.Transport = PgProxy.Core.Tls.TlsPipe.Over(ssl);
        if (direct && ssl.NegotiatedApplicationProtocol != PgProxy.Core.Tls.TlsPipe.Alpn)
        {
            // PostgreSQL 17 refuses a direct connection that did not negotiate ALPN "postgresql" (it might be an
            // HTTPS client, or a cross-protocol attack); the error goes out over the TLS connection.
            throw new ProxyException(SqlState.ProtocolViolation, "received direct SSL connection request without ALPN protocol negotiation extension");
        }

        return (TlsStart.Started, ClientTls.CommonName(ssl.RemoteCertificate));
    }

    /// <summary>True when the client's first byte starts a TLS handshake record (0x16): no StartupMessage or SSLRequest begins so.</summary>
    private async Task<bool> StartsWithTlsHandshakeAsync()
    {
        System.IO.Pipelines.ReadResult read = await Input.ReadAsync().ConfigureAwait(false);
        while (read.IsCanceled)
        {
            WokenDuringLogin(read);
            read = await Input.ReadAsync().ConfigureAwait(false);
        }

        bool tls = !read.Buffer.IsEmpty && read.Buffer.FirstSpan[0] == 0x16;
        Input.AdvanceTo(read.Buffer.Start); // peeked only: the packet reader or the handshake reads it again
        return tls;
    }

    /// <remarks>A ValueTask: the packet is usually there already, and a Task would be made for the result alone.</remarks>
    private async ValueTask<StartupPacket?> ReadStartupPacketAsync()
    {
        while (true)
        {
            System.IO.Pipelines.ReadResult read = await Input.ReadAsync().ConfigureAwait(false);
            if (read.IsCanceled)
            {
                WokenDuringLogin(read);
                continue;
            }

            ReadOnlySequence<byte> buffer = read.Buffer;
            if (StartupPacket.TryParse(buffer, out StartupPacket? packet, out long consumed, out StartupPacketError error))
            {
                Input.AdvanceTo(buffer.GetPosition(consumed));
                return packet;
            }

            if (error != StartupPacketError.None)
            {
                ProxyException failure = error switch
                {
                    StartupPacketError.InvalidLength => new ProxyException(SqlState.ProtocolViolation, "invalid length of startup packet"),
                    StartupPacketError.UnsupportedProtocol => new ProxyException(SqlState.ProtocolViolation,
                        $"unsupported frontend protocol {DescribeCode(buffer)}: server supports 3.0 to 3.0"),
                    StartupPacketError.MalformedCancel => new ProxyException(SqlState.ProtocolViolation, "invalid length of cancel request packet"),
                    _ => new ProxyException(SqlState.ProtocolViolation, "invalid startup packet layout: expected terminator as last byte"),
                };
                Input.AdvanceTo(buffer.End);
                throw failure;
            }

            if (read.IsCompleted)
            {
                Input.AdvanceTo(buffer.End);
                return null;
            }

            Input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static string DescribeCode(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> b = stackalloc byte[8];
        buffer.Slice(0, 8).CopyTo(b);
        int code = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(b.Slice(4));
        return $"{code >> 16}.{code & 0xFFFF}";
    }

    // ---- authentication -----------------------------------------------------------------------------------

    /// <summary>
    /// Authenticates the client as [auth] says; returns the method that did it. <paramref name="certificateName"/> is the
    /// common name of the client's verified TLS certificate, if it showed one.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string> AuthenticateAsync(string user, string? certificateName)
    {
        AuthType type = Config.Auth.Type;
        if (type == AuthType.Trust)
        {
            return "trust";
        }

        if (type == AuthType.Cert)
        {
            // PostgreSQL's cert method, in its words.
            return certificateName is null
                ? throw new ProxyException(SqlState.InvalidAuthorizationSpecification, "connection requires a valid client certificate")
                : certificateName == user ? "cert"
                : throw new ProxyException(SqlState.InvalidAuthorizationSpecification, $"certificate authentication failed for user \"{user}\"",
                    $"the client certificate's common name is \"{certificateName}\"");
        }

        UserSecret? secret = _services.Users.Find(user);
        bool scram = type == AuthType.ScramSha256 || secret?.Kind == SecretKind.Scram;
        string? method = scram ? await ScramAsync(user, secret).ConfigureAwait(false)
            : await Md5Async(user, secret).ConfigureAwait(false) ? "md5" : null;
        return method ?? throw new ProxyException(SqlState.InvalidPassword, $"password authentication failed for user \"{user}\"");
    }

    /// <summary>A SCRAM exchange; returns the mechanism on success, null for a wrong password.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<string?> ScramAsync(string user, UserSecret? secret)
    {
        // An unknown user, or one whose only secret is an md5 hash, runs a mock exchange that fails at the end,
        // so the answer does not tell whether the user exists (PostgreSQL's scram_mock_salt).
        bool mock = secret?.Verifier is null;
        ScramVerifier verifier = secret?.Verifier ?? MockVerifier(user);
        // On TLS, SCRAM-SHA-256-PLUS is offered too, bound to the proxy's certificate (tls-server-end-point).
        byte[]? binding = PgProxy.Core.Tls.TlsPipe.StreamOf(_connection.Transport) is { } tls ? PgProxy.Core.Tls.EndPointHash.Of(tls.LocalCertificate) : null;
        var exchange = new ScramServerExchange(verifier, mock, bindingData: binding);

        BackendMessages.AuthenticationSasl(Builder, exchange.Mechanisms);
        // The builder goes back to the thread's spare while the client answers, for the next login on this thread (a
        // storm has many SCRAM logins waiting at once; each kept its own builder before).
        await SendBuilderAsync(CancellationToken.None).ConfigureAwait(false);

        byte[]? initial = await ReadPasswordMessageAsync().ConfigureAwait(false);
        if (initial is null)
        {
            throw new OperationCanceledException("client closed during authentication");
        }

        (string mechanism, int clientFirstAt, int clientFirstLength) = ParseSaslInitialResponse(initial, exchange.Mechanisms);
        if (!exchange.TryHandleClientFirst(initial.AsSpan(clientFirstAt, clientFirstLength), mechanism == ScramSha256.PlusMechanism, out string? error))
        {
            throw new ProxyException(SqlState.ProtocolViolation, error ?? "malformed SCRAM message");
        }

        BackendMessages.AuthenticationSaslContinue(Builder, exchange.ServerFirstMessage);
        await SendBuilderAsync(CancellationToken.None).ConfigureAwait(false);

        byte[]? final = await ReadPasswordMessageAsync().ConfigureAwait(false);
        if (final is null)
        {
            throw new OperationCanceledException("client closed during authentication");
        }

        return FinishScram(exchange, final, user, secret) ? mechanism : null;
    }

    /// <summary>
    /// client-final-message: AuthenticationSASLFinal into the builder and true, false for a wrong password (or an
    /// unknown user's mock exchange); a malformed message is a protocol violation.
    /// </summary>
    private bool FinishScram(ScramServerExchange exchange, byte[] final, string user, UserSecret? secret)
    {
        Span<byte> serverFinal = stackalloc byte[ScramServerExchange.ServerFinalLength];
        if (!exchange.TryHandleClientFinal(final, serverFinal, out string? error))
        {
            return error is "password does not match"
                ? false
                : throw new ProxyException(SqlState.ProtocolViolation, error ?? "malformed SCRAM message");
        }

        BackendMessages.AuthenticationSaslFinal(Builder, serverFinal);
        if (secret!.Kind == SecretKind.Scram && exchange.ClientKey is { } clientKey)
        {
            _services.Pools.RememberScramKey(user, clientKey);
        }

        return true;
    }

    /// <summary>SASLInitialResponse: the mechanism (one of <paramref name="offered"/>) and where its data lies in <paramref name="body"/>.</summary>
    private static (string Mechanism, int DataAt, int DataLength) ParseSaslInitialResponse(byte[] body, string[] offered)
    {
        var reader = new PgSpanReader(body);
        if (!reader.TryReadCString(out ReadOnlySpan<byte> name) || !reader.TryReadInt32(out int length))
        {
            throw new ProxyException(SqlState.ProtocolViolation, "malformed SASLInitialResponse message");
        }

        string? mechanism = null;
        foreach (string m in offered)
        {
            if (Ascii.Equals(name, m))
            {
                mechanism = m;
                break;
            }
        }

        if (mechanism is null)
        {
            throw new ProxyException(SqlState.ProtocolViolation, "client selected an invalid SASL authentication mechanism");
        }

        int at = body.Length - reader.Remaining;
        if (length < 0 || !reader.TryReadBytes(length, out _) || reader.Remaining != 0)
        {
            throw new ProxyException(SqlState.ProtocolViolation, "malformed SASLInitialResponse message");
        }

        return (mechanism, at, length);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> Md5Async(string user, UserSecret? secret)
    {
        byte[] salt = SecureRandom.GetBytes(4);
        BackendMessages.AuthenticationMd5Password(Builder, salt);
        await SendBuilderAsync(CancellationToken.None).ConfigureAwait(false);
        byte[]? body = await ReadPasswordMessageAsync().ConfigureAwait(false);
        if (body is null)
        {
            throw new OperationCanceledException("client closed during authentication");
        }

        var reader = new PgSpanReader(body);
        if (!reader.TryReadCString(out ReadOnlySpan<byte> response) || reader.Remaining != 0)
        {
            throw new ProxyException(SqlState.ProtocolViolation, "malformed password packet");
        }

        if (secret?.Md5Hash is not { } hash)
        {
            return false;
        }

        byte[] expected = Encoding.ASCII.GetBytes(Md5Password.Response(hash, salt));
        return CryptographicOperations.FixedTimeEquals(expected, response);
    }

    /// <remarks>
    /// Reads the socket in its own loop (<see cref="PgMessageIO.TryTake"/>) rather than through
    /// <see cref="PgMessageIO.ReadAsync"/>: a SCRAM login suspends here twice, and each async method between it and
    /// the socket was one more state machine per suspension and one more step in each resumption.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<byte[]?> ReadPasswordMessageAsync()
    {
        PgMessage? message;
        while (true)
        {
            System.IO.Pipelines.ReadResult read = await Input.ReadAsync().ConfigureAwait(false);
            if (PgMessageIO.TryTake(Input, read, MaxAuthMessageBytes, out message))
            {
                break;
            }

            if (read.IsCanceled)
            {
                ThrowIfAborted(); // the login's deadline passed
            }
        }

        if (message is null)
        {
            return null;
        }

        if (message.Value.Type != FrontendCode.Password)
        {
            throw new ProxyException(SqlState.ProtocolViolation,
                $"expected password response, got message type {(int)message.Value.Type}");
        }

        return message.Value.Body;
    }

    private static ScramVerifier MockVerifier(string user)
    {
        byte[] salt = HMACSHA256.HashData(s_mockSaltKey, Encoding.UTF8.GetBytes(user)).AsSpan(0, 16).ToArray();
        return new ScramVerifier(4096, salt, RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));
    }
}
