using System.Diagnostics.Metrics;
using PgProxy.Core.Client;
using PgProxy.Core.Pooling;

namespace PgProxy.Core.Diagnostics;

/// <summary>
/// What the pools and the listener hold now, read from the same counters SHOW POOLS reads (each pool's state counts,
/// kept by its one state-change method) when someone asks: nothing is recorded on the data path. Each figure is one
/// <see cref="ObservedMetric"/>; the <c>PgProxy</c> meter publishes them as observable instruments (for
/// <c>dotnet-counters</c> and OpenTelemetry), and /metrics reads the very same observations at each scrape, so the
/// two always agree.
/// </summary>
public sealed class ProxyMetrics : IDisposable
{
    /// <summary>The meter's name, for <c>dotnet-counters --counters PgProxy</c> and OpenTelemetry's AddMeter.</summary>
    public const string MeterName = "PgProxy";

    private static readonly string[] s_poolLabels = ["database", "user"];
    private static readonly string[] s_poolStateLabels = ["database", "user", "state"];
    private static readonly string[] s_poolErrorLabels = ["database", "user", "sqlstate"];
    private static readonly string[] s_poolFailureLabels = ["database", "user", "reason"];
    private static readonly string[] s_poolKindLabels = ["database", "user", "kind"];

    private static readonly (ConnectFailure Failure, string Name)[] s_failures =
    [
        (ConnectFailure.Timeout, "timeout"), (ConnectFailure.Refused, "refused"), (ConnectFailure.Unreachable, "unreachable"),
        (ConnectFailure.Lost, "lost"), (ConnectFailure.LoginRefused, "login_refused"), (ConnectFailure.ServerError, "server_error"),
        (ConnectFailure.Tls, "tls"), (ConnectFailure.Other, "other"),
    ];

    private static readonly (ClientState State, string Name)[] s_clientStates =
        [(ClientState.Active, "active"), (ClientState.Waiting, "waiting"), (ClientState.Idle, "idle")];

    private readonly ProxyServices _services;

    /// <summary>Creates the meter from <paramref name="factory"/> (one per host, so two proxies in a process never mix).</summary>
    public ProxyMetrics(IMeterFactory factory, ProxyServices services)
    {
        _services = services;
        Metrics =
        [
            new("pgproxy.client.connections", "{connection}", "Client connections open now, logging in or logged in.", [],
                () => [new Measurement<double>(_services.ClientCount)]),
            new("pgproxy.pool.clients", "{connection}",
                "Logged-in clients by pool and state: active (a server linked), waiting (for a server), idle (between transactions).",
                s_poolStateLabels, ObserveClients),
            new("pgproxy.pool.servers", "{connection}",
                "Server connections by pool and state: active, idle, used (being cleaned after a client), tested (pre-ping), login (connecting).",
                s_poolStateLabels, ObserveServers),
            new("pgproxy.pool.maxwait", "s", "How long the longest-waiting client of the pool has waited for a server (0 when none waits).",
                s_poolLabels, () => ObservePools(p => p.MaxWait.TotalSeconds)),
            new("pgproxy.pool.size", "{connection}", "The pool's configured size (servers it may open, before the reserve).",
                s_poolLabels, () => ObservePools(p => p.Settings.PoolSize)),
            Total("pgproxy.pool.server_assignments", "{assignment}", "Times a server was handed to a client.", t => t.ServerAssignments),
            Total("pgproxy.pool.transactions", "{transaction}", "Transactions finished (ReadyForQuery idle), single statements included.",
                t => t.Transactions),
            Total("pgproxy.pool.queries", "{query}", "Queries finished: simple queries, and extended-protocol batches up to Sync.", t => t.Queries),
            Total("pgproxy.pool.received", "By", "Bytes received from clients.", t => t.Received),
            Total("pgproxy.pool.sent", "By", "Bytes sent to clients from servers.", t => t.Sent),
            Total("pgproxy.pool.transaction.time", "s", "Time in transactions, from the first request to ReadyForQuery idle.",
                t => t.TransactionMicros / 1e6),
            Total("pgproxy.pool.query.time", "s", "Time with requests outstanding on a server.", t => t.QueryMicros / 1e6),
            Total("pgproxy.pool.wait.time", "s", "Time clients waited for a server.", t => t.WaitMicros / 1e6),
            Total("pgproxy.pool.client_parses", "{statement}", "Named statements clients prepared (mapped by the proxy, transaction mode).",
                t => t.ClientParses),
            Total("pgproxy.pool.server_parses", "{statement}", "Parse messages of mapped statements the proxy sent to servers.", t => t.ServerParses),
            Total("pgproxy.pool.binds", "{bind}", "Bind messages of mapped statements forwarded to servers.", t => t.Binds),
            Total("pgproxy.pool.logins", "{login}", "Client logins.", t => t.Logins),
            new("pgproxy.pool.errors", "{error}",
                "ErrorResponses sent to the pool's clients by SQLSTATE: the servers' (forwarded) and the proxy's own (timeouts, kills, 08006).",
                s_poolErrorLabels, ObserveErrors, Counter: true),
            new("pgproxy.login.refusals", "{login}", "Clients refused before they logged in, by SQLSTATE (password, unknown database, limits, shutdown).",
                ["sqlstate"], ObserveRefusals, Counter: true),
            new("pgproxy.pool.server_connects", "{connection}", "Server connections the pool tried to open.", s_poolLabels,
                () => ObservePools(p => p.Stats.ConnectAttempts), Counter: true),
            new("pgproxy.pool.pinned_clients", "{connection}",
                "Clients pinned to their servers now by session state (transaction mode), or about to be.", s_poolLabels,
                () => ObservePools(p => p.PinnedClients)),
            new("pgproxy.pool.pins", "{pin}",
                "Times a client was pinned to its server, by kind of session state: advisory_lock, temp_table, hold_cursor, listen, prepared_statement, session_setting.",
                s_poolKindLabels, ObservePins, Counter: true),
            new("pgproxy.pool.pinned.time", "s", "Time clients spent pinned to their servers (pins that ended).", s_poolLabels,
                () => ObservePools(p => p.Time.TimestampFrequency == 0 ? 0 : p.Stats.PinnedTicks / (double)p.Time.TimestampFrequency), Counter: true),
            new("pgproxy.pool.server_connect_failures", "{connection}",
                "Server connections that could not be opened, by reason: timeout, refused, unreachable, lost, login_refused, server_error, other.",
                s_poolFailureLabels, ObserveConnectFailures, Counter: true),
        ];
        Histograms =
        [
            new("pgproxy.pool.wait.duration", "How long each server assignment waited for a server (0 when one was free).", s => s.WaitTime),
            new("pgproxy.pool.query.duration", "Each period with requests outstanding on a server (PgBouncer's query time).", s => s.QueryTime),
            new("pgproxy.pool.transaction.duration", "Each transaction, from its first request to ReadyForQuery idle.", s => s.TransactionTime),
        ];
        Meter = factory.Create(MeterName);
        var advice = new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyHistogram.Bounds };
        Histogram<double>[] instruments = [.. Histograms.Select(h => Meter.CreateHistogram(h.Name, "s", h.Description, tags: null, advice))];
        // Every pool records on these (while something listens), each with its database and user as tags.
        services.Pools.Instruments = new PoolInstruments(instruments[0], instruments[1], instruments[2]);
        foreach (ObservedMetric metric in Metrics)
        {
            if (metric.Counter)
            {
                Meter.CreateObservableCounter(metric.Name, metric.Observe, metric.Unit, metric.Description);
            }
            else
            {
                Meter.CreateObservableGauge(metric.Name, metric.Observe, metric.Unit, metric.Description);
            }
        }
    }

    /// <summary>The meter whose instruments are <see cref="Metrics"/>.</summary>
    public Meter Meter { get; }

    /// <summary>Every figure, in the order /metrics lists them.</summary>
    public IReadOnlyList<ObservedMetric> Metrics { get; }

    /// <summary>The latency histograms (per pool, in seconds), listed after <see cref="Metrics"/>.</summary>
    public IReadOnlyList<ObservedHistogram> Histograms { get; }

    /// <summary>Each pool's histogram of <paramref name="histogram"/>, with the pool's labels (database, user).</summary>
    public IEnumerable<(string[] Labels, LatencyHistogram Histogram)> Observe(ObservedHistogram histogram)
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            yield return ([pool.Key.Database, pool.Key.User], histogram.Of(pool.Stats));
        }
    }

    private IEnumerable<Measurement<double>> ObservePools(Func<Pool, double> value)
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            yield return new Measurement<double>(value(pool), Tags(pool, null));
        }
    }

    private IEnumerable<Measurement<double>> ObserveErrors()
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            foreach ((string sqlState, long count) in pool.Stats.Errors)
            {
                yield return new Measurement<double>(count, [new("database", pool.Key.Database), new("user", pool.Key.User), new("sqlstate", sqlState)]);
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveRefusals()
    {
        foreach ((string sqlState, long count) in _services.LoginRefusals)
        {
            yield return new Measurement<double>(count, [new("sqlstate", sqlState)]);
        }
    }

    private IEnumerable<Measurement<double>> ObservePins()
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            for (int i = 0; i < Relay.PinKindNames.All.Length; i++)
            {
                yield return new Measurement<double>(pool.Stats.Pins(i),
                    [new("database", pool.Key.Database), new("user", pool.Key.User), new("kind", Relay.PinKindNames.All[i].Name)]);
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveConnectFailures()
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            foreach ((ConnectFailure failure, string name) in s_failures)
            {
                yield return new Measurement<double>(pool.Stats.ConnectFailures(failure),
                    [new("database", pool.Key.Database), new("user", pool.Key.User), new("reason", name)]);
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveClients()
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            foreach ((ClientState state, string name) in s_clientStates)
            {
                yield return new Measurement<double>(pool.ClientCount(state), Tags(pool, name));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveServers()
    {
        foreach (Pool pool in _services.Pools.Pools)
        {
            PoolCounts c = pool.Counts;
            yield return new Measurement<double>(c.Active, Tags(pool, "active"));
            yield return new Measurement<double>(c.Idle, Tags(pool, "idle"));
            yield return new Measurement<double>(c.Used, Tags(pool, "used"));
            yield return new Measurement<double>(c.Testing, Tags(pool, "tested"));
            yield return new Measurement<double>(c.Connecting, Tags(pool, "login"));
        }
    }

    private ObservedMetric Total(string name, string unit, string description, Func<PoolTotals, double> value) =>
        new(name, unit, description, s_poolLabels, () => ObservePools(p => value(p.Stats.Read(_services.Time))), Counter: true);

    private static KeyValuePair<string, object?>[] Tags(Pool pool, string? state) => state is null
        ? [new("database", pool.Key.Database), new("user", pool.Key.User)]
        : [new("database", pool.Key.Database), new("user", pool.Key.User), new("state", state)];

    /// <inheritdoc />
    public void Dispose() => Meter.Dispose();
}

/// <summary>
/// One figure: its instrument name (dotted, OpenTelemetry style), unit, description, the tags each observation
/// carries (in this order), how to observe it now, and whether it only grows (a counter) or goes up and down (a gauge).
/// </summary>
public sealed record ObservedMetric(string Name, string Unit, string Description, string[] Labels, Func<IEnumerable<Measurement<double>>> Observe,
    bool Counter = false)
{
    /// <summary>The Prometheus name: dots as underscores, the unit (<c>_seconds</c>, <c>_bytes</c>), and <c>_total</c> for a counter.</summary>
    public string PrometheusName =>
        Name.Replace('.', '_') + Unit switch { "s" => "_seconds", "By" => "_bytes", _ => "" } + (Counter ? "_total" : "");
}

/// <summary>A latency histogram of every pool: its instrument name (the Prometheus name adds <c>_seconds</c>), description, and which of a pool's it is.</summary>
public sealed record ObservedHistogram(string Name, string Description, Func<PoolStats, LatencyHistogram> Of)
{
    /// <summary>The Prometheus name: dots as underscores, then <c>_seconds</c>.</summary>
    public string PrometheusName => Name.Replace('.', '_') + "_seconds";
}
