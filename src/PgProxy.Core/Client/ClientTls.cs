using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Client;

/// <summary>
/// The proxy's TLS toward clients: its certificate and the CAs of client certificates, loaded from the files that
/// [proxy] client_tls_* name, and loaded again when the names change (RELOAD, SET) or a file's modification time does
/// (checked at most once a second), so new handshakes use renewed files without a restart.
/// </summary>
public sealed class ClientTls
{
    private static readonly List<SslApplicationProtocol> s_alpn = [new("postgresql")];
    private readonly Lock _lock = new();
    private Loaded? _loaded;

    /// <summary>The options of a handshake under <paramref name="proxy"/>'s settings; throws when the files cannot be loaded.</summary>
    internal SslServerAuthenticationOptions Options(ProxySection proxy)
    {
        Loaded loaded = Load(proxy);
        bool verify = proxy.ClientTlsSslMode is TlsMode.VerifyCa or TlsMode.VerifyFull;
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = loaded.Context,
            EnabledSslProtocols = proxy.ClientTlsProtocols,
            ApplicationProtocols = s_alpn,
            ClientCertificateRequired = verify,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = verify ? loaded.ValidateClient : null,
        };
    }

    private Loaded Load(ProxySection proxy)
    {
        lock (_lock)
        {
            if (_loaded is { } current && current.Matches(proxy) &&
                (Environment.TickCount64 - current.CheckedAt < 1000 || current.Unchanged()))
            {
                return current;
            }

            try
            {
                _loaded = Loaded.From(proxy);
            }
            catch (Exception ex) when (_loaded is { } last && last.Matches(proxy) &&
                                       ex is CryptographicException or IOException or UnauthorizedAccessException)
            {
                // A renewed file that cannot be loaded (half written, say): the last good one serves on, and the files
                // are tried again a second from now.
                last.Unchanged();
            }

            return _loaded!;
        }
    }

    /// <summary>The client's certificate's common name (verify-full compares it with the user name).</summary>
    internal static string? CommonName(X509Certificate? certificate) =>
        certificate is null ? null : AsCertificate2(certificate).GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    private static X509Certificate2 AsCertificate2(X509Certificate certificate) =>
        certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());

    /// <summary>The duplex pipe over the TLS stream (which reads and writes the socket's own pipes).</summary>
    internal static IDuplexPipe Pipe(SslStream tls) => new StreamPipe(
        PipeReader.Create(tls, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024)),
        PipeWriter.Create(tls), tls);

    /// <summary>SHOW CLIENTS' tls column, as PgBouncer fills it: "TLSv1.3/TLS_AES_256_GCM_SHA384"; "" for plaintext.</summary>
    internal static string Describe(IDuplexPipe transport) => transport is StreamPipe { Tls: { } tls }
        ? $"{Protocol(tls.SslProtocol)}/{tls.NegotiatedCipherSuite}"
        : "";

    private static string Protocol(System.Security.Authentication.SslProtocols protocol) => protocol switch
    {
        System.Security.Authentication.SslProtocols.Tls13 => "TLSv1.3",
        System.Security.Authentication.SslProtocols.Tls12 => "TLSv1.2",
        _ => protocol.ToString(),
    };

    /// <summary>A stream over a duplex pipe: what the TLS stream reads and writes (the socket's pipes).</summary>
    internal static Stream Stream(IDuplexPipe pipe) => new PipeStream(pipe.Input.AsStream(leaveOpen: true), pipe.Output.AsStream(leaveOpen: true));

    private sealed record StreamPipe(PipeReader Input, PipeWriter Output, SslStream Tls) : IDuplexPipe;

    /// <summary>Reads from one stream and writes to another.</summary>
    private sealed class PipeStream(Stream reader, Stream writer) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => reader.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => reader.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            reader.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => writer.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => writer.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            writer.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Flush() => writer.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => writer.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                reader.Dispose();
                writer.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>One load of the files: the certificate context, the client CAs, and what they were loaded from.</summary>
    private sealed class Loaded
    {
        private readonly string _cert;
        private readonly string _key;
        private readonly string? _ca;
        private readonly DateTime[] _stamps;
        private readonly X509Certificate2Collection _roots;

        private Loaded(string cert, string key, string? ca, SslStreamCertificateContext context, X509Certificate2Collection roots)
        {
            _cert = cert;
            _key = key;
            _ca = ca;
            _stamps = Stamps(cert, key, ca);
            Context = context;
            _roots = roots;
            CheckedAt = Environment.TickCount64;
        }

        public SslStreamCertificateContext Context { get; }

        public long CheckedAt { get; private set; }

        public static Loaded From(ProxySection proxy)
        {
            string cert = proxy.ClientTlsCertFile ?? throw new InvalidOperationException("client_tls_cert_file is not set");
            string key = proxy.ClientTlsKeyFile ?? throw new InvalidOperationException("client_tls_key_file is not set");
            using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(cert, key);
            // Re-imported as PKCS#12: an ephemeral PEM key cannot be used by the platform's TLS on every OS.
            X509Certificate2 certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(cert);
            chain.RemoveAt(0); // the certificate itself; the rest are its intermediates
            var roots = new X509Certificate2Collection();
            if (proxy.ClientTlsCaFile is { } ca)
            {
                roots.ImportFromPemFile(ca);
            }

            return new Loaded(cert, key, proxy.ClientTlsCaFile, SslStreamCertificateContext.Create(certificate, chain, offline: true), roots);
        }

        public bool Matches(ProxySection proxy) => proxy.ClientTlsCertFile == _cert && proxy.ClientTlsKeyFile == _key && proxy.ClientTlsCaFile == _ca;

        /// <summary>True while the files are as loaded (and notes the check).</summary>
        public bool Unchanged()
        {
            CheckedAt = Environment.TickCount64;
            return Stamps(_cert, _key, _ca).SequenceEqual(_stamps);
        }

        /// <summary>verify-ca and verify-full: the client's certificate chains to one of client_tls_ca_file's CAs.</summary>
        public bool ValidateClient(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            if (certificate is null || _roots.Count == 0)
            {
                return false;
            }

            using var verify = new X509Chain();
            verify.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            verify.ChainPolicy.CustomTrustStore.AddRange(_roots);
            verify.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (chain is not null)
            {
                foreach (X509ChainElement element in chain.ChainElements)
                {
                    verify.ChainPolicy.ExtraStore.Add(element.Certificate);
                }
            }

            return verify.Build(AsCertificate2(certificate));
        }

        private static DateTime[] Stamps(string cert, string key, string? ca) =>
            [File.GetLastWriteTimeUtc(cert), File.GetLastWriteTimeUtc(key), ca is null ? default : File.GetLastWriteTimeUtc(ca)];
    }
}
