using PgProxy.Core.Client;
using PgProxy.Core.Infrastructure;

namespace PgProxy.Core.Tests.Client;

public sealed class SessionParametersTests
{
    [Fact]
    public void Options_ThenParameters_InPostgresOrder_EveryOneKept()
    {
        List<KeyValuePair<string, string>> settings = SessionParameters.FromStartup(
        [
            new("user", "u"),
            new("database", "d"),
            new("application_name", "app"),
            new("options", @"-c search_path=a,b --work-mem=8MB -cstatement_timeout=5s -c x.y=with\ space"),
            new("search_path", "c"),
            new("_pq_.ext", "1"),
        ]);
        Assert.Equal(
        [
            new("search_path", "a,b"),
            new("work_mem", "8MB"),
            new("statement_timeout", "5s"),
            new("x.y", "with space"),
            new("application_name", "app"),
            new("search_path", "c"),
        ], settings);
    }

    private static readonly Dictionary<string, string> s_welcome = new(StringComparer.OrdinalIgnoreCase)
    {
        ["DateStyle"] = "ISO, MDY",
        ["TimeZone"] = "UTC",
        ["application_name"] = "",
    };

    [Theory]
    [InlineData("ISO, DMY", "ISO", "ISO, DMY")] // PgJDBC: options=-c DateStyle=ISO,DMY plus DateStyle=ISO
    [InlineData("SQL", null, "SQL, MDY")]
    [InlineData("German", null, "German, DMY")]
    [InlineData("German, YMD", null, "German, YMD")]
    [InlineData("SQL, YMD", "Postgres", "Postgres, YMD")]
    [InlineData("dmy", "iso", "ISO, DMY")]
    [InlineData(" iso , dmy ", null, "ISO, DMY")]
    [InlineData("European", null, "ISO, DMY")]
    [InlineData("NonEuropean", "US", "ISO, MDY")]
    [InlineData("SQL, DMY", "DEFAULT", "ISO, MDY")]
    [InlineData("DMY", "DEFAULT, SQL", "SQL, MDY")]
    [InlineData("ISO, SQL", null, "ISO, SQL")] // conflicting: kept as sent, the server refuses it at the first link
    [InlineData("bogus", null, "bogus")]
    public void DateStyle_EachSettingAppliesOnTopOfTheLast(string first, string? second, string expected)
    {
        List<KeyValuePair<string, string>> startup = [new("DateStyle", first)];
        if (second is not null)
        {
            startup.Add(new("datestyle", second));
        }

        ClientSettings view = ClientSettings.AtLogin(s_welcome, startup);
        Assert.Equal(expected, view.Told["DateStyle"]);
    }

    [Fact]
    public void AtLogin_LaterSettingOfTheSameNameWins_ForReportedAndUnreported()
    {
        ClientSettings view = ClientSettings.AtLogin(s_welcome,
            [new("timezone", "Asia/Tokyo"), new("work_mem", "1MB"), new("TimeZone", "Europe/Paris"), new("WORK_MEM", "2MB")]);
        Assert.Equal("Europe/Paris", view.Told["TimeZone"]);
        Assert.Equal([new("work_mem", "2MB")], view.Unreported);
    }

    [Fact]
    public void UnsupportedOption_Is08P01()
    {
        ProxyException ex = Assert.Throws<ProxyException>(() => SessionParameters.ParseOptions("-B 100"));
        Assert.Equal("08P01", ex.SqlState);
    }

    [Fact]
    public void Sync_SkipsValuesTheBackendAlreadyHas_AndQuotesSafely()
    {
        var reported = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["application_name"] = "app", ["TimeZone"] = "UTC" };
        var applied = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["work_mem"] = "8MB" };
        string? sql = SessionParameters.BuildSync(
            [new("application_name", "app"), new("timezone", "Europe/Paris"), new("work_mem", "8MB"), new("search_path", @"o'brien\x")],
            reported, applied);
        Assert.Equal(@"SELECT pg_catalog.set_config(E'timezone', E'Europe/Paris', false), pg_catalog.set_config(E'search_path', E'o''brien\\x', false)", sql);
        Assert.Null(SessionParameters.BuildSync([new("application_name", "app"), new("work_mem", "8MB")], reported, applied));
        // A setting the proxy applied for an earlier client that this one does not want goes back to the default.
        Assert.Equal("SELECT (SELECT pg_catalog.set_config(name, reset_val, false) FROM pg_catalog.pg_settings WHERE name = E'work_mem')",
            SessionParameters.BuildSync([new("application_name", "app")], reported, applied));
    }

    [Fact]
    public void SqlQuote_RejectsNul_AndDoublesQuotes()
    {
        Assert.Equal("E'a''b\\\\c'", SqlQuote.Literal(@"a'b\c"));
        Assert.Equal("\"we\"\"ird\"", SqlQuote.Identifier("we\"ird"));
        Assert.Throws<ArgumentException>(() => SqlQuote.Literal("a\0b"));
    }
}
