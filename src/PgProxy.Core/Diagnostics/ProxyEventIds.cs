namespace PgProxy.Core.Diagnostics;

/// <summary>
/// Central EventIds, used by every [LoggerMessage]: 1xxx listener, 2xxx client, 3xxx backend, 4xxx pool, 5xxx admin,
/// 6xxx config.
/// </summary>
public static class ProxyEventIds
{
    /// <summary>Listening on an address.</summary>
    public const int Listening = 1001;

    /// <summary>A poll loop's callback threw (the loop goes on).</summary>
    public const int PollLoopError = 1002;

    /// <summary>Client logged in.</summary>
    public const int ClientLogin = 2001;

    /// <summary>Client left.</summary>
    public const int ClientLogout = 2002;

    /// <summary>Client refused during login.</summary>
    public const int ClientRefused = 2003;

    /// <summary>Unexpected client-session error.</summary>
    public const int ClientError = 2004;

    /// <summary>Cancel request forwarded.</summary>
    public const int CancelForwarded = 2005;

    /// <summary>Cancel for a client with no backend linked.</summary>
    public const int CancelIgnored = 2006;

    /// <summary>Cancel request matching no client.</summary>
    public const int CancelUnknown = 2007;

    /// <summary>Cancel request that could not be forwarded.</summary>
    public const int CancelFailed = 2008;

    /// <summary>Client linked to a backend.</summary>
    public const int ClientLinked = 2009;

    /// <summary>Client unlinked from its backend.</summary>
    public const int ClientUnlinked = 2010;

    /// <summary>A client's TLS handshake failed.</summary>
    public const int ClientTlsFailed = 2011;

    /// <summary>The certificate for clients could not be loaded.</summary>
    public const int ClientTlsUnavailable = 2012;

    /// <summary>A transaction-mode client was pinned to its server, or its pin changed or ended.</summary>
    public const int ClientPinned = 2013;

    /// <summary>Backend connected.</summary>
    public const int BackendConnected = 3001;

    /// <summary>Backend closed.</summary>
    public const int BackendClosed = 3002;

    /// <summary>Backend connect failed.</summary>
    public const int BackendConnectFailed = 3003;

    /// <summary>A backend's pump failed unexpectedly.</summary>
    public const int BackendPumpFailed = 3004;

    /// <summary>Pool created.</summary>
    public const int PoolCreated = 4001;

    /// <summary>A client waited longer than query_wait_timeout.</summary>
    public const int PoolWaitTimeout = 4002;

    /// <summary>An admin console command that changes state (PAUSE, KILL, RELOAD, ...).</summary>
    public const int AdminCommand = 5001;

    /// <summary>A reload applied a new config.</summary>
    public const int ConfigReloaded = 6001;

    /// <summary>A reload refused an invalid config, or kept keys that need a restart.</summary>
    public const int ConfigReloadRefused = 6002;

    /// <summary>Memory returned to the operating system after the clients stopped coming and going (memory_trim_delay).</summary>
    public const int MemoryTrimmed = 7001;
}
