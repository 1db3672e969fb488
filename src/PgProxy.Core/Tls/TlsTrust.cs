using System.Security.Cryptography.X509Certificates;

namespace PgProxy.Core.Tls;

/// <summary>Certificate checks shared by both legs: does a peer's certificate chain to a trusted CA.</summary>
internal static class TlsTrust
{
    /// <summary>
    /// True when <paramref name="certificate"/> chains to one of <paramref name="roots"/> (or, when that is empty and
    /// <paramref name="systemWhenEmpty"/>, to the system's CAs); otherwise false and the reason in OpenSSL's words,
    /// which is what libpq and PostgreSQL print ("certificate has expired", "unable to get local issuer certificate").
    /// </summary>
    public static bool Chains(X509Certificate? certificate, X509Chain? presented, X509Certificate2Collection roots, bool systemWhenEmpty, out string reason)
    {
        reason = "";
        if (certificate is null)
        {
            reason = "no certificate was presented";
            return false;
        }

        if (roots.Count == 0 && !systemWhenEmpty)
        {
            reason = "no CA to verify it with";
            return false;
        }

        using var verify = new X509Chain();
        verify.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (roots.Count > 0)
        {
            verify.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            verify.ChainPolicy.CustomTrustStore.AddRange(roots);
        }

        if (presented is not null)
        {
            foreach (X509ChainElement element in presented.ChainElements)
            {
                verify.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        if (verify.Build(AsCertificate2(certificate)))
        {
            return true;
        }

        reason = Describe(verify.ChainStatus);
        return false;
    }

    /// <summary>The certificate as an <see cref="X509Certificate2"/>.</summary>
    public static X509Certificate2 AsCertificate2(X509Certificate certificate) =>
        certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());

    private static string Describe(X509ChainStatus[] status)
    {
        X509ChainStatusFlags flags = status.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status);
        if (flags.HasFlag(X509ChainStatusFlags.NotTimeValid))
        {
            return "certificate has expired or is not yet valid";
        }

        if (flags.HasFlag(X509ChainStatusFlags.UntrustedRoot) || flags.HasFlag(X509ChainStatusFlags.PartialChain))
        {
            return "unable to get local issuer certificate (not signed by a trusted CA)";
        }

        return status.Length > 0 ? string.Join("; ", status.Select(s => s.StatusInformation.Trim()).Distinct()) : "certificate verify failed";
    }
}
