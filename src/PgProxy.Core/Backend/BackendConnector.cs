using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Core.Tls;
using PgProxy.Protocol;
using PgProxy.Protocol.Auth;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Backend;

/// <summary>
/// Opens a backend: TCP connect, StartupMessage with the pool's user and database, authentication (SCRAM-SHA-256,
/// md5, cleartext or trust), then ParameterStatus and BackendKeyData up to the first ReadyForQuery.
/// The whole login is bounded by server_connect_timeout.
/// </summary>
public sealed class BackendConnector
{
    private const int MaxLoginMessageBytes = 64 * 1024;
    private readonly IBackendTransport _transport;
    private readonly ServerTls _tls = new();

    /// <summary>Creates a connector over a transport.</summary>
    public BackendConnector(IBackendTransport transport)
    {
        _transport = transport;
    }

    /// <summary>The transport (the readiness probe connects with it).</summary>
    public IBackendTransport Transport => _transport;

    /// <summary>
    /// Sends <paramref name="backend"/>'s server a CancelRequest for it on a fresh connection, and waits for the server to
    /// close that connection (then the cancel has been delivered). The request goes as the connection it cancels went:
    /// over TLS when that one is (as libpq 17 sends it), so the cancel key never crosses the network in plaintext where
    /// the session's own traffic does not. Returns whether it went over TLS.
    /// </summary>
    public async ValueTask<bool> CancelAsync(BackendConnection backend, CancellationToken ct)
    {
        ConnectionContext context = await _transport.ConnectAsync(backend.Host, backend.Port, ct).ConfigureAwait(false);
        await using (context.ConfigureAwait(false))
        {
            bool tls = backend.Tls.Length > 0 &&
                await _tls.StartAsync(context, backend.Host, backend.Pool.Target.Tls, ct).ConfigureAwait(false) is not null;
            await SendCancelAsync(context, backend.ProcessId, backend.SecretKey, ct).ConfigureAwait(false);
            return tls;
        }
    }

    /// <summary>Forwards a client's CancelRequest to the peer PgProxy at host:port whose client it is (peering).</summary>
    public async ValueTask ForwardCancelAsync(string host, int port, int processId, int secretKey, CancellationToken ct)
    {
        ConnectionContext context = await _transport.ConnectAsync(host, port, ct).ConfigureAwait(false);
        await using (context.ConfigureAwait(false))
        {
            await SendCancelAsync(context, processId, secretKey, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Sends a CancelRequest and waits for the other end to close (then it has been taken).</summary>
    private static async ValueTask SendCancelAsync(ConnectionContext context, int processId, int secretKey, CancellationToken ct)
    {
        var b = new PgMessageBuilder(16);
        FrontendMessages.CancelRequest(b, processId, secretKey);
        await PgMessageIO.WriteAsync(context.Transport.Output, b, ct).ConfigureAwait(false);
        try
        {
            while (true)
            {
                ReadResult read = await context.Transport.Input.ReadAsync(ct).ConfigureAwait(false);
                context.Transport.Input.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (IOException)
        {
            // Closed with a reset (or without TLS's close_notify): delivered all the same.
        }
    }

    /// <summary>Connects and logs in; throws <see cref="BackendUnavailableException"/> with a client-ready message.</summary>
    public async ValueTask<BackendConnection> ConnectAsync(Pool pool, TimeSpan timeout, CancellationToken ct)
    {
        PoolTarget target = pool.Target;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeout > TimeSpan.Zero)
        {
            cts.CancelAfter(timeout);
        }

        ConnectionContext context;
        try
        {
            context = await _transport.ConnectAsync(target.Host, target.Port, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw Unavailable(target, $"connect timed out after server_connect_timeout ({DurationText.Format(timeout)})", ConnectFailure.Timeout);
        }
        catch (SocketException ex)
        {
            throw Unavailable(target, ex.Message, ex.SocketErrorCode == SocketError.ConnectionRefused ? ConnectFailure.Refused : ConnectFailure.Unreachable, ex);
        }

        var backend = new BackendConnection(context, target.Host, target.Port, pool);
        try
        {
            // TLS first (server_tls_*): the login below then runs over it, and its timeout and errors are the login's.
            SslStream? tls = await _tls.StartAsync(context, target.Host, target.Tls, cts.Token).ConfigureAwait(false);
            await LoginAsync(backend, target, tls, cts.Token).ConfigureAwait(false);
            backend.StartPump(); // from now on the pump is the socket's only reader
            return backend;
        }
        catch (ServerTlsException ex)
        {
            await backend.CloseAsync().ConfigureAwait(false);
            throw Unavailable(target, ex.Message, ConnectFailure.Tls);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await backend.CloseAsync().ConfigureAwait(false);
            throw Unavailable(target, $"login timed out after server_connect_timeout ({DurationText.Format(timeout)})", ConnectFailure.Timeout);
        }
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            await backend.CloseAsync().ConfigureAwait(false);
            throw Unavailable(target, "connection lost during login: " + ex.Message, ConnectFailure.Lost, ex);
        }
        catch
        {
            await backend.CloseAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static BackendUnavailableException Unavailable(PoolTarget target, string reason, ConnectFailure? failure = null, Exception? inner = null) =>
        new(SqlState.ConnectionFailure,
            $"could not connect to server for database \"{target.DbName}\": {reason}",
            $"server {target.Host}:{target.Port}, user \"{target.Credentials.User}\"", inner)
        {
            Failure = failure,
        };

    private static async Task LoginAsync(BackendConnection backend, PoolTarget target, SslStream? tls, CancellationToken ct)
    {
        var b = new PgMessageBuilder();
        FrontendMessages.Startup(b,
        [
            new("user", target.Credentials.User),
            new("database", target.DbName),
        ]);
        await PgMessageIO.WriteAsync(backend.Output, b, ct).ConfigureAwait(false);

        ScramClientExchange? scram = null;
        while (true)
        {
            PgMessage? message = await PgMessageIO.ReadAsync(backend.Input, MaxLoginMessageBytes, ct).ConfigureAwait(false)
                ?? throw Unavailable(target, "server closed the connection during login", ConnectFailure.Lost);
            byte[] body = message.Value.Body;
            switch (message.Value.Type)
            {
                case BackendCode.Authentication:
                    scram = await HandleAuthAsync(backend, target, tls, body, scram, b, ct).ConfigureAwait(false);
                    break;
                case BackendCode.ErrorResponse:
                    _ = ErrorResponse.TryParse(body, out ErrorResponse? error);
                    throw new BackendUnavailableException(error?.SqlState ?? SqlState.ConnectionFailure,
                        "server login failed: " + (error?.Message ?? "unknown error"), null, null, error);
                case BackendCode.ParameterStatus:
                    backend.RecordParameterStatus(new System.Buffers.ReadOnlySequence<byte>(body));

                    break;
                case BackendCode.BackendKeyData:
                    var keyReader = new PgSpanReader(body);
                    if (keyReader.TryReadInt32(out int pid) && keyReader.TryReadInt32(out int secret))
                    {
                        backend.ProcessId = pid;
                        backend.SecretKey = secret;
                    }

                    break;
                case BackendCode.ReadyForQuery:
                    backend.TransactionStatus = body.Length > 0 ? (TransactionStatus)body[0] : TransactionStatus.Idle;
                    return;
                case BackendCode.NoticeResponse:
                case BackendCode.NegotiateProtocolVersion:
                    break;
                default:
                    throw Unavailable(target, $"unexpected message '{(char)message.Value.Type}' during login");
            }
        }
    }

    private static async Task<ScramClientExchange?> HandleAuthAsync(
        BackendConnection backend, PoolTarget target, SslStream? tls, byte[] body, ScramClientExchange? scram, PgMessageBuilder b, CancellationToken ct)
    {
        BackendCredentials creds = target.Credentials;
        var reader = new PgSpanReader(body);
        if (!reader.TryReadInt32(out int code))
        {
            throw Unavailable(target, "malformed authentication request");
        }

        switch (code)
        {
            case AuthCode.Ok:
                return scram;
            case AuthCode.CleartextPassword:
                backend.AuthMethod = "password";
                FrontendMessages.Password(b, creds.Password ?? throw NoSecret(target, "a cleartext password"));
                break;
            case AuthCode.Md5Password:
                if (!reader.TryReadBytes(4, out ReadOnlySpan<byte> salt))
                {
                    throw Unavailable(target, "malformed md5 request");
                }

                backend.AuthMethod = "md5";
                string hash = creds.Password is { } p ? Md5Password.Hash(p, creds.User) : creds.Md5Hash ?? throw NoSecret(target, "an md5 password");
                FrontendMessages.Password(b, Md5Password.Response(hash, salt));
                break;
            case AuthCode.Sasl:
                bool plain = false, plus = false;
                while (reader.TryReadCString(out string mechanism) && mechanism.Length > 0)
                {
                    plain |= mechanism == ScramSha256.Mechanism;
                    plus |= mechanism == ScramSha256.PlusMechanism;
                }

                // Over TLS, bind to the server's certificate when it offers SCRAM-SHA-256-PLUS (as libpq's
                // channel_binding=prefer); without -PLUS, the "y" flag tells it that we could have bound.
                byte[]? binding = plus && tls is not null ? EndPointHash.Of(tls.RemoteCertificate) : null;
                if (!plain && binding is null)
                {
                    throw Unavailable(target, plus
                        ? "server offers only SCRAM-SHA-256-PLUS, which needs TLS with a certificate signed with SHA-256, SHA-384 or SHA-512"
                        : "server offers no supported SASL mechanism (SCRAM-SHA-256, SCRAM-SHA-256-PLUS)");
                }

                if (creds.Password is { } password)
                {
                    scram = ScramClientExchange.FromPassword(password);
                }
                else if (creds.ScramVerifier is { } verifier && creds.ScramClientKey?.Invoke() is { } clientKey)
                {
                    scram = ScramClientExchange.FromKeys(clientKey, verifier);
                }
                else
                {
                    throw NoSecret(target, "a SCRAM secret (a plaintext password, or a SCRAM login of this user to the proxy first)");
                }

                scram = scram.With(new ChannelBinding(tls is not null, binding));
                backend.AuthMethod = scram.Mechanism;
                FrontendMessages.SaslInitialResponse(b, scram.Mechanism, Encoding.UTF8.GetBytes(scram.ClientFirst()));
                break;
            case AuthCode.SaslContinue:
                if (scram is null)
                {
                    throw Unavailable(target, "unexpected SASLContinue");
                }

                string? final = scram.HandleServerFirst(Encoding.UTF8.GetString(reader.ReadRest()), out string? error);
                if (final is null)
                {
                    throw Unavailable(target, error ?? "SCRAM failed");
                }

                FrontendMessages.SaslResponse(b, Encoding.UTF8.GetBytes(final));
                break;
            case AuthCode.SaslFinal:
                string? finalError = null;
                if (scram is null || !scram.VerifyServerFinal(Encoding.UTF8.GetString(reader.ReadRest()), out finalError))
                {
                    throw Unavailable(target, "SCRAM server verification failed" + (scram is null ? "" : ": " + finalError));
                }

                return scram;
            default:
                throw Unavailable(target, $"server requested an unsupported authentication method (code {code})");
        }

        await PgMessageIO.WriteAsync(backend.Output, b, ct).ConfigureAwait(false);
        return scram;
    }

    private static BackendUnavailableException NoSecret(PoolTarget target, string what) =>
        new(SqlState.InvalidAuthorizationSpecification,
            $"no password for server login of user \"{target.Credentials.User}\": the server asked for {what}",
            "set password in [databases] or a plaintext secret in the [auth] file");
}
