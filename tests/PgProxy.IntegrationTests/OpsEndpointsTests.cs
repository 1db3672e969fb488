using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PgProxy.Core.Pooling;
using PgProxy.Hosting;

namespace PgProxy.IntegrationTests;

/// <summary>The operations port: probes, /metrics (checked by promtool and against the pool's own counters) and the SIGTERM drain.</summary>
[Collection(PostgresCollection.Name)]
public sealed class OpsEndpointsTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task Probes_AnswerAsKubernetesExpects_AndUnknownPathsAndMethodsAreRefused()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, http: "127.0.0.1:0");
        string ops = OpsUrl(proxy);
        CancellationToken ct = TestContext.Current.CancellationToken;

        using HttpResponseMessage health = await HttpProbe.Client.GetAsync(ops + "/healthz", ct);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using HttpResponseMessage ready = await HttpProbe.Client.GetAsync(ops + "/readyz", ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using HttpResponseMessage missing = await HttpProbe.Client.GetAsync(ops + "/nope", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using HttpResponseMessage post = await HttpProbe.Client.PostAsync(ops + "/metrics", new StringContent(""), ct);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);

        // Shutdown begins: readiness fails at once, liveness stays, and clients are still served.
        proxy.Host.BeginDrain();
        using HttpResponseMessage draining = await HttpProbe.Client.GetAsync(ops + "/readyz", ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, draining.StatusCode);
        using HttpResponseMessage stillAlive = await HttpProbe.Client.GetAsync(ops + "/healthz", ct);
        Assert.Equal(HttpStatusCode.OK, stillAlive.StatusCode);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: ct);
        await using var cmd = new NpgsqlCommand("SELECT 7", conn);
        Assert.Equal(7, await cmd.ExecuteScalarAsync(ct));
    }

    [Fact(Timeout = 90_000)]
    public async Task Metrics_PassPromtool_AndAgreeWithThePool_WhileAClientWaits()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1\nquery_wait_timeout = \"30s\"",
            http: "127.0.0.1:0");
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using NpgsqlConnection holder = await proxy.OpenAsync(ct: ct);
        await using NpgsqlTransaction tx = await holder.BeginTransactionAsync(ct);
        await using (var hold = new NpgsqlCommand("SELECT 1", holder, tx))
        {
            await hold.ExecuteScalarAsync(ct); // the only server stays linked until the transaction ends
        }

        await using NpgsqlConnection waiter = await proxy.OpenAsync(ct: ct);
        await using var wait = new NpgsqlCommand("SELECT 2", waiter);
        Task<object?> waiting = wait.ExecuteScalarAsync(ct);
        Pool pool = proxy.Services.Pools.Pools.Single();
        await Await.UntilAsync(() => pool.Counts.Waiting == 1, ct);
        await Task.Delay(300, ct); // so that maxwait is clearly above zero

        string text = await HttpProbe.Client.GetStringAsync(OpsUrl(proxy) + "/metrics", ct);
        string labels = $"database=\"{PostgresFixture.Database}\",user=\"{PostgresFixture.Alice}\"";
        Assert.Equal(1, PromText.Value(text, $"pgproxy_pool_servers{{{labels},state=\"active\"}}"));
        Assert.Equal(0, PromText.Value(text, $"pgproxy_pool_servers{{{labels},state=\"idle\"}}"));
        Assert.Equal(1, PromText.Value(text, $"pgproxy_pool_clients{{{labels},state=\"active\"}}"));
        Assert.Equal(1, PromText.Value(text, $"pgproxy_pool_clients{{{labels},state=\"waiting\"}}"));
        Assert.Equal(1, PromText.Value(text, $"pgproxy_pool_size{{{labels}}}"));
        Assert.Equal(2, PromText.Value(text, "pgproxy_client_connections"));
        Assert.InRange(PromText.Value(text, $"pgproxy_pool_maxwait_seconds{{{labels}}}"), 0.2, 30);
        Assert.True(PromText.Value(text, "process_cpu_seconds_total") > 0);

        await PromText.CheckAsync(text, ct); // valid Prometheus text

        await tx.CommitAsync(ct);
        Assert.Equal(2, await waiting);
        await Await.UntilAsync(() => pool.Counts.Waiting == 0, ct);
        string after = await HttpProbe.Client.GetStringAsync(OpsUrl(proxy) + "/metrics", ct);
        Assert.Equal(0, PromText.Value(after, $"pgproxy_pool_clients{{{labels},state=\"waiting\"}}"));
        Assert.Equal(0, PromText.Value(after, $"pgproxy_pool_maxwait_seconds{{{labels}}}"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Totals_CountTransactionsAndQueries_AndMetricsAgreeWithShowStatsTotals()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"",
            extra: $"[admin]\nstats_users = [\"{PostgresFixture.Alice}\"]\n", http: "127.0.0.1:0");
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: ct); // Npgsql's own start-up queries count too: take deltas
        await using (var warm = new NpgsqlCommand("SELECT 1", conn))
        {
            await warm.ExecuteScalarAsync(ct);
        }

        Pool pool = proxy.Services.Pools.Pools.Single();
        PoolTotals before = pool.Stats.Read(proxy.Services.Time);
        for (int i = 0; i < 20; i++)
        {
            await using var one = new NpgsqlCommand("SELECT 1", conn);
            await one.ExecuteScalarAsync(ct);
        }

        await using (var batch = new NpgsqlCommand("BEGIN; SELECT pg_sleep(0.05); COMMIT", conn))
        {
            await batch.ExecuteNonQueryAsync(ct); // one transaction (BEGIN ... COMMIT in one batch) of at least 50 ms
        }

        PoolTotals after = pool.Stats.Read(proxy.Services.Time);
        Assert.Equal(21, after.Transactions - before.Transactions);
        Assert.Equal(21, after.Queries - before.Queries); // each batch ends in one ReadyForQuery
        Assert.True(after.Received > before.Received && after.Sent > before.Sent, $"{before} -> {after}");
        Assert.True(after.TransactionMicros - before.TransactionMicros >= 50_000, $"{before} -> {after}");
        Assert.True(after.QueryMicros - before.QueryMicros >= 50_000, $"{before} -> {after}");
        Assert.Equal(21, after.ServerAssignments - before.ServerAssignments); // transaction mode: a server per transaction

        // The console and /metrics show the same totals.
        string text = await HttpProbe.Client.GetStringAsync(OpsUrl(proxy) + "/metrics", ct);
        string labels = $"database=\"{PostgresFixture.Database}\",user=\"{PostgresFixture.Alice}\"";
        Assert.Equal(after.Transactions, PromText.Value(text, $"pgproxy_pool_transactions_total{{{labels}}}"));
        Assert.Equal(after.Queries, PromText.Value(text, $"pgproxy_pool_queries_total{{{labels}}}"));
        Assert.Equal(after.Received, PromText.Value(text, $"pgproxy_pool_received_bytes_total{{{labels}}}"));
        Assert.Equal(after.TransactionMicros / 1e6, PromText.Value(text, $"pgproxy_pool_transaction_time_seconds_total{{{labels}}}"), 6);

        var env = new Dictionary<string, string>
        {
            ["PGHOST"] = "127.0.0.1", ["PGPORT"] = proxy.Port.ToString(CultureInfo.InvariantCulture), ["PGUSER"] = PostgresFixture.Alice,
            ["PGPASSWORD"] = PostgresFixture.AlicePassword, ["PGDATABASE"] = "pgbouncer",
        };
        ProcessRunner.Result show = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"), ["-X", "-A", "-c", "SHOW STATS_TOTALS"],
            TimeSpan.FromSeconds(30), env, ct: ct);
        Assert.True(show.ExitCode == 0, show.All);
        string[] lines = show.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("database|server_assignment_count|xact_count|query_count|bytes_received|bytes_sent|xact_time|query_time|wait_time|" +
                     "client_parse_count|server_parse_count|bind_count|client_login_count", lines[0]);
        string[] row = lines.Single(l => l.StartsWith(PostgresFixture.Database + "|", StringComparison.Ordinal)).Split('|');
        Assert.Equal(after.Transactions.ToString(CultureInfo.InvariantCulture), row[2]);
        Assert.Equal(after.Queries.ToString(CultureInfo.InvariantCulture), row[3]);
        Assert.Equal(after.Received.ToString(CultureInfo.InvariantCulture), row[4]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Drain_SessionMode_ClosesIdleClientsNow_AndTheOneInATransactionAfterItsCommit()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"session\"");
        await using NpgsqlConnection idle = await proxy.OpenAsync(ct: ct);
        await using (var warm = new NpgsqlCommand("SELECT 1", idle))
        {
            await warm.ExecuteScalarAsync(ct); // linked to a server for the whole session, between transactions now
        }

        await using NpgsqlConnection busy = await proxy.OpenAsync(ct: ct);
        await using NpgsqlTransaction tx = await busy.BeginTransactionAsync(ct);
        await using (var inTx = new NpgsqlCommand("SELECT 2", busy, tx))
        {
            await inTx.ExecuteScalarAsync(ct);
        }

        Task<bool> draining = proxy.Host.DrainAsync(TimeSpan.FromSeconds(20), ct);
        await Await.UntilAsync(() => proxy.Services.ClientCount == 1, ct); // the idle one is gone, the one in a transaction stays
        Assert.False(draining.IsCompleted);
        await using (var stillServed = new NpgsqlCommand("SELECT 3", busy, tx))
        {
            Assert.Equal(3, await stillServed.ExecuteScalarAsync(ct));
        }

        await tx.CommitAsync(ct);
        Assert.True(await draining.WaitAsync(TimeSpan.FromSeconds(10), ct));
        Assert.Equal(0, proxy.Services.ClientCount);
        await using var after = new NpgsqlCommand("SELECT 4", idle);
        Exception closed = await Assert.ThrowsAnyAsync<Exception>(() => after.ExecuteScalarAsync(ct));
        Assert.Equal("57P01", (closed as PostgresException ?? closed.InnerException as PostgresException)?.SqlState);
        Assert.Contains(proxy.Log, l => l.Contains("Shutdown", StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task OpsPortInUse_StartFails_NamingTheSetting()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen(1);
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        IOException ex = await Assert.ThrowsAsync<IOException>(() => TestProxy.StartAsync(pg, http: $"127.0.0.1:{port}")
            .WaitAsync(TestContext.Current.CancellationToken));
        Assert.Contains("[http] listen", ex.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 90_000)]
    public async Task SigTerm_FailsReadinessAtOnce_LetsTheRunningTransactionCommit_ClosesTheRest_AndExitsZero()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string dir = Directory.CreateTempSubdirectory("pgproxy-sigterm").FullName;
        int proxyPort = Await.FreePort();
        int opsPort = Await.FreePort();
        await File.WriteAllTextAsync(Path.Combine(dir, "proxy.toml"), $"""
            [proxy]
            listen = "127.0.0.1:{proxyPort}"
            pool_mode = "transaction"
            shutdown_delay = "1s"
            shutdown_timeout = "20s"
            [auth]
            type = "trust"
            [http]
            listen = "127.0.0.1:{opsPort}"
            [databases.{PostgresFixture.Database}]
            host = "{pg.Host}"
            port = {pg.Port}
            user = "{PostgresFixture.Alice}"
            password = "{PostgresFixture.AlicePassword}"
            """, ct);
        string dll = typeof(ProxyHost).Assembly.Location;
        using var process = Process.Start(new ProcessStartInfo("dotnet", ["exec", dll, "run", "--config", Path.Combine(dir, "proxy.toml")])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        Task<string> stderr = process.StandardError.ReadToEndAsync(ct);
        string cs = $"Host=127.0.0.1;Port={proxyPort};Username={PostgresFixture.Alice};Password=x;Database={PostgresFixture.Database};Pooling=false;Timeout=10";
        try
        {
            string ops = $"http://127.0.0.1:{opsPort}";
            await Await.UntilAsync(async () => (await HttpProbe.StatusAsync(ops + "/readyz", ct)) == HttpStatusCode.OK, ct);
            await using var idle = new NpgsqlConnection(cs);
            await idle.OpenAsync(ct);
            await using var busy = new NpgsqlConnection(cs);
            await busy.OpenAsync(ct);
            await using (var create = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS drain_commits (id text)", busy))
            {
                await create.ExecuteNonQueryAsync(ct);
            }

            string mark = Guid.NewGuid().ToString("N");
            NpgsqlTransaction tx = await busy.BeginTransactionAsync(ct);
            await using (var insert = new NpgsqlCommand($"INSERT INTO drain_commits VALUES ('{mark}')", busy, tx))
            {
                await insert.ExecuteNonQueryAsync(ct);
            }

            // The transaction is in a 2.5 s statement when SIGTERM comes; it runs past shutdown_delay.
            var sleep = new NpgsqlCommand("SELECT pg_sleep(2.5)", busy, tx);
            Task sleeping = sleep.ExecuteNonQueryAsync(ct);
            await Task.Delay(200, ct);
            ProcessRunner.Result term = await ProcessRunner.RunAsync("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), ct: ct);
            Assert.Equal(0, term.ExitCode);
            var sw = Stopwatch.StartNew();
            await Await.UntilAsync(async () => (await HttpProbe.StatusAsync(ops + "/readyz", ct)) == HttpStatusCode.ServiceUnavailable, ct);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(0.9), $"readiness took {sw.Elapsed} to fail");

            // Within shutdown_delay a new client is still served: the pod may still get traffic.
            await using (var early = new NpgsqlConnection(cs))
            {
                await early.OpenAsync(ct);
                await using var cmd = new NpgsqlCommand("SELECT 3", early);
                Assert.Equal(3, await cmd.ExecuteScalarAsync(ct));
            }

            // After it, new logins are refused with 57P01 and the idle client has been closed with it.
            string? refusedWith = null;
            await Await.UntilAsync(async () =>
            {
                await using var late = new NpgsqlConnection(cs);
                try
                {
                    await late.OpenAsync(ct);
                    return false; // still within shutdown_delay
                }
                catch (PostgresException ex)
                {
                    refusedWith = ex.SqlState;
                    return true;
                }
            }, ct);
            Assert.Equal("57P01", refusedWith);
            Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(0.8), $"logins refused after {sw.Elapsed}, before shutdown_delay");

            await using (var idleQuery = new NpgsqlCommand("SELECT 1", idle))
            {
                Exception closed = await Assert.ThrowsAnyAsync<Exception>(() => idleQuery.ExecuteScalarAsync(ct));
                Assert.Equal("57P01", (closed as PostgresException ?? closed.InnerException as PostgresException)?.SqlState);
            }

            // The running transaction finishes and commits; its client is closed after it.
            await sleeping;
            await tx.CommitAsync(ct);
            await process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}: {await stderr}");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(15), $"exited after {sw.Elapsed}");
            await using NpgsqlConnection direct = new(pg.AdminConnectionString(PostgresFixture.Database));
            await direct.OpenAsync(ct);
            await using var check = new NpgsqlCommand($"SELECT count(*) FROM drain_commits WHERE id = '{mark}'", direct);
            Assert.Equal(1L, await check.ExecuteScalarAsync(ct));
            string log = await stderr;
            Assert.Contains("shutdown_delay", log, StringComparison.Ordinal);
            Assert.Contains("Draining", log, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private static string OpsUrl(TestProxy proxy) => $"http://127.0.0.1:{proxy.Host.OpsEndpoint!.Port}";
}
