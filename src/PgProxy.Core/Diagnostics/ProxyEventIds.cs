using Microsoft.Extensions.Logging;

namespace PgProxy.Core.Diagnostics;

/// <summary>Central EventIds: 1xxx listener, 2xxx client, 3xxx backend, 4xxx pool, 5xxx admin, 6xxx config.</summary>
public static class ProxyEventIds
{
    /// <summary>Listening on an address.</summary>
    public static readonly EventId Listening = new(1001, nameof(Listening));
    /// <summary>Shutdown started.</summary>
    public static readonly EventId ShuttingDown = new(1002, nameof(ShuttingDown));
    /// <summary>Client logged in.</summary>
    public static readonly EventId ClientLogin = new(2001, nameof(ClientLogin));
    /// <summary>Client left.</summary>
    public static readonly EventId ClientLogout = new(2002, nameof(ClientLogout));
    /// <summary>Client refused during login.</summary>
    public static readonly EventId ClientRefused = new(2003, nameof(ClientRefused));
    /// <summary>Unexpected client-session error.</summary>
    public static readonly EventId ClientError = new(2004, nameof(ClientError));
    /// <summary>Cancel request forwarded or dropped.</summary>
    public static readonly EventId CancelRequest = new(2005, nameof(CancelRequest));
    /// <summary>Backend connected.</summary>
    public static readonly EventId BackendConnected = new(3001, nameof(BackendConnected));
    /// <summary>Backend closed.</summary>
    public static readonly EventId BackendClosed = new(3002, nameof(BackendClosed));
    /// <summary>Backend connect failed.</summary>
    public static readonly EventId BackendConnectFailed = new(3003, nameof(BackendConnectFailed));
    /// <summary>Pool created.</summary>
    public static readonly EventId PoolCreated = new(4001, nameof(PoolCreated));
    /// <summary>A client waited longer than query_wait_timeout.</summary>
    public static readonly EventId PoolWaitTimeout = new(4002, nameof(PoolWaitTimeout));
    /// <summary>Config loaded.</summary>
    public static readonly EventId ConfigLoaded = new(6001, nameof(ConfigLoaded));
    /// <summary>Config rejected.</summary>
    public static readonly EventId ConfigInvalid = new(6002, nameof(ConfigInvalid));
}
