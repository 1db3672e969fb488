namespace PgProxy.Core.Pooling;

/// <summary>A consistent snapshot of a pool's counters (taken under its lock), for logs, SHOW POOLS and metrics.</summary>
public readonly record struct PoolCounts(int Active, int Idle, int Used, int Connecting, int Waiting)
{
    /// <summary>Backends open or being opened.</summary>
    public int Total => Active + Idle + Used + Connecting;
}
