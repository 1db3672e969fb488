namespace PgProxy.Core.Backend;

/// <summary>Backend states (PgBouncer's server lists). Each state change goes through the pool's Transition, which counts them.</summary>
public enum BackendState
{
    /// <summary>TCP connect and login in progress (a reserved slot counts here before its backend exists).</summary>
    Connecting,
    /// <summary>In the pool, ready to be linked.</summary>
    Idle,
    /// <summary>Taken by a client (linked, or being set up for it).</summary>
    Active,
    /// <summary>Running the proxy's cleanup (ROLLBACK, server_reset_query) before going back to idle.</summary>
    Used,
    /// <summary>Running server_check_query before a client gets it.</summary>
    Testing,
    /// <summary>Out of the pool, being closed (not counted).</summary>
    Closing,
}
