using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Tls;

/// <summary>
/// TLS toward servers (server_tls_*): an SSLRequest and the server's answer, or the handshake at once (server_tls_direct),
/// then the handshake with SNI, the server's certificate checked as the mode asks, and the proxy's client certificate
/// when one is configured. The files are loaded once per set of paths and again when they change on disk.
/// </summary>
public sealed class ServerTls
{
    private static readonly byte[] s_sslRequest = SslRequestBytes();
    private readonly ConcurrentDictionary<string, TlsFiles<Loaded>> _files = new(StringComparer.Ordinal);

    /// <summary>
    /// Negotiates TLS on a fresh server connection: on success the connection's transport is the TLS pipe and the
    /// TLS stream is returned; null when the connection stays plaintext (disable, or the server declined under allow
    /// or prefer). Throws <see cref="ServerTlsException"/> with the reason, in libpq's words where it has them.
    /// </summary>
    public async ValueTask<SslStream?> StartAsync(ConnectionContext connection, string host, ServerTlsSettings? tls, CancellationToken ct)
    {
        if (tls is null || tls.Mode == TlsMode.Disable)
        {
            return null;
        }

        if (!tls.Direct && !await AskAsync(connection.Transport, tls.Mode, ct).ConfigureAwait(false))
        {
            return null;
        }

        Loaded loaded;
        try
        {
            loaded = Files(tls).Get();
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ServerTlsException($"cannot load server_tls_* files: {ex.Message}");
        }

        string? refusal = null;
        var ssl = new SslStream(TlsPipe.Stream(connection.Transport), leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host, // SNI for a host name; .NET leaves it out for an IP address, as libpq does
            EnabledSslProtocols = tls.Protocols,
            ApplicationProtocols = TlsPipe.AlpnList,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ClientCertificateContext = loaded.Client,
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                Verify(tls.Mode, host, loaded.Roots, certificate, chain, errors, out refusal),
        };
        try
        {
            await ssl.AuthenticateAsClientAsync(options, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException || (ex is IOException && refusal is not null))
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new ServerTlsException(refusal ?? "TLS handshake failed: " + (ex.InnerException?.Message ?? ex.Message));
        }
        catch (IOException)
        {
            // The connection went away during the handshake (a server shutting down or restarting): a lost connection,
            // which the pool retries while clients wait, not a TLS refusal that fails them at once.
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        connection.Transport = TlsPipe.Over(ssl);
        return ssl;
    }

    /// <summary>SSLRequest: true for 'S' (go on with the handshake), false for 'N' when plaintext is acceptable.</summary>
    private static async ValueTask<bool> AskAsync(IDuplexPipe transport, TlsMode mode, CancellationToken ct)
    {
        await transport.Output.WriteAsync(s_sslRequest, ct).ConfigureAwait(false);
        ReadResult read = await transport.Input.ReadAsync(ct).ConfigureAwait(false);
        if (read.Buffer.IsEmpty)
        {
            // A server shutting down or restarting closes here: the connection is lost (retried while clients wait),
            // not refused.
            transport.Input.AdvanceTo(read.Buffer.End);
            throw new IOException("server closed the connection after the SSL request");
        }

        byte answer = read.Buffer.FirstSpan[0];
        long length = read.Buffer.Length;
        transport.Input.AdvanceTo(read.Buffer.GetPosition(1));
        switch (answer)
        {
            case (byte)'S' when length > 1:
                // Bytes after 'S' and before the handshake could only have been injected (CVE-2021-23222).
                throw new ServerTlsException("received unencrypted data after SSL response");
            case (byte)'S':
                return true;
            case (byte)'N' when mode >= TlsMode.Require:
                throw new ServerTlsException("server does not support SSL, but server_tls_sslmode requires it");
            case (byte)'N':
                return false;
            default:
                throw new ServerTlsException($"unexpected answer '{(char)answer}' to the SSL request");
        }
    }

    private static byte[] SslRequestBytes()
    {
        var b = new PgProxy.Protocol.Framing.PgMessageBuilder(8);
        PgProxy.Protocol.Frontend.FrontendMessages.SslRequest(b);
        return b.Written.ToArray();
    }

    private static bool Verify(TlsMode mode, string host, X509Certificate2Collection roots, X509Certificate? certificate, X509Chain? chain,
        SslPolicyErrors errors, out string? refusal)
    {
        refusal = null;
        if (mode < TlsMode.VerifyCa)
        {
            return true; // allow, prefer, require: encrypted, not authenticated (as libpq without a root certificate)
        }

        if (!TlsTrust.Chains(certificate, chain, roots, systemWhenEmpty: true, out string reason))
        {
            refusal = "server certificate verify failed: " + reason;
            return false;
        }

        if (mode == TlsMode.VerifyFull && errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            string name = TlsTrust.AsCertificate2(certificate!).GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            refusal = $"server certificate for \"{name}\" does not match host name \"{host}\"";
            return false;
        }

        return true;
    }

    private TlsFiles<Loaded> Files(ServerTlsSettings tls)
    {
        string?[] paths = [tls.CaFile, tls.CertFile, tls.KeyFile];
        string key = string.Join('\0', paths.Select(p => p ?? ""));
        return _files.GetOrAdd(key, _ => new TlsFiles<Loaded>(paths, () => Loaded.From(tls)));
    }

    /// <summary>One load of a database's files: the CAs of server certificates and the proxy's client certificate.</summary>
    private sealed record Loaded(X509Certificate2Collection Roots, SslStreamCertificateContext? Client)
    {
        public static Loaded From(ServerTlsSettings tls) => new(
            TlsFiles.LoadCas(tls.CaFile),
            tls.CertFile is { } cert && tls.KeyFile is { } key ? TlsFiles.LoadCertificate(cert, key) : null);
    }
}

/// <summary>TLS toward a server failed; the message says why.</summary>
public sealed class ServerTlsException(string message) : Exception(message);
