using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Client;

/// <summary>
/// The proxy's TLS toward clients: its certificate and the CAs of client certificates, loaded from the files that
/// [proxy] client_tls_* name, and loaded again when the names change (RELOAD, SET) or a file's modification time does
/// (checked at most once a second), so new handshakes use renewed files without a restart.
/// </summary>
public sealed class ClientTls
{
    private readonly Lock _lock = new();
    private TlsFiles<Loaded>? _files;
    private (string Text, CipherSuitesPolicy? Policy) _ciphers = ("default", null);

    /// <summary>The options of a handshake under <paramref name="proxy"/>'s settings; throws when the files cannot be loaded.</summary>
    internal SslServerAuthenticationOptions Options(ProxySection proxy)
    {
        Loaded loaded = Load(proxy);
        bool verify = proxy.ClientTlsSslMode is TlsMode.VerifyCa or TlsMode.VerifyFull;
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = loaded.Context,
            EnabledSslProtocols = proxy.ClientTlsProtocols,
            ApplicationProtocols = TlsPipe.AlpnList,
            CipherSuitesPolicy = Ciphers(proxy.ClientTlsCiphers),
            ClientCertificateRequired = verify,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = verify ? loaded.ValidateClient : null,
        };
    }

    /// <summary>client_tls_ciphers' policy, made again only when the setting's text changes.</summary>
    private CipherSuitesPolicy? Ciphers(string text)
    {
        (string Text, CipherSuitesPolicy? Policy) current = _ciphers;
        if (current.Text != text)
        {
            current = (text, TlsCiphers.Policy(text));
            _ciphers = current;
        }

        return current.Policy;
    }

    private Loaded Load(ProxySection proxy)
    {
        string?[] paths = [proxy.ClientTlsCertFile, proxy.ClientTlsKeyFile, proxy.ClientTlsCaFile];
        TlsFiles<Loaded> files;
        lock (_lock)
        {
            if (_files is null || !_files.Loads(paths))
            {
                _files = new TlsFiles<Loaded>(paths, () => Loaded.From(proxy));
            }

            files = _files;
        }

        return files.Get();
    }

    /// <summary>The client's certificate's common name (verify-full compares it with the user name).</summary>
    internal static string? CommonName(X509Certificate? certificate) =>
        certificate is null ? null : TlsTrust.AsCertificate2(certificate).GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    /// <summary>One load of the files: the certificate context and the client CAs.</summary>
    private sealed record Loaded(SslStreamCertificateContext Context, X509Certificate2Collection Roots)
    {
        public static Loaded From(ProxySection proxy)
        {
            string cert = proxy.ClientTlsCertFile ?? throw new InvalidOperationException("client_tls_cert_file is not set");
            string key = proxy.ClientTlsKeyFile ?? throw new InvalidOperationException("client_tls_key_file is not set");
            return new Loaded(TlsFiles.LoadCertificate(cert, key), TlsFiles.LoadCas(proxy.ClientTlsCaFile));
        }

        /// <summary>verify-ca and verify-full: the client's certificate chains to one of client_tls_ca_file's CAs.</summary>
        public bool ValidateClient(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
            TlsTrust.Chains(certificate, chain, Roots, systemWhenEmpty: false, out _);
    }
}
