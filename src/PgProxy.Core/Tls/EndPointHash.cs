using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PgProxy.Core.Tls;

/// <summary>
/// tls-server-end-point channel binding data (RFC 5929 section 4.1): the hash of the server's certificate, with the
/// hash function of the certificate's signature, except that MD5 and SHA-1 become SHA-256. PostgreSQL computes the
/// same with OpenSSL (be_tls_get_certificate_hash).
/// </summary>
internal static class EndPointHash
{
    /// <summary>The binding data of <paramref name="certificate"/>; null when its signature names no usable hash (Ed25519, RSA-PSS, SHA-224).</summary>
    public static byte[]? Of(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return null;
        }

        X509Certificate2 cert = TlsTrust.AsCertificate2(certificate);
        HashAlgorithmName? hash = cert.SignatureAlgorithm.Value switch
        {
            "1.2.840.113549.1.1.4" or "1.2.840.113549.1.1.5" or "1.3.14.3.2.29" or "1.2.840.10045.4.1" or "1.2.840.10040.4.3" or
                "1.2.840.113549.1.1.11" or "1.2.840.10045.4.3.2" or "2.16.840.1.101.3.4.3.2" => HashAlgorithmName.SHA256,
            "1.2.840.113549.1.1.12" or "1.2.840.10045.4.3.3" or "2.16.840.1.101.3.4.3.3" => HashAlgorithmName.SHA384,
            "1.2.840.113549.1.1.13" or "1.2.840.10045.4.3.4" or "2.16.840.1.101.3.4.3.4" => HashAlgorithmName.SHA512,
            _ => null,
        };
        byte[] der = cert.RawData;
        return hash?.Name switch
        {
            "SHA256" => SHA256.HashData(der),
            "SHA384" => SHA384.HashData(der),
            "SHA512" => SHA512.HashData(der),
            _ => null,
        };
    }
}
