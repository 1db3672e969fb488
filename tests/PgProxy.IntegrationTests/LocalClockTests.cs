using System.Globalization;
using PgProxy.Logging;

namespace PgProxy.IntegrationTests;

/// <summary>The text log's time stamp: the same text as the framework's local-time formatting, across offset changes.</summary>
public sealed class LocalClockTests
{
    [Theory]
    [InlineData("Etc/UTC")]
    [InlineData("Europe/Berlin")]
    [InlineData("America/St_Johns")] // a half-hour offset
    [InlineData("Australia/Lord_Howe")] // a half-hour daylight-saving shift
    public void Format_MatchesToLocalTime_AcrossDaylightSavingChanges(string zoneId)
    {
        TimeZoneInfo zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
        var clock = new LocalClock(zone);
        // Every 7 minutes 13.457 seconds through 2026 (both of Berlin's and Lord Howe's changes), in order, so that the
        // clock's cached offset is reused within a minute and renewed across each change.
        var start = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var step = TimeSpan.FromMilliseconds((7 * 60 * 1000) + 13_457);
        Span<char> written = stackalloc char[23];
        int checkedCount = 0;
        for (DateTime utc = start; utc.Year == 2026; utc += step)
        {
            foreach (DateTime t in new[] { utc, utc.AddMilliseconds(1) })
            {
                clock.Format(t, written);
                string expected = TimeZoneInfo.ConvertTimeFromUtc(t, zone).ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture);
                Assert.Equal(expected, written.ToString());
                checkedCount++;
            }
        }

        Assert.True(checkedCount > 100_000);
    }

    [Fact]
    public void Format_TimeGoingBackwards_RenewsTheOffset()
    {
        TimeZoneInfo zone = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        var clock = new LocalClock(zone);
        Span<char> written = stackalloc char[23];
        clock.Format(new DateTime(2026, 7, 1, 12, 0, 30, 5, DateTimeKind.Utc), written);
        Assert.Equal("2026-07-01 14:00:30.005", written.ToString());
        clock.Format(new DateTime(2026, 1, 1, 12, 0, 30, 999, DateTimeKind.Utc), written);
        Assert.Equal("2026-01-01 13:00:30.999", written.ToString());
    }
}
