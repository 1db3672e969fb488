namespace PgProxy.Core.Diagnostics;

/// <summary>Stable reasons a client or backend connection ends (wording follows PgBouncer's where it has one).</summary>
public enum DisconnectReason
{
    /// <summary>The client sent Terminate or closed its socket.</summary>
    ClientClosed,
    /// <summary>The client broke the protocol.</summary>
    ProtocolViolation,
    /// <summary>Authentication failed.</summary>
    AuthFailed,
    /// <summary>Login took longer than client_login_timeout.</summary>
    LoginTimeout,
    /// <summary>The client asked for a database that is not configured.</summary>
    UnknownDatabase,
    /// <summary>max_client_conn reached.</summary>
    TooManyClients,
    /// <summary>No backend could be had (connect failure or query_wait_timeout).</summary>
    BackendUnavailable,
    /// <summary>The linked backend closed or failed.</summary>
    BackendClosed,
    /// <summary>An unexpected error (a bug): logged at Error.</summary>
    InternalError,
    /// <summary>A backend was returned dirty (mid-transaction, mid-COPY) and closed instead of reused.</summary>
    DirtyOnRelease,
    /// <summary>The backend's reset query failed.</summary>
    ResetFailed,
    /// <summary>The pool was closed (reload, shutdown).</summary>
    PoolClosed,
    /// <summary>The backend's startup parameters could not be applied.</summary>
    ParameterSyncFailed,
    /// <summary>client_idle_timeout.</summary>
    ClientIdleTimeout,
    /// <summary>idle_transaction_timeout.</summary>
    IdleTransactionTimeout,
    /// <summary>query_timeout.</summary>
    QueryTimeout,
    /// <summary>Older than server_lifetime.</summary>
    Lifetime,
    /// <summary>Idle longer than server_idle_timeout.</summary>
    IdleTimeout,
    /// <summary>server_check_query failed before the backend was handed out.</summary>
    CheckFailed,
    /// <summary>Closed to give another pool of the same database its slot (max_db_connections/max_user_connections).</summary>
    Evicted,
    /// <summary>The proxy is shutting down: closed at a transaction boundary, or refused at login.</summary>
    Shutdown,

    /// <summary>The pool is paused (admin PAUSE, SHUTDOWN WAIT_FOR_SERVERS): servers close as their clients give them back.</summary>
    Paused,

    /// <summary>Admin RECONNECT (or a changed destination): the server was opened before it.</summary>
    Reconnect,

    /// <summary>Admin KILL or KILL_CLIENT.</summary>
    Killed,

    /// <summary>A reload removed the database or shrank the pool.</summary>
    ConfigChanged,

    /// <summary>The client stayed pinned to its server (session state in transaction mode) longer than pin_timeout.</summary>
    PinTimeout,
}
