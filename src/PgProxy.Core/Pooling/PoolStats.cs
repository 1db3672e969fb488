namespace PgProxy.Core.Pooling;

/// <summary>
/// A pool's running totals, PgBouncer's (SHOW STATS_TOTALS) and the /metrics counters: plain interlocked adds, a few
/// per transaction or read batch, no lock and no allocation. Times are kept in the pool clock's timestamp ticks.
/// </summary>
public sealed class PoolStats
{
    private long _assignments;
    private long _transactions;
    private long _queries;
    private long _received;
    private long _sent;
    private long _transactionTicks;
    private long _queryTicks;
    private long _waitTicks;

    /// <summary>A server was handed to a client after <paramref name="waitTicks"/> of waiting (0: at once).</summary>
    internal void Assigned(long waitTicks)
    {
        Interlocked.Increment(ref _assignments);
        if (waitTicks > 0)
        {
            Interlocked.Add(ref _waitTicks, waitTicks);
        }
    }

    /// <summary>A ReadyForQuery came back: one query (a simple Query or an extended batch up to Sync) is done.</summary>
    internal void QueryDone() => Interlocked.Increment(ref _queries);

    /// <summary>A transaction ended (ReadyForQuery idle) after <paramref name="ticks"/> since its first request.</summary>
    internal void TransactionDone(long ticks)
    {
        Interlocked.Increment(ref _transactions);
        Interlocked.Add(ref _transactionTicks, ticks);
    }

    /// <summary>A period with requests outstanding on the server ended after <paramref name="ticks"/>.</summary>
    internal void Busy(long ticks) => Interlocked.Add(ref _queryTicks, ticks);

    /// <summary>Bytes read from clients.</summary>
    internal void Received(long bytes) => Interlocked.Add(ref _received, bytes);

    /// <summary>Bytes read from servers for clients.</summary>
    internal void Sent(long bytes) => Interlocked.Add(ref _sent, bytes);

    /// <summary>The totals now (each exact; together a moment apart), times in microseconds.</summary>
    public PoolTotals Read(TimeProvider time)
    {
        double perMicro = time.TimestampFrequency / 1_000_000.0;
        return new PoolTotals(
            Volatile.Read(ref _assignments), Volatile.Read(ref _transactions), Volatile.Read(ref _queries),
            Volatile.Read(ref _received), Volatile.Read(ref _sent),
            (long)(Volatile.Read(ref _transactionTicks) / perMicro), (long)(Volatile.Read(ref _queryTicks) / perMicro),
            (long)(Volatile.Read(ref _waitTicks) / perMicro));
    }
}

/// <summary>A pool's totals (PgBouncer's SHOW STATS_TOTALS columns); times in microseconds.</summary>
public readonly record struct PoolTotals(long ServerAssignments, long Transactions, long Queries, long Received, long Sent,
    long TransactionMicros, long QueryMicros, long WaitMicros)
{
    /// <summary>Adds two pools' totals (SHOW STATS_TOTALS sums a database's pools).</summary>
    public static PoolTotals operator +(PoolTotals a, PoolTotals b) => new(
        a.ServerAssignments + b.ServerAssignments, a.Transactions + b.Transactions, a.Queries + b.Queries, a.Received + b.Received,
        a.Sent + b.Sent, a.TransactionMicros + b.TransactionMicros, a.QueryMicros + b.QueryMicros, a.WaitMicros + b.WaitMicros);
}
