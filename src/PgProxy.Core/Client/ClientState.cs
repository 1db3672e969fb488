namespace PgProxy.Core.Client;

/// <summary>
/// A client's state (PgBouncer's client lists, as SHOW CLIENTS and SHOW POOLS count them). A client's relay changes
/// it in one place, which keeps its pool's counters.
/// </summary>
public enum ClientState
{
    /// <summary>Startup and authentication, before a pool is known.</summary>
    Login,
    /// <summary>Logged in, no backend attached (cl_idle; PgBouncer counts these as cl_active, linked or not).</summary>
    Idle,
    /// <summary>Waiting for a backend (cl_waiting).</summary>
    Waiting,
    /// <summary>A backend is attached (cl_active with a server).</summary>
    Active,
    /// <summary>The proxy is shutting down: the client is closed at its next transaction boundary.</summary>
    Draining,
}
