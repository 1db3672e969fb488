namespace PgProxy.Core.Pooling;

/// <summary>A consistent snapshot of a pool's backend counters (taken under its lock), for logs, SHOW POOLS and metrics.</summary>
/// <param name="Active">Linked to a client (sv_active).</param>
/// <param name="Idle">Ready in the pool (sv_idle).</param>
/// <param name="Used">Running the proxy's cleanup after a client (sv_used).</param>
/// <param name="Connecting">Being opened: TCP connect and login (sv_login).</param>
/// <param name="Waiting">Clients waiting for a backend (cl_waiting).</param>
/// <param name="Testing">Running the pre-ping before a client gets it (sv_tested).</param>
public readonly record struct PoolCounts(int Active, int Idle, int Used, int Connecting, int Waiting, int Testing = 0)
{
    /// <summary>Backends open or being opened.</summary>
    public int Total => Active + Idle + Used + Connecting + Testing;
}
