using PgProxy.Core.Diagnostics;

namespace PgProxy.Core.Pooling;

/// <summary>
/// A pool's running totals, PgBouncer's (SHOW STATS_TOTALS) and the /metrics counters: plain interlocked adds, a few
/// per transaction or read batch, no lock and no allocation; latency histograms of the wait for a server, of query
/// time and of transaction time; errors sent to clients by SQLSTATE; server connect attempts and failures by reason.
/// Times are kept in the pool clock's timestamp ticks.
/// </summary>
public sealed class PoolStats
{
    private readonly KeyedCounters _errors = new();
    private readonly long[] _connectFailures = new long[Enum.GetValues<ConnectFailure>().Length];
    private long _connectAttempts;

    /// <summary>Creates a pool's stats; <paramref name="instruments"/> are the meter's histograms (null: none).</summary>
    public PoolStats(long ticksPerSecond = 1_000_000_000, PoolInstruments? instruments = null, KeyValuePair<string, object?>[]? tags = null)
    {
        WaitTime = new LatencyHistogram(ticksPerSecond, instruments?.Wait, tags);
        QueryTime = new LatencyHistogram(ticksPerSecond, instruments?.Query, tags);
        TransactionTime = new LatencyHistogram(ticksPerSecond, instruments?.Transaction, tags);
    }

    // The counts and times of assignments and transactions, and query time, are the histograms' own count and sum:
    // one bucket increment and one add per event, not a histogram beside a counter and a sum.

    /// <summary>How long each server assignment waited (0 when a server was free).</summary>
    public LatencyHistogram WaitTime { get; }

    /// <summary>Each period with requests outstanding on a server (PgBouncer's query time).</summary>
    public LatencyHistogram QueryTime { get; }

    /// <summary>Each transaction, from its first request to ReadyForQuery idle.</summary>
    public LatencyHistogram TransactionTime { get; }

    private long _queries;
    private long _received;
    private long _sent;
    private long _clientParses;
    private long _serverParses;
    private long _binds;
    private long _logins;

    /// <summary>A server was handed to a client after <paramref name="waitTicks"/> of waiting (0: at once).</summary>
    internal void Assigned(long waitTicks) => WaitTime.Record(waitTicks);

    /// <summary>A ReadyForQuery came back: one query (a simple Query or an extended batch up to Sync) is done.</summary>
    internal void QueryDone() => Interlocked.Increment(ref _queries);

    /// <summary>A transaction ended (ReadyForQuery idle) after <paramref name="ticks"/> since its first request.</summary>
    internal void TransactionDone(long ticks)
    {
        TransactionTime.Record(ticks);
    }

    /// <summary>A period with requests outstanding on the server ended after <paramref name="ticks"/>.</summary>
    internal void Busy(long ticks) => QueryTime.Record(ticks);

    /// <summary>An ErrorResponse with <paramref name="sqlState"/> went to a client of this pool (the server's or the proxy's).</summary>
    internal void Error(string sqlState) => _errors.Increment(sqlState);

    /// <summary>Errors sent to this pool's clients, by SQLSTATE (a copy).</summary>
    public KeyValuePair<string, long>[] Errors => _errors.Read();

    /// <summary>A server connection is being opened.</summary>
    internal void ConnectAttempt() => Interlocked.Increment(ref _connectAttempts);

    /// <summary>A server connection could not be opened, for <paramref name="reason"/>.</summary>
    internal void ConnectFailed(ConnectFailure reason) => Interlocked.Increment(ref _connectFailures[(int)reason]);

    /// <summary>Server connections attempted.</summary>
    public long ConnectAttempts => Volatile.Read(ref _connectAttempts);

    /// <summary>Failed server connections by reason.</summary>
    public long ConnectFailures(ConnectFailure reason) => Volatile.Read(ref _connectFailures[(int)reason]);

    /// <summary>Bytes read from clients.</summary>
    internal void Received(long bytes) => Interlocked.Add(ref _received, bytes);

    /// <summary>Bytes read from servers for clients.</summary>
    internal void Sent(long bytes) => Interlocked.Add(ref _sent, bytes);

    /// <summary>A client prepared a named statement (the proxy maps it; PgBouncer's client_parse_count).</summary>
    internal void ClientParse() => Interlocked.Increment(ref _clientParses);

    /// <summary>The proxy sent a Parse of a mapped statement to a server (server_parse_count).</summary>
    internal void ServerParse() => Interlocked.Increment(ref _serverParses);

    /// <summary>A Bind of a mapped statement was forwarded (bind_count).</summary>
    internal void Bind() => Interlocked.Increment(ref _binds);

    /// <summary>A client logged in to this pool (client_login_count).</summary>
    internal void Login() => Interlocked.Increment(ref _logins);

    private readonly long[] _pins = new long[Relay.PinKindNames.All.Length];
    private long _pinnedTicks;

    /// <summary>A client was pinned to its server for state of these kinds (each kind new to the pin counts once).</summary>
    internal void Pinned(Relay.PinKinds kinds)
    {
        for (int i = 0; i < _pins.Length; i++)
        {
            if ((kinds & Relay.PinKindNames.All[i].Kind) != 0)
            {
                Interlocked.Increment(ref _pins[i]);
            }
        }
    }

    /// <summary>A pin ended after <paramref name="ticks"/>.</summary>
    internal void Unpinned(long ticks) => Interlocked.Add(ref _pinnedTicks, ticks);

    /// <summary>Pins by kind (in <see cref="Relay.PinKindNames.All"/>'s order) since the start.</summary>
    public long Pins(int kindIndex) => Volatile.Read(ref _pins[kindIndex]);

    /// <summary>Time clients spent pinned (pins that ended), in the pool clock's ticks.</summary>
    public long PinnedTicks => Volatile.Read(ref _pinnedTicks);

    /// <summary>The totals now (each exact; together a moment apart), times in microseconds.</summary>
    public PoolTotals Read(TimeProvider time)
    {
        double perMicro = time.TimestampFrequency / 1_000_000.0;
        return new PoolTotals(
            WaitTime.Count, TransactionTime.Count, Volatile.Read(ref _queries),
            Volatile.Read(ref _received), Volatile.Read(ref _sent),
            (long)(TransactionTime.SumTicks / perMicro), (long)(QueryTime.SumTicks / perMicro), (long)(WaitTime.SumTicks / perMicro),
            Volatile.Read(ref _clientParses), Volatile.Read(ref _serverParses), Volatile.Read(ref _binds), Volatile.Read(ref _logins));
    }

    private Snapshots _snapshots = new(default, default);

    /// <summary>
    /// The totals at the last stats_period tick but one (PgBouncer's older_stats): averages run from there to now, so
    /// they cover between one and two periods. Zero for a pool created since.
    /// </summary>
    public PoolTotals Older => Volatile.Read(ref _snapshots).Older;

    /// <summary>The stats_period clock (<see cref="PoolManager"/>): the newer snapshot becomes the older one, the totals now the newer.</summary>
    internal void Shift(TimeProvider time) => Volatile.Write(ref _snapshots, new Snapshots(_snapshots.Newer, Read(time)));

    /// <summary>One object, swapped whole, so that a reader never sees half of a shift.</summary>
    private sealed record Snapshots(PoolTotals Older, PoolTotals Newer);
}

/// <summary>A pool's totals (PgBouncer's SHOW STATS_TOTALS columns); times in microseconds.</summary>
public readonly record struct PoolTotals(long ServerAssignments, long Transactions, long Queries, long Received, long Sent,
    long TransactionMicros, long QueryMicros, long WaitMicros, long ClientParses, long ServerParses, long Binds, long Logins)
{
    /// <summary>Adds two pools' totals (SHOW STATS_TOTALS sums a database's pools).</summary>
    public static PoolTotals operator +(PoolTotals a, PoolTotals b) => new(
        a.ServerAssignments + b.ServerAssignments, a.Transactions + b.Transactions, a.Queries + b.Queries, a.Received + b.Received,
        a.Sent + b.Sent, a.TransactionMicros + b.TransactionMicros, a.QueryMicros + b.QueryMicros, a.WaitMicros + b.WaitMicros,
        a.ClientParses + b.ClientParses, a.ServerParses + b.ServerParses, a.Binds + b.Binds, a.Logins + b.Logins);

    /// <summary>
    /// PgBouncer's averages (its calc_average) between <paramref name="older"/> and these totals, taken
    /// <paramref name="micros"/> apart: counts and bytes per second, times per transaction, query or assignment (us).
    /// </summary>
    public PoolTotals AveragesSince(PoolTotals older, long micros)
    {
        if (micros <= 0)
        {
            return default;
        }

        long PerSecond(long now, long then) => (now - then) * 1_000_000 / micros;
        long Per(long time, long oldTime, long count) => count > 0 ? (time - oldTime) / count : 0;
        long transactions = Transactions - older.Transactions;
        long queries = Queries - older.Queries;
        long assignments = ServerAssignments - older.ServerAssignments;
        return new PoolTotals(
            PerSecond(ServerAssignments, older.ServerAssignments), PerSecond(Transactions, older.Transactions), PerSecond(Queries, older.Queries),
            PerSecond(Received, older.Received), PerSecond(Sent, older.Sent),
            Per(TransactionMicros, older.TransactionMicros, transactions), Per(QueryMicros, older.QueryMicros, queries),
            Per(WaitMicros, older.WaitMicros, assignments),
            PerSecond(ClientParses, older.ClientParses), PerSecond(ServerParses, older.ServerParses), PerSecond(Binds, older.Binds),
            PerSecond(Logins, older.Logins));
    }
}

/// <summary>Why a server connection could not be opened (the label of pgproxy_pool_server_connect_failures_total).</summary>
public enum ConnectFailure
{
    /// <summary>No connection or no login within server_connect_timeout.</summary>
    Timeout,

    /// <summary>The server's address refused the connection (nothing listening).</summary>
    Refused,

    /// <summary>The address could not be reached or resolved.</summary>
    Unreachable,

    /// <summary>The connection was lost during the login.</summary>
    Lost,

    /// <summary>The server refused the login: password, unknown database or role, no permission.</summary>
    LoginRefused,

    /// <summary>The server answered the login with another error (starting up, shutting down, too many connections).</summary>
    ServerError,

    /// <summary>TLS could not be set up: the server declined it under require, or its certificate was not trusted.</summary>
    Tls,

    /// <summary>Anything else.</summary>
    Other,
}

/// <summary>The <c>PgProxy</c> meter's histogram instruments, shared by every pool (each records with its own tags).</summary>
public sealed record PoolInstruments(
    System.Diagnostics.Metrics.Histogram<double> Wait,
    System.Diagnostics.Metrics.Histogram<double> Query,
    System.Diagnostics.Metrics.Histogram<double> Transaction);
