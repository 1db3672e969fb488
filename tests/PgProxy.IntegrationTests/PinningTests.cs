using PgProxy.Core.Client;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;

namespace PgProxy.IntegrationTests;

/// <summary>
/// Transaction mode with session state: a client that leaves state on its server stays on that server (pinned) for as
/// long as the state exists, while other clients keep running on the other servers; it goes back to the pool when the
/// state is gone, and nothing of it reaches the next client. Pools are smaller than the clients.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PinningTests(PostgresFixture pg)
{
    private const string Tx = "pool_mode = \"transaction\"\ndefault_pool_size = 2";

    public static TheoryData<string, string, string, string> Kinds => new()
    {
        // create, use (must work on the same server), release, kind
        { "SELECT pg_advisory_lock(4711)", "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", "SELECT pg_advisory_unlock_all()", "advisory_lock" },
        { "CREATE TEMP TABLE pinned_t (x int); INSERT INTO pinned_t VALUES (1)", "SELECT count(*)::int FROM pinned_t", "DISCARD TEMP", "temp_table" },
        { "CREATE TEMP TABLE pinned_d (x int)", "SELECT 1 + count(*)::int FROM pinned_d", "DROP TABLE pinned_d", "temp_table" },
        { "BEGIN; DECLARE held CURSOR WITH HOLD FOR SELECT generate_series(1, 100) AS n; COMMIT", "FETCH 1 FROM held", "CLOSE held", "hold_cursor" },
        { "LISTEN pinned_channel", "SELECT count(*)::int FROM pg_listening_channels()", "UNLISTEN *", "listen" },
        { "DO $$ BEGIN PERFORM pg_advisory_lock(4712); END $$", "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", "SELECT pg_advisory_unlock(4712)", "advisory_lock" },
        { "SET ROLE bob", "SELECT (current_user = 'bob')::int", "RESET ROLE", "session_setting" },
    };

    [Theory(Timeout = 60_000)]
    [MemberData(nameof(Kinds))]
    public async Task SessionState_PinsTheClient_AcrossTransactions_AndItsEndUnpins(string create, string use, string release, string kind)
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await pg.ExecuteAsync($"GRANT {PostgresFixture.Bob} TO {PostgresFixture.Alice}", ct: ct);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx);
        await using NpgsqlConnection a = await proxy.OpenAsync(extra: "Application Name=a", ct: ct);
        await ExecAsync(a, create, ct);
        Pool pool = Assert.Single(proxy.Services.Pools.Pools);
        int pid = await ScalarAsync<int>(a, "SELECT pg_backend_pid()", ct);
        // The probe runs after the client's ReadyForQuery, in the background.
        await Await.UntilAsync(() => PinKindNames.Describe(Relay(proxy, a).Pinned) == kind, ct, seconds: 10);
        Assert.Equal(1, pool.PinnedClients);

        // Other clients keep running on the other server meanwhile.
        using var others = new CancellationTokenSource();
        Task traffic = Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            await using NpgsqlConnection other = await proxy.OpenAsync(ct: ct);
            int n = 0;
            while (!others.IsCancellationRequested || n < 5)
            {
                Assert.NotEqual(pid, await ScalarAsync<int>(other, "SELECT pg_backend_pid()", ct));
                n++;
            }
        }));

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(pid, await ScalarAsync<int>(a, "SELECT pg_backend_pid()", ct));
            Assert.True(await ScalarAsync<int>(a, use, ct) >= 1, $"the state is there in transaction {i}");
        }

        await others.CancelAsync();
        await traffic;
        Assert.Equal(kind, PinKindNames.Describe(Relay(proxy, a).Pinned));

        // The state goes: so does the pin, and the server goes back to the pool.
        await ExecAsync(a, release, ct);
        await Await.UntilAsync(() => Relay(proxy, a).Pinned == PinKinds.None && Relay(proxy, a).Backend is null, ct, seconds: 10);
        Assert.Equal(0, pool.PinnedClients);
        Assert.Equal(0L, await pg.ScalarAsync<long>(
            $"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state <> 'idle'", ct: ct));
        Assert.Contains(proxy.Log, l => l.Contains("pinned to backend", StringComparison.Ordinal) && l.EndsWith(kind, StringComparison.Ordinal));
        Assert.Contains(proxy.Log, l => l.Contains("unpinned: no session state left", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task SqlPrepare_SentInTheExtendedProtocol_Pins_UntilDeallocated()
    {
        // Npgsql sends every command as Parse/Bind/Execute: a PREPARE inside one is not mapped (simple queries are; see
        // PreparedStatementTests), so the statement it leaves pins the client, and its DEALLOCATE unpins it.
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx);
        await using NpgsqlConnection a = await proxy.OpenAsync(extra: "Application Name=extended", ct: ct);
        await ExecAsync(a, "PREPARE kept (int) AS SELECT $1 + 1", ct);
        await Await.UntilAsync(() => Relay(proxy, a).Pinned == PinKinds.PreparedStatement, ct, seconds: 10);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(2, await ScalarAsync<int>(a, "EXECUTE kept(1)", ct));
        }

        await ExecAsync(a, "DEALLOCATE kept", ct);
        await Await.UntilAsync(() => Relay(proxy, a).Backend is null, ct, seconds: 10);
        Assert.Equal(PinKinds.None, Relay(proxy, a).Pinned);
    }

    [Fact(Timeout = 60_000)]
    public async Task Listen_DeliversNotifications_WhileTheListenerIsIdle()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx);
        await using NpgsqlConnection listener = await proxy.OpenAsync(extra: "Application Name=listener", ct: ct);
        var received = new List<string>();
        listener.Notification += (_, e) =>
        {
            lock (received)
            {
                received.Add(e.Channel + ":" + e.Payload);
            }
        };
        await ExecAsync(listener, "LISTEN jobs", ct);

        await using NpgsqlConnection sender = await proxy.OpenAsync(ct: ct);
        for (int i = 1; i <= 3; i++)
        {
            await ExecAsync(sender, $"NOTIFY jobs, 'job {i}'", ct);
            // The listener sends nothing: the notification arrives while it is idle, as on a direct connection.
            Assert.True(await listener.WaitAsync(TimeSpan.FromSeconds(10), ct), $"notification {i} arrived");
        }

        lock (received)
        {
            Assert.Equal(["jobs:job 1", "jobs:job 2", "jobs:job 3"], received);
        }

        await ExecAsync(listener, "UNLISTEN *", ct);
        await Await.UntilAsync(() => Relay(proxy, listener).Backend is null, ct, seconds: 10);
    }

    [Fact(Timeout = 60_000)]
    public async Task TheLimit_RefusesTheStatement_With0A000_NamingTheSetting_AndNothingHangs()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx); // pool of 2: one client may be pinned
        await using NpgsqlConnection a = await proxy.OpenAsync(ct: ct);
        await ExecAsync(a, "SELECT pg_advisory_lock(1)", ct);

        await using NpgsqlConnection b = await proxy.OpenAsync(ct: ct);
        foreach (string sql in new[] { "CREATE TEMP TABLE over_limit (x int)", "SELECT 1; SELECT pg_advisory_lock(2)", "LISTEN over_limit" })
        {
            PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => ExecAsync(b, sql, ct));
            Assert.Equal("0A000", refused.SqlState);
            Assert.Contains("max_pinned_clients_per_pool", refused.MessageText, StringComparison.Ordinal);
        }

        // Extended protocol too (Npgsql prepares): refused before it runs.
        await using (var prepared = new NpgsqlCommand("SELECT pg_advisory_lock($1)", b) { Parameters = { new() { Value = 3L } } })
        {
            await prepared.PrepareAsync(ct).ContinueWith(_ => { }, ct);
            PostgresException refused = await Assert.ThrowsAsync<PostgresException>(() => prepared.ExecuteNonQueryAsync(ct));
            Assert.Equal("0A000", refused.SqlState);
        }

        Assert.Equal(1, await ScalarAsync<int>(b, "SELECT 1", ct));
        Assert.True(await ScalarAsync<bool>(b, "SELECT pg_try_advisory_xact_lock(2)", ct), "transaction-level locks pin nothing");
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 2", ct: ct));

        // max_pinned_clients_per_pool = 0: no client is ever pinned.
        await using TestProxy strict = await TestProxy.StartAsync(pg, Tx + "\nmax_pinned_clients_per_pool = 0");
        await using NpgsqlConnection c = await strict.OpenAsync(ct: ct);
        PostgresException never = await Assert.ThrowsAsync<PostgresException>(() => ExecAsync(c, "CREATE TEMP TABLE never (x int)", ct));
        Assert.Equal("0A000", never.SqlState);
    }

    [Fact(Timeout = 60_000)]
    public async Task PinTimeout_ClosesAClientPinnedTooLong_WithAFatalSayingWhy()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx + "\npin_timeout = \"1s\"");
        await using NpgsqlConnection a = await proxy.OpenAsync(ct: ct);
        await ExecAsync(a, "CREATE TEMP TABLE short_lived (x int)", ct);
        await Await.UntilAsync(() => proxy.LogText.Contains("logged out: PinTimeout", StringComparison.Ordinal), ct, seconds: 15);
        Exception gone = await Assert.ThrowsAnyAsync<Exception>(() => ExecAsync(a, "SELECT 1", ct));
        Assert.True(gone is PostgresException { SqlState: "53400" } || gone is NpgsqlException, gone.ToString());
        Assert.Equal(0, proxy.Services.Pools.Pools.Sum(p => p.PinnedClients));
    }

    [Fact(Timeout = 60_000)]
    public async Task APinnedClientThatLeaves_LeavesNothingToTheNextClient()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, Tx);
        int pid;
        await using (NpgsqlConnection a = await proxy.OpenAsync(ct: ct))
        {
            await ExecAsync(a, "CREATE TEMP TABLE leftover (x int); SELECT pg_advisory_lock(99); SET work_mem = '9MB'", ct);
            pid = await ScalarAsync<int>(a, "SELECT pg_backend_pid()", ct);
        }

        await Await.UntilAsync(() => proxy.Services.Pools.Pools.Sum(p => p.PinnedClients) == 0, ct, seconds: 10);
        // Both servers in turn: whichever the next client lands on holds nothing of the first.
        await using NpgsqlConnection b = await proxy.OpenAsync(ct: ct);
        await using NpgsqlConnection c = await proxy.OpenAsync(ct: ct);
        await using NpgsqlTransaction tb = await b.BeginTransactionAsync(ct);
        await using NpgsqlTransaction tc = await c.BeginTransactionAsync(ct);
        foreach (NpgsqlConnection conn in new[] { b, c })
        {
            Assert.Equal("true|4MB", await ScalarAsync<string>(conn,
                "SELECT (to_regclass('pg_temp.leftover') IS NULL)::text || '|' || current_setting('work_mem')", ct));
        }

        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 99", ct: ct));

        Assert.Contains(pid, new[] { await ScalarAsync<int>(b, "SELECT pg_backend_pid()", ct), await ScalarAsync<int>(c, "SELECT pg_backend_pid()", ct) });
    }

    /// <summary>The relay of the client whose application_name is <paramref name="conn"/>'s.</summary>
    private static MessageRelay Relay(TestProxy proxy, NpgsqlConnection conn) =>
        proxy.Services.CancelKeys.Targets.OfType<ClientSession>()
            .Single(s => s.Relay?.View?.Told.GetValueOrDefault("application_name") == conn.PostgresParameters["application_name"]).Relay!;

    private static async Task ExecAsync(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection conn, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }
}
