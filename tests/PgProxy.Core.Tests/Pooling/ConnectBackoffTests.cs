using System.Diagnostics;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;

namespace PgProxy.Core.Tests.Pooling;

public sealed class ConnectBackoffTests
{
    private static readonly TimeSpan LoginRetry = TimeSpan.FromSeconds(15);

    private static long At(double ms) => (long)(ms / 1000 * Stopwatch.Frequency);

    private static BackendUnavailableException Down() => new("08006", "could not connect to server: Connection refused");

    [Fact]
    public void PassingFailures_Retry100msDoublingTo500ms()
    {
        var backoff = new ConnectBackoff();
        double now = 0;
        var waits = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            backoff.Failed(i == 2 ? new BackendUnavailableException("57P03", "the database system is starting up") : Down(), At(now), Stopwatch.Frequency, LoginRetry);
            double wait = 0;
            while (backoff.IsWaiting(At(now + wait)))
            {
                wait += 10;
            }

            waits.Add(wait);
            now += wait;
        }

        Assert.Equal([100, 200, 400, 500, 500, 500], waits);
        Assert.Null(backoff.Refusal(At(now)));
        backoff.Succeeded();
        Assert.False(backoff.IsWaiting(At(now)));
        backoff.Failed(Down(), At(now), Stopwatch.Frequency, LoginRetry);
        Assert.True(backoff.IsWaiting(At(now + 90)));
        Assert.False(backoff.IsWaiting(At(now + 100))); // a success starts the backoff again
    }

    [Fact]
    public void LoginRefused_WaitsServerLoginRetry_AndIsReported()
    {
        var backoff = new ConnectBackoff();
        backoff.Failed(new BackendUnavailableException("28P01", "password authentication failed"), 0, Stopwatch.Frequency, LoginRetry);
        Assert.True(backoff.IsWaiting(At(14_900)));
        Assert.Equal("28P01", backoff.Refusal(At(14_900))?.SqlState);
        Assert.False(backoff.IsWaiting(At(15_000)));
        Assert.Null(backoff.Refusal(At(15_000)));
    }

    [Fact]
    public void ShortServerLoginRetry_CapsPassingRetries()
    {
        var backoff = new ConnectBackoff();
        backoff.Failed(Down(), 0, Stopwatch.Frequency, TimeSpan.FromMilliseconds(50));
        Assert.False(backoff.IsWaiting(At(50)));
    }

    [Theory]
    [InlineData("28P01", true)]
    [InlineData("28000", true)]
    [InlineData("3D000", true)]
    [InlineData("42501", true)]
    [InlineData("57P03", false)]
    [InlineData("53300", false)]
    [InlineData("08006", false)]
    [InlineData("57P01", false)]
    public void WhatCountsAsRefused(string sqlState, bool refused) => Assert.Equal(refused, new BackendUnavailableException(sqlState, "x").IsLoginRefused);
}
