using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PgProxy.Core.Tls;

/// <summary>
/// What a set of PEM files loads into (a certificate context, a set of CAs), loaded again when a file's modification
/// time changes (checked at most once a second), so new handshakes use renewed files without a restart. A renewal that
/// cannot be loaded (a half-written file, say) leaves the last good load serving, and is tried again a second later.
/// </summary>
internal sealed class TlsFiles<T>
    where T : class
{
    private readonly Lock _lock = new();
    private readonly string?[] _paths;
    private readonly Func<T> _load;
    private T? _value;
    private DateTime[] _stamps = [];
    private long _checkedAt;

    public TlsFiles(string?[] paths, Func<T> load)
    {
        _paths = paths;
        _load = load;
    }

    /// <summary>True when these are the files <paramref name="paths"/> names.</summary>
    public bool Loads(string?[] paths) => _paths.SequenceEqual(paths);

    /// <summary>The current load; throws when the files cannot be loaded and nothing was loaded before.</summary>
    public T Get()
    {
        lock (_lock)
        {
            if (_value is { } current && Environment.TickCount64 - _checkedAt < 1000)
            {
                return current;
            }

            _checkedAt = Environment.TickCount64;
            DateTime[] stamps = Stamps();
            if (_value is not null && stamps.SequenceEqual(_stamps))
            {
                return _value;
            }

            try
            {
                _value = _load();
                _stamps = stamps;
            }
            catch (Exception ex) when (_value is not null && ex is CryptographicException or IOException or UnauthorizedAccessException)
            {
                // The last good load serves on.
            }

            return _value;
        }
    }

    private DateTime[] Stamps() => [.. _paths.Select(p => p is null ? default : File.GetLastWriteTimeUtc(p))];
}

/// <summary>Loading PEM files for TLS, on either leg.</summary>
internal static class TlsFiles
{
    /// <summary>A certificate and its key from PEM files, with its chain's intermediates, as a handshake presents them.</summary>
    public static System.Net.Security.SslStreamCertificateContext LoadCertificate(string certFile, string keyFile)
    {
        using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        // Re-imported as PKCS#12: an ephemeral PEM key cannot be used by the platform's TLS on every OS.
        X509Certificate2 certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(certFile);
        chain.RemoveAt(0); // the certificate itself; the rest are its intermediates
        return System.Net.Security.SslStreamCertificateContext.Create(certificate, chain, offline: true);
    }

    /// <summary>The certificates of a PEM file (CAs); empty for no file.</summary>
    public static X509Certificate2Collection LoadCas(string? caFile)
    {
        var roots = new X509Certificate2Collection();
        if (caFile is not null)
        {
            roots.ImportFromPemFile(caFile);
        }

        return roots;
    }
}
