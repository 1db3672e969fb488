using PgProxy.Core.Backend;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;

namespace PgProxy.Core.Tests.Pooling;

public sealed class PoolTests
{
    private static readonly PoolSettings Small = new() { PoolSize = 2, Proxy = new() { QueryWaitTimeout = TimeSpan.FromSeconds(5) } };

    private static void AssertInvariant(Pool pool, int expectedTotal)
    {
        PoolCounts c = pool.Counts;
        Assert.Equal(expectedTotal, c.Active + c.Idle + c.Used + c.Connecting);
        Assert.True(c.Total <= pool.Settings.PoolSize + pool.Settings.ReservePoolSize);
    }

    [Fact(Timeout = 10_000)]
    public async Task Acquire_OpensUpToPoolSize_ThenReusesIdle_Lifo()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small);
        BackendConnection a = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection b = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        Assert.Equal(2, fakes.Opened);
        AssertInvariant(pool, 2);
        await pool.ReleaseAsync(a, reusable: true);
        await pool.ReleaseAsync(b, reusable: true);
        Assert.Equal(2, pool.Counts.Idle);

        ValueTask<BackendConnection> next = pool.AcquireAsync(TestContext.Current.CancellationToken);
        Assert.True(next.IsCompletedSuccessfully, "an idle backend is handed out synchronously");
        Assert.Same(b, await next);
        Assert.Equal(BackendState.Active, b.State);
        Assert.Equal(2, fakes.Opened);
        AssertInvariant(pool, 2);
    }

    [Fact(Timeout = 10_000)]
    public async Task RoundRobin_ReusesFifo()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { Proxy = Small.Proxy with { ServerRoundRobin = true } });
        BackendConnection a = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection b = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        await pool.ReleaseAsync(a, reusable: true);
        await pool.ReleaseAsync(b, reusable: true);
        Assert.Same(a, await pool.AcquireAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 10_000)]
    public async Task Acquire_OnASocketThread_PrefersARecentIdleBackendServedByThatThread()
    {
        var fakes = new FakeBackends { ServingThreads = [0, 1, 0, 1, 1, 1, 1, 1] };
        Pool pool = fakes.CreatePool(Small with { PoolSize = 8 });
        var opened = new List<BackendConnection>();
        for (int i = 0; i < 8; i++)
        {
            opened.Add(await pool.AcquireAsync(TestContext.Current.CancellationToken));
        }

        Assert.Equal([0, 1, 0, 1, 1, 1, 1, 1], opened.Select(b => b.ServingThreadIndex));
        foreach (BackendConnection b in opened.Take(4))
        {
            await pool.ReleaseAsync(b, reusable: true); // idle, oldest first: 0 1 0 1
        }

        // On socket thread 0 the most recent idle backend served there (the third) beats the last one released (on 1).
        Assert.Same(opened[2], TakeOnThread(pool, 0));
        // Off the socket threads: the most recent (LIFO), as before.
        Assert.Same(opened[3], TakeOnThread(pool, -1));
        // On thread 1, one of its own is the most recent: LIFO and affinity agree.
        Assert.Same(opened[1], TakeOnThread(pool, 1));
        await pool.ReleaseAsync(opened[1], reusable: true);
        await pool.ReleaseAsync(opened[2], reusable: true);
        await pool.ReleaseAsync(opened[3], reusable: true);

        // Idle now, oldest first, by thread: 0 1 0 1 1 1 1 1. Four backends of thread 1 went idle after the last one of
        // thread 0: the pool looks no further back than that, and takes the most recent.
        foreach (BackendConnection b in opened.Skip(4))
        {
            await pool.ReleaseAsync(b, reusable: true);
        }

        Assert.Same(opened[7], TakeOnThread(pool, 0));
        AssertInvariant(pool, 8);
    }

    /// <summary>Takes an idle backend on a thread that is socket thread <paramref name="thread"/> (-1: an ordinary thread).</summary>
    private static BackendConnection? TakeOnThread(Pool pool, int thread)
    {
        BackendConnection? taken = null;
        var t = new Thread(() =>
        {
            if (thread >= 0)
            {
                ServingThread.Enter(thread);
            }

            pool.TryAcquireIdle(out taken);
        });
        t.Start();
        t.Join();
        return taken;
    }

    [Fact(Timeout = 10_000)]
    public async Task Waiters_AreServedInArrivalOrder_ByHandOff()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 1 });
        BackendConnection only = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        var order = new List<int>();
        var waiters = new List<Task>();
        for (int i = 0; i < 5; i++)
        {
            int id = i;
            waiters.Add(Task.Run(async () =>
            {
                BackendConnection b = await pool.AcquireAsync(default);
                lock (order)
                {
                    order.Add(id);
                }

                await Task.Yield();
                await pool.ReleaseAsync(b, reusable: true);
            }, TestContext.Current.CancellationToken));
            await WaitUntilAsync(() => pool.Counts.Waiting == id + 1); // arrival order is known
        }

        await pool.ReleaseAsync(only, reusable: true);
        await Task.WhenAll(waiters);
        Assert.Equal([0, 1, 2, 3, 4], order);
        Assert.Equal(1, fakes.Opened);
        Assert.Equal(0, pool.Counts.Waiting);
        AssertInvariant(pool, 1);
    }

    [Fact(Timeout = 10_000)]
    public async Task WaitTimeout_Throws53300_NamingTheTimeout_AndLeavesNoWaiter()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 1, Proxy = Small.Proxy with { QueryWaitTimeout = TimeSpan.FromSeconds(2) } });
        await pool.AcquireAsync(TestContext.Current.CancellationToken);
        Task<BackendConnection> waiting = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        fakes.Advance(TimeSpan.FromMilliseconds(1900));
        Assert.False(waiting.IsCompleted); // not before query_wait_timeout
        fakes.Advance(TimeSpan.FromMilliseconds(100));
        BackendUnavailableException ex = await Assert.ThrowsAsync<BackendUnavailableException>(() => waiting);
        Assert.Equal("53300", ex.SqlState);
        Assert.Contains("query_wait_timeout", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, pool.Counts.Waiting);
        AssertInvariant(pool, 1);
    }

    [Fact(Timeout = 10_000)]
    public async Task CanceledWaiter_ReleasesItsPlace()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 1 });
        BackendConnection held = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        using var cts = new CancellationTokenSource();
        Task<BackendConnection> waiting = pool.AcquireAsync(cts.Token).AsTask();
        Assert.Equal(1, pool.Counts.Waiting);
        await cts.CancelAsync();
        fakes.Advance(TimeSpan.FromMilliseconds(100)); // the clock notices the client went
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, pool.Counts.Waiting);
        await pool.ReleaseAsync(held, reusable: true);
        Assert.Equal(1, pool.Counts.Idle);
    }

    [Fact(Timeout = 10_000)]
    public async Task ClosedBackend_FreesItsSlot_ForTheNextWaiter()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 1 });
        BackendConnection a = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        Task<BackendConnection> waiting = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        Assert.Equal(1, pool.Counts.Waiting);
        await pool.ReleaseAsync(a, reusable: false);
        BackendConnection b = await waiting;
        Assert.NotSame(a, b);
        Assert.True(a.IsClosed);
        Assert.Equal(2, fakes.Opened);
        AssertInvariant(pool, 1);
    }

    [Fact(Timeout = 10_000)]
    public async Task ServerDown_ClientsWait_RetriesBackOff_ThenTheFirstRetryServesThem()
    {
        var fakes = new FakeBackends { Fail = true };
        Pool pool = fakes.CreatePool(Small with { PoolSize = 2, Proxy = Small.Proxy with { ServerLoginRetry = TimeSpan.FromSeconds(15) } });
        // A client whose connect fails because the server is down waits in line instead of failing.
        Task<BackendConnection> first = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        await WaitUntilAsync(() => fakes.Attempts == 1 && pool.Counts.Waiting == 1);
        Task<BackendConnection> second = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        Assert.Equal(2, pool.Counts.Waiting);
        Assert.NotNull(pool.RecentConnectFailure);
        Assert.Null(pool.LoginRefusal); // a down server is waited for, not reported to new logins

        // Retries at 100, then 200, then 400 ms, then every 500 ms: not one per server_login_retry.
        foreach ((int ms, int attempts) in new[] { (90, 1), (10, 2), (190, 2), (10, 3), (390, 3), (10, 4), (490, 4), (10, 5), (500, 6) })
        {
            fakes.Advance(TimeSpan.FromMilliseconds(ms));
            await WaitUntilAsync(() => fakes.Attempts == attempts);
        }

        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);
        AssertInvariant(pool, 0);

        // The server is back: the next retry serves the first waiter, and the others dial at once.
        fakes.Fail = false;
        fakes.Advance(TimeSpan.FromMilliseconds(500));
        BackendConnection a = await first;
        BackendConnection b = await second;
        Assert.NotSame(a, b);
        Assert.Null(pool.RecentConnectFailure);
        AssertInvariant(pool, 2);
    }

    [Fact(Timeout = 10_000)]
    public async Task LoginRefusedByTheServer_FailsFast_AndNewLoginsAreToldWhy()
    {
        var fakes = new FakeBackends { Fail = true, FailWith = SqlState.InvalidPassword };
        Pool pool = fakes.CreatePool(Small with
        {
            PoolSize = 1,
            Proxy = Small.Proxy with { ServerLoginRetry = TimeSpan.FromSeconds(15), QueryWaitTimeout = TimeSpan.FromSeconds(60) },
        });
        BackendUnavailableException ex = await Assert.ThrowsAsync<BackendUnavailableException>(() => pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.Equal("28P01", ex.SqlState);
        Assert.Equal("28P01", pool.LoginRefusal?.SqlState);
        // Within server_login_retry a client queues, and the pool does not dial again.
        Task<BackendConnection> queued = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        fakes.Advance(TimeSpan.FromSeconds(14.9));
        Assert.Equal(1, fakes.Attempts);
        Assert.False(queued.IsCompleted);
        // After it, one attempt: refused again, so the waiter gets the server's error at once.
        fakes.Advance(TimeSpan.FromMilliseconds(100));
        BackendUnavailableException again = await Assert.ThrowsAsync<BackendUnavailableException>(() => queued);
        Assert.Equal("28P01", again.SqlState);
        Assert.Equal(2, fakes.Attempts);
        AssertInvariant(pool, 0);
    }

    [Fact(Timeout = 10_000)]
    public async Task Reserve_IsUsedOnlyAfterReserveTimeout()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 1, ReservePoolSize = 1, Proxy = Small.Proxy with { ReservePoolTimeout = TimeSpan.FromSeconds(1) } });
        await pool.AcquireAsync(TestContext.Current.CancellationToken);
        Task<BackendConnection> waiting = pool.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        fakes.Advance(TimeSpan.FromMilliseconds(900));
        Assert.False(waiting.IsCompleted);
        fakes.Advance(TimeSpan.FromMilliseconds(100));
        await waiting;
        Assert.Equal(2, pool.Counts.Active);
        AssertInvariant(pool, 2);
    }

    [Fact(Timeout = 10_000)]
    public async Task SharedLimiter_CapsAcrossPools()
    {
        var fakes = new FakeBackends();
        var limiter = new ConnectionLimiter(1);
        Pool p1 = fakes.CreatePool(Small, limiter);
        Pool p2 = fakes.CreatePool(Small with { Proxy = Small.Proxy with { QueryWaitTimeout = TimeSpan.FromMilliseconds(100) } }, limiter);
        await p1.AcquireAsync(TestContext.Current.CancellationToken);
        Task<BackendConnection> blocked = p2.AcquireAsync(TestContext.Current.CancellationToken).AsTask();
        fakes.Advance(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAsync<BackendUnavailableException>(() => blocked);
        Assert.Equal(1, limiter.Count);
    }

    [Fact(Timeout = 10_000)]
    public async Task MinPoolSize_IsFilledAhead()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 3, MinPoolSize = 2 });
        await pool.EnsureMinimumAsync(TestContext.Current.CancellationToken);
        Assert.Equal(2, pool.Counts.Idle);
        await pool.EnsureMinimumAsync(TestContext.Current.CancellationToken);
        Assert.Equal(2, fakes.Opened);
    }

    [Fact(Timeout = 10_000)]
    public async Task ManyConcurrentClients_NeverExceedPoolSize_AndAllComplete()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 3 });
        int maxActive = 0;
        await Task.WhenAll(Enumerable.Range(0, 200).Select(async _ =>
        {
            BackendConnection b = await pool.AcquireAsync(TestContext.Current.CancellationToken);
            int active = pool.Counts.Active;
            InterlockedMax(ref maxActive, active);
            await Task.Yield();
            await pool.ReleaseAsync(b, reusable: true);
        }));
        Assert.InRange(maxActive, 1, 3);
        Assert.InRange(fakes.Opened, 1, 3);
        AssertInvariant(pool, fakes.Opened);
        Assert.Equal(0, pool.Counts.Active);
    }

    [Fact(Timeout = 10_000)]
    public async Task Pause_QueuesAcquires_ClosesReleasedServers_AndResumeServesTheQueue()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small);
        BackendConnection held = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection spare = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        await pool.ReleaseAsync(spare, reusable: true);

        pool.Pause();
        Assert.True(spare.IsClosed, "an idle server closes at PAUSE");
        ValueTask<BackendConnection> waiting = pool.AcquireAsync(TestContext.Current.CancellationToken);
        Assert.False(waiting.IsCompleted, "a paused pool hands out nothing");
        await pool.ReleaseAsync(held, reusable: true);
        Assert.True(held.IsClosed, "a server given back while paused closes");
        Assert.Equal(0, pool.Counts.Total);
        Assert.False(waiting.IsCompleted);

        pool.Resume();
        BackendConnection after = await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        Assert.Equal(BackendState.Active, after.State);
        Assert.Equal(3, fakes.Opened);
    }

    [Fact(Timeout = 10_000)]
    public async Task Reconnect_ClosesIdleAtOnce_AndTheLinkedOneWhenGivenBack()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small);
        BackendConnection linked = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection idle = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        await pool.ReleaseAsync(idle, reusable: true);

        pool.Reconnect();
        Assert.True(idle.IsClosed);
        Assert.True(pool.CloseNeeded(linked));
        Assert.Equal(1, pool.CloseNeededCount);
        BackendConnection fresh = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        Assert.False(pool.CloseNeeded(fresh));
        await pool.ReleaseAsync(linked, reusable: true);
        Assert.True(linked.IsClosed, "a server from before RECONNECT closes when given back");
        Assert.Equal(0, pool.CloseNeededCount);
        Assert.Equal([fresh], pool.Backends);
    }

    [Fact(Timeout = 10_000)]
    public async Task Update_ShrinkClosesSurplusAsItComesBack_GrowServesWaiters_AndANewDestinationReconnects()
    {
        var fakes = new FakeBackends();
        Pool pool = fakes.CreatePool(Small with { PoolSize = 3 });
        BackendConnection a = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection b = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        BackendConnection c = await pool.AcquireAsync(TestContext.Current.CancellationToken);
        await pool.ReleaseAsync(c, reusable: true);

        pool.Update(pool.Target, pool.Settings with { PoolSize = 1 }, destinationChanged: false);
        Assert.True(c.IsClosed, "an idle server over the new size closes at once");
        await pool.ReleaseAsync(b, reusable: true);
        Assert.True(b.IsClosed, "a linked one over the new size closes when given back");
        ValueTask<BackendConnection> waiting = pool.AcquireAsync(TestContext.Current.CancellationToken);
        Assert.False(waiting.IsCompleted, "one server, and it is taken");

        pool.Update(pool.Target, pool.Settings with { PoolSize = 2 }, destinationChanged: false);
        BackendConnection d = await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        Assert.Equal(2, pool.Counts.Active);

        pool.Update(pool.Target with { Port = 1 }, pool.Settings, destinationChanged: true);
        Assert.Equal(1, pool.Target.Port);
        Assert.True(pool.CloseNeeded(a) && pool.CloseNeeded(d));
        await pool.ReleaseAsync(a, reusable: true);
        Assert.True(a.IsClosed);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), "condition not reached");
            await Task.Delay(5);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}

public sealed class PoolTotalsTests
{
    [Fact]
    public void Averages_ArePerSecondForCounts_AndPerEventForTimes_AsPgBouncerComputesThem()
    {
        var older = new PoolTotals(10, 10, 20, 1_000, 2_000, 5_000, 4_000, 100, 1, 1, 10, 2);
        var now = new PoolTotals(30, 50, 100, 5_000, 6_000, 45_000, 20_000, 500, 3, 2, 50, 4);
        PoolTotals avg = now.AveragesSince(older, 2_000_000); // two seconds apart
        Assert.Equal(10, avg.ServerAssignments); // 20 in 2 s
        Assert.Equal(20, avg.Transactions);
        Assert.Equal(40, avg.Queries);
        Assert.Equal(2_000, avg.Received);
        Assert.Equal(2_000, avg.Sent);
        Assert.Equal(1_000, avg.TransactionMicros); // 40 000 us over 40 transactions
        Assert.Equal(200, avg.QueryMicros); // 16 000 us over 80 queries
        Assert.Equal(20, avg.WaitMicros); // 400 us over 20 assignments
        Assert.Equal(1, avg.ClientParses);
        Assert.Equal(20, avg.Binds);
        Assert.Equal(1, avg.Logins);
        Assert.Equal(default, now.AveragesSince(older, 0));
        Assert.Equal(0, now.AveragesSince(now, 1_000_000).TransactionMicros); // no transactions: no time per one
    }

    [Fact]
    public void ViewAtLogin_SameStartupSettings_ShareOneView_WithItsWelcomeBytes()
    {
        Pool pool = new FakeBackends().CreatePool(new PoolSettings { PoolSize = 1 });
        pool.WelcomeParameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["TimeZone"] = "UTC", ["application_name"] = "", ["server_version"] = "15.0",
        };
        PgProxy.Core.Client.ClientSettings a = pool.ViewAtLogin([new("application_name", "x")]);
        PgProxy.Core.Client.ClientSettings b = pool.ViewAtLogin([new("application_name", "x")]);
        PgProxy.Core.Client.ClientSettings c = pool.ViewAtLogin([new("application_name", "y")]);
        PgProxy.Core.Client.ClientSettings none = pool.ViewAtLogin([]);
        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal("y", c.Told["application_name"]);
        Assert.Equal("", none.Told["application_name"]);

        var expected = new Protocol.Framing.PgMessageBuilder();
        foreach (KeyValuePair<string, string> p in a.Told)
        {
            Protocol.Backend.BackendMessages.ParameterStatus(expected, p.Key, p.Value);
        }

        Assert.Equal(expected.Written.ToArray(), a.WelcomeMessages.ToArray());

        // A new welcome (another server) is not answered from views built on the old one.
        pool.WelcomeParameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["TimeZone"] = "Asia/Tokyo" };
        Assert.Equal("Asia/Tokyo", pool.ViewAtLogin([new("application_name", "x")]).Told["TimeZone"]);
    }
}
