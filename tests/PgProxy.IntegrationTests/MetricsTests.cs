using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Pooling;

namespace PgProxy.IntegrationTests;

/// <summary>
/// The stats model past the totals: errors by SQLSTATE, refused logins, connect failures by reason and the latency
/// histograms, in /metrics (checked by promtool) and on the PgProxy meter; /readyz with readyz_requires_server; and
/// the OTLP export to a collector.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class MetricsTests(PostgresFixture pg)
{
    [Fact(Timeout = 90_000)]
    public async Task ErrorsRefusalsConnectFailuresAndHistograms_AreInMetrics_AndOnTheMeter()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        var recorded = new ConcurrentQueue<(string Name, double Value, string? Database)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ProxyMetrics.MeterName && instrument is Histogram<double>)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
        {
            string? database = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                database = tag.Key == "database" ? tag.Value as string : database;
            }

            recorded.Enqueue((instrument.Name, value, database));
        });
        listener.Start();

        int closed = Await.FreePort(); // nothing listens there
        string databases = $"[databases.{PostgresFixture.Database}]\nhost = \"{pg.Host}\"\nport = {pg.Port}\n" +
                           $"[databases.down]\nhost = \"127.0.0.1\"\nport = {closed}\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\nquery_wait_timeout = \"1s\"", databases: databases,
            http: "127.0.0.1:0");
        await using (NpgsqlConnection app = await proxy.OpenAsync(ct: ct))
        {
            for (int i = 0; i < 5; i++)
            {
                await using var one = new NpgsqlCommand("SELECT 1", app);
                await one.ExecuteScalarAsync(ct);
            }

            await using var bad = new NpgsqlCommand("SELECT 1/0", app);
            Assert.Equal("22012", (await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteScalarAsync(ct))).SqlState);
        }

        Assert.Equal("3D000", (await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(database: "nosuch", ct: ct))).SqlState);
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => proxy.OpenAsync(database: "down", ct: ct)); // its server refuses the TCP connect

        Pool pool = proxy.Services.Pools.Pools.Single(p => p.Key.Database == PostgresFixture.Database);
        await Await.UntilAsync(() => pool.Counts.Active == 0, ct);
        string text = await HttpProbe.Client.GetStringAsync($"http://{proxy.Host.OpsEndpoint}/metrics", ct);
        string labels = $"database=\"{PostgresFixture.Database}\",user=\"{PostgresFixture.Alice}\"";
        Assert.Equal(1, PromText.Value(text, $"pgproxy_pool_errors_total{{{labels},sqlstate=\"22012\"}}"));
        Assert.True(PromText.Value(text, "pgproxy_login_refusals_total{sqlstate=\"3D000\"}") >= 1, text);
        Assert.True(PromText.Value(text, $"pgproxy_pool_server_connect_failures_total{{database=\"down\",user=\"{PostgresFixture.Alice}\",reason=\"refused\"}}") >= 1, text);
        Assert.True(PromText.Value(text, $"pgproxy_pool_server_connects_total{{{labels}}}") >= 1, text);

        long transactions = pool.Stats.Read(proxy.Services.Time).Transactions;
        Assert.True(transactions >= 6, $"{transactions} transactions");
        Assert.Equal(transactions, PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_count{{{labels}}}"));
        Assert.Equal(transactions, PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_bucket{{{labels},le=\"+Inf\"}}"));
        Assert.True(PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_bucket{{{labels},le=\"30\"}}") >=
                    PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_bucket{{{labels},le=\"0.0001\"}}"));
        Assert.True(PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_sum{{{labels}}}") > 0);
        Assert.True(PromText.Value(text, $"pgproxy_pool_wait_duration_seconds_count{{{labels}}}") >= 6, text);
        Assert.True(PromText.Value(text, $"pgproxy_pool_query_duration_seconds_count{{{labels}}}") >= 6, text);
        await PromText.CheckAsync(text, ct);

        // The meter's histograms saw the same transactions (recorded while this listener listens).
        Assert.Equal(transactions, recorded.Count(r => r.Name == "pgproxy.pool.transaction.duration" && r.Database == PostgresFixture.Database));
        Assert.All(recorded, r => Assert.InRange(r.Value, 0, 60));
    }

    [Fact(Timeout = 180_000)]
    public async Task AfterAKnownPgbenchLoad_MetricsAndTheConsoleAgree()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Dictionary<string, string> Env(int port, string database) => new()
        {
            ["PGHOST"] = "127.0.0.1", ["PGPORT"] = port.ToString(CultureInfo.InvariantCulture), ["PGUSER"] = PostgresFixture.Alice,
            ["PGPASSWORD"] = PostgresFixture.AlicePassword, ["PGDATABASE"] = database, ["PGCONNECT_TIMEOUT"] = "20",
        };
        string pgbench = Path.Combine(pg.BinDir, "pgbench");
        ProcessRunner.Result init = await ProcessRunner.RunAsync(pgbench, ["-i", "-s", "1", "-q"], TimeSpan.FromSeconds(90), Env(pg.Port, PostgresFixture.Database), ct: ct);
        Assert.True(init.ExitCode == 0, init.All);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 4", http: "127.0.0.1:0",
            extra: $"[admin]\nstats_users = [\"{PostgresFixture.Alice}\"]\n");
        ProcessRunner.Result run = await ProcessRunner.RunAsync(pgbench, ["-S", "-n", "-c", "4", "-j", "4", "-t", "50"], TimeSpan.FromSeconds(120),
            Env(proxy.Port, PostgresFixture.Database), ct: ct);
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("number of transactions actually processed: 200/200", run.StdOut, StringComparison.Ordinal);

        ProcessRunner.Result show = await ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"), ["-X", "-A", "-t", "-c", "SHOW STATS_TOTALS"],
            TimeSpan.FromSeconds(30), Env(proxy.Port, "pgbouncer"), ct: ct);
        Assert.True(show.ExitCode == 0, show.All);
        string[] row = show.StdOut.Split('\n').Single(l => l.StartsWith(PostgresFixture.Database + "|", StringComparison.Ordinal)).Split('|');
        string text = await HttpProbe.Client.GetStringAsync($"http://{proxy.Host.OpsEndpoint}/metrics", ct);
        string labels = $"database=\"{PostgresFixture.Database}\",user=\"{PostgresFixture.Alice}\"";
        long transactions = long.Parse(row[2], CultureInfo.InvariantCulture);
        Assert.True(transactions >= 200, show.StdOut); // pgbench's 200, and its own queries at connect
        Assert.Equal(transactions, PromText.Value(text, $"pgproxy_pool_transactions_total{{{labels}}}"));
        Assert.Equal(long.Parse(row[3], CultureInfo.InvariantCulture), PromText.Value(text, $"pgproxy_pool_queries_total{{{labels}}}"));
        Assert.Equal(long.Parse(row[1], CultureInfo.InvariantCulture), PromText.Value(text, $"pgproxy_pool_server_assignments_total{{{labels}}}"));
        Assert.Equal(long.Parse(row[1], CultureInfo.InvariantCulture), PromText.Value(text, $"pgproxy_pool_wait_duration_seconds_count{{{labels}}}"));
        Assert.Equal(transactions, PromText.Value(text, $"pgproxy_pool_transaction_duration_seconds_count{{{labels}}}"));
        Assert.Equal(long.Parse(row[12], CultureInfo.InvariantCulture), PromText.Value(text, $"pgproxy_pool_logins_total{{{labels}}}"));
        await PromText.CheckAsync(text, ct);
    }

    [Fact(Timeout = 60_000)]
    public async Task Readyz_WithReadyzRequiresServer_FailsWhileNoServerIsReachable()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        int closed = Await.FreePort();
        await using TestProxy down = await TestProxy.StartAsync(pg, databases: $"[databases.{PostgresFixture.Database}]\nhost = \"127.0.0.1\"\nport = {closed}\n",
            http: "127.0.0.1:0", extra: "", httpExtra: "readyz_requires_server = true");
        using HttpResponseMessage notReady = await HttpProbe.Client.GetAsync($"http://{down.Host.OpsEndpoint}/readyz", ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains($"no server reachable: 127.0.0.1:{closed}", await notReady.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);

        await using TestProxy up = await TestProxy.StartAsync(pg, http: "127.0.0.1:0", httpExtra: "readyz_requires_server = true");
        using HttpResponseMessage ready = await HttpProbe.Client.GetAsync($"http://{up.Host.OpsEndpoint}/readyz", ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task Otlp_ExportsThePgProxyMeter_ToACollector()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        int port = Await.FreePort();
        using var collector = new HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var bodies = new ConcurrentQueue<(string Path, string ContentType, byte[] Body)>();
        Task serving = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await collector.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body, ct);
                bodies.Enqueue((context.Request.Url!.AbsolutePath, context.Request.ContentType ?? "", body.ToArray()));
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.Close(); // an empty ExportMetricsServiceResponse
            }
        }, ct);

        await using TestProxy proxy = await TestProxy.StartAsync(pg,
            extra: $"[otel]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"http/protobuf\"\ninterval = \"1s\"\n");
        await using (NpgsqlConnection app = await proxy.OpenAsync(ct: ct))
        await using (var one = new NpgsqlCommand("SELECT 1", app))
        {
            await one.ExecuteScalarAsync(ct);
        }

        await Await.UntilAsync(() => bodies.Any(b => Contains(b.Body, "pgproxy.pool.transactions") && Contains(b.Body, PostgresFixture.Database)), ct);
        (string path, string contentType, _) = bodies.First(b => Contains(b.Body, "pgproxy.pool.transactions"));
        Assert.Equal("/v1/metrics", path);
        Assert.Equal("application/x-protobuf", contentType);
        Assert.Contains(bodies, b => Contains(b.Body, "pgproxy.pool.transaction.duration"));
        collector.Stop();
        await serving.WaitAsync(TimeSpan.FromSeconds(10), ct);
    }

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}
