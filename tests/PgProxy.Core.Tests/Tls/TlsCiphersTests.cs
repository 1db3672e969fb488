using System.Net.Security;
using PgProxy.Core.Tls;

namespace PgProxy.Core.Tests.Tls;

public sealed class TlsCiphersTests
{
    [Theory]
    [InlineData("ECDHE-RSA-AES128-GCM-SHA256", TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)]
    [InlineData("ECDHE-ECDSA-AES256-GCM-SHA384", TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)]
    [InlineData("ECDHE-ECDSA-CHACHA20-POLY1305", TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)]
    [InlineData("ECDHE-RSA-AES128-SHA256", TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256)]
    [InlineData("DHE-RSA-AES256-GCM-SHA384", TlsCipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384)]
    [InlineData("AES256-SHA", TlsCipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA)]
    [InlineData("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)]
    public void OpenSslAndIanaNames_NameTheSameSuite(string name, TlsCipherSuite expected)
    {
        Assert.True(TlsCiphers.TryParse(name, out TlsCipherSuite[]? suites, out string? error), error);
        Assert.Equal(expected, suites![0]);
        // A list of TLS 1.2 suites keeps TLS 1.3's standard three, as PgBouncer's key leaves TLS 1.3 alone.
        Assert.Contains(TlsCipherSuite.TLS_AES_128_GCM_SHA256, suites);
        Assert.Equal(4, suites.Length);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("FAST")]
    [InlineData("secure")]
    [InlineData("")]
    public void Shortcuts_MeanTheSystemDefaults(string text)
    {
        Assert.True(TlsCiphers.TryParse(text, out TlsCipherSuite[]? suites, out _));
        Assert.Null(suites);
        Assert.Null(TlsCiphers.Policy(text));
    }

    [Theory]
    [InlineData("HIGH:!aNULL", "\"HIGH\"")]
    [InlineData("ECDHE-RSA-AES999-GCM-SHA256", "\"ECDHE-RSA-AES999-GCM-SHA256\"")]
    [InlineData("TLS_NOT_A_SUITE", "\"TLS_NOT_A_SUITE\"")]
    public void OtherWords_AreRefused_ByName(string text, string named)
    {
        Assert.False(TlsCiphers.TryParse(text, out _, out string? error));
        Assert.StartsWith(named + " is not a cipher suite", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AListOfTls13SuitesOnly_OffersNoTls12Suite()
    {
        Assert.True(TlsCiphers.TryParse("TLS_AES_256_GCM_SHA384", out TlsCipherSuite[]? suites, out _));
        Assert.Equal([TlsCipherSuite.TLS_AES_256_GCM_SHA384], suites);
        Assert.False(TlsCiphers.OffersTls12(suites));
        Assert.True(TlsCiphers.OffersTls12(null));
    }
}
