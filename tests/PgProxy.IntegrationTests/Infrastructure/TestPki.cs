using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PgProxy.Testing;

namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A test CA, a server certificate (localhost and 127.0.0.1) for the proxy or PostgreSQL, a client certificate for alice, all
/// PEM; another CA; the server certificate expired, and one for another name (db.example), both with the server's key.
/// </summary>
public sealed record Pki(string CaFile, string OtherCaFile, string ServerFile, string ServerKeyFile, string ClientFile, string ClientKeyFile,
    string ExpiredFile, string WrongNameFile)
{
    public static Pki Create(string dir)
    {
        using RSA caKey = RSA.Create(2048);
        using X509Certificate2 ca = SelfSigned("CN=pgproxy test CA", caKey);
        using RSA otherKey = RSA.Create(2048);
        using X509Certificate2 other = SelfSigned("CN=another CA", otherKey);
        using RSA serverKey = RSA.Create(2048);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        using X509Certificate2 server = Signed("CN=localhost", serverKey, ca, san.Build(), "1.3.6.1.5.5.7.3.1");
        using RSA clientKey = RSA.Create(2048);
        using X509Certificate2 client = Signed("CN=" + PostgresFixture.Alice, clientKey, ca, null, "1.3.6.1.5.5.7.3.2");
        using X509Certificate2 expired = Signed("CN=localhost", serverKey, ca, san.Build(), "1.3.6.1.5.5.7.3.1",
            DateTimeOffset.UtcNow.AddDays(-3), DateTimeOffset.UtcNow.AddDays(-1));
        var otherName = new SubjectAlternativeNameBuilder();
        otherName.AddDnsName("db.example");
        using X509Certificate2 wrongName = Signed("CN=db.example", serverKey, ca, otherName.Build(), "1.3.6.1.5.5.7.3.1");
        return new Pki(
            Write(dir, "ca.pem", ca.ExportCertificatePem()), Write(dir, "other-ca.pem", other.ExportCertificatePem()),
            Write(dir, "server.pem", server.ExportCertificatePem()), Write(dir, "server.key", serverKey.ExportPkcs8PrivateKeyPem()),
            Write(dir, "client.pem", client.ExportCertificatePem()), Write(dir, "client.key", clientKey.ExportPkcs8PrivateKeyPem()),
            Write(dir, "expired.pem", expired.ExportCertificatePem()), Write(dir, "wrong-name.pem", wrongName.ExportCertificatePem()));
    }

    private static X509Certificate2 SelfSigned(string subject, RSA key)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-5), DateTimeOffset.UtcNow.AddDays(2));
    }

    private static X509Certificate2 Signed(string subject, RSA key, X509Certificate2 issuer, X509Extension? san, string usage,
        DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        if (san is not null)
        {
            request.CertificateExtensions.Add(san);
        }

        byte[] serial = RandomNumberGenerator.GetBytes(8);
        return request.Create(issuer, notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(1), serial);
    }

    private static string Write(string dir, string name, string pem)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, pem, Encoding.ASCII);
        if (name.EndsWith(".key", StringComparison.Ordinal))
        {
            // libpq refuses a key file others may read.
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return path;
    }
}
