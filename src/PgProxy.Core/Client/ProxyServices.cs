using Microsoft.Extensions.Logging;
using PgProxy.Core.Auth;
using PgProxy.Core.Cancellation;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;

namespace PgProxy.Core.Client;

/// <summary>What every client session needs: the config snapshot, pools, cancel keys and the client quota.</summary>
public sealed class ProxyServices
{
    private int _clients;
    private bool _draining;
    private readonly CancellationTokenSource _drain = new();

    /// <summary>Creates the services.</summary>
    public ProxyServices(ProxyConfig config, UserList users, PoolManager pools, ILoggerFactory loggerFactory)
    {
        Config = config;
        Users = users;
        Pools = pools;
        LoggerFactory = loggerFactory;
        SessionLogger = loggerFactory.CreateLogger<ClientSession>();
    }

    /// <summary>The config snapshot.</summary>
    public ProxyConfig Config { get; }

    /// <summary>Client secrets.</summary>
    public UserList Users { get; }

    /// <summary>Pools.</summary>
    public PoolManager Pools { get; }

    /// <summary>The clock (the pools' own): timeouts and activity timestamps.</summary>
    public TimeProvider Time => Pools.Time;

    /// <summary>Proxy-issued cancel keys.</summary>
    public CancelKeyMap CancelKeys { get; } = new();

    /// <summary>Logger factory.</summary>
    public ILoggerFactory LoggerFactory { get; }

    /// <summary>The sessions' logger (one instance, not one per client).</summary>
    internal ILogger<ClientSession> SessionLogger { get; }

    /// <summary>Open client connections (including ones still in login).</summary>
    public int ClientCount => Volatile.Read(ref _clients);

    /// <summary>Cancelled when the drain starts (for sessions that wait outside the relay: the admin console).</summary>
    public CancellationToken DrainToken => _drain.Token;

    /// <summary>The proxy is shutting down: new logins are refused and clients are closed at transaction boundaries.</summary>
    public bool Draining => Volatile.Read(ref _draining);

    /// <summary>
    /// Starts the drain, or runs it again: refuses new logins from now on and closes every logged-in client that is
    /// between transactions (the rest when they get there: call again).
    /// </summary>
    public void Drain()
    {
        Volatile.Write(ref _draining, true);
        if (!_drain.IsCancellationRequested)
        {
            _drain.Cancel();
        }

        foreach (ICancelTarget target in CancelKeys.Targets)
        {
            (target as ClientSession)?.CheckDrain();
        }
    }

    /// <summary>Counts a new client; false when max_client_conn is already reached (the count is not taken).</summary>
    public bool TryAddClient()
    {
        while (true)
        {
            int current = Volatile.Read(ref _clients);
            if (current >= Config.Proxy.MaxClientConn)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _clients, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Uncounts a client.</summary>
    public void RemoveClient() => Interlocked.Decrement(ref _clients);

    /// <summary>The process's deadlines (the pools'): each logged-in session with a timeout configured is one entry.</summary>
    internal DeadlineQueue Deadlines => Pools.Deadlines;
}
