namespace PgProxy.Core.Backend;

/// <summary>Backend states (PgBouncer's server lists). Each state change goes through <see cref="Pooling.Pool"/>.</summary>
public enum BackendState
{
    /// <summary>TCP connect and login in progress.</summary>
    Connecting,
    /// <summary>In the pool, ready to be linked.</summary>
    Idle,
    /// <summary>Linked to a client.</summary>
    Active,
    /// <summary>Running the reset query before going back to idle.</summary>
    Used,
    /// <summary>Being closed.</summary>
    Closing,
}
