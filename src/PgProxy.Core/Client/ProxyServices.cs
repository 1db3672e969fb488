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
    private bool _loginsStopped;
    private readonly CancellationTokenSource _drain = new();

    /// <summary>Creates the services.</summary>
    public ProxyServices(PoolManager pools, ILoggerFactory loggerFactory)
    {
        Pools = pools;
        LoggerFactory = loggerFactory;
        SessionLogger = loggerFactory.CreateLogger<ClientSession>();
        _trim = new MemoryTrim(pools.Deadlines, () => Config.Proxy.MemoryTrimDelay, loggerFactory.CreateLogger<MemoryTrim>());
    }

    /// <summary>Heap compaction once clients stop coming and going (memory_trim_delay): told of every connect and disconnect.</summary>
    private readonly MemoryTrim _trim;

    /// <summary>The config snapshot in force (the pools' own: a reload replaces it there).</summary>
    public ProxyConfig Config => Pools.Config;

    /// <summary>Client secrets in force (the pools' own).</summary>
    public UserList Users => Pools.Users;

    /// <summary>Pools.</summary>
    public PoolManager Pools { get; }

    /// <summary>The clock (the pools' own): timeouts and activity timestamps.</summary>
    public TimeProvider Time => Pools.Time;

    /// <summary>TLS toward clients: the certificate files, loaded when first needed and again when they change.</summary>
    public ClientTls ClientTls { get; } = new();

    /// <summary>Proxy-issued cancel keys.</summary>
    public CancelKeyMap CancelKeys { get; } = new();

    /// <summary>Peering: the cancel keys being forwarded to peers now (a key that comes back meanwhile is a loop).</summary>
    public PeerCancelGuard PeerCancels { get; } = new();

    /// <summary>How peer_dns names are resolved (tests give their own).</summary>
    public Func<string, CancellationToken, Task<System.Net.IPAddress[]>> ResolvePeers { get; set; } =
        static (name, ct) => System.Net.Dns.GetHostAddressesAsync(name, ct);

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

    /// <summary>New logins are refused (57P01): the drain, or a SHUTDOWN WAIT_FOR_SERVERS.</summary>
    public bool RefusesLogins => Volatile.Read(ref _draining) || Volatile.Read(ref _loginsStopped);

    /// <summary>Refuses new logins from now on, leaving logged-in clients be (SHUTDOWN WAIT_FOR_SERVERS).</summary>
    public void StopLogins() => Volatile.Write(ref _loginsStopped, true);

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

    /// <summary>How the admin console's SHUTDOWN asked the process to stop (None: it did not; a signal may have).</summary>
    public ShutdownMode RequestedShutdown { get; private set; }

    /// <summary>Set by the host: stops it as SIGTERM does (the host then reads <see cref="RequestedShutdown"/>).</summary>
    public Action? StopHost { get; set; }

    /// <summary>
    /// Set by the host: re-reads the config and auth files and applies them (SIGHUP, the console's RELOAD). Returns null
    /// when applied, else why not (the old config stays).
    /// </summary>
    public Func<string?>? Reload { get; set; }

    /// <summary>The console's SHUTDOWN: records how, and stops the host. False when there is no host to stop.</summary>
    public bool RequestShutdown(ShutdownMode mode)
    {
        if (StopHost is not { } stop)
        {
            return false;
        }

        RequestedShutdown = mode;
        stop();
        return true;
    }

    /// <summary>
    /// After a reload removed databases: their clients are closed at their transaction boundaries (asked every 100 ms
    /// until none is left; one loop at a time).
    /// </summary>
    public void CloseClientsOfRemovedPools()
    {
        if (Interlocked.Exchange(ref _closingRemoved, 1) == 0)
        {
            _ = CloseRemovedLoopAsync();
        }
    }

    private int _closingRemoved;

    private async Task CloseRemovedLoopAsync()
    {
        try
        {
            while (!Draining)
            {
                bool left = false;
                foreach (ICancelTarget target in CancelKeys.Targets)
                {
                    if (target is ClientSession { Pool.Removed: true } session)
                    {
                        session.CheckDrain();
                        left = true;
                    }
                }

                if (!left)
                {
                    return;
                }

                await Task.Delay(100).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _closingRemoved, 0);
        }
    }

    private readonly Diagnostics.KeyedCounters _refusals = new();

    /// <summary>A client was refused before it logged in (to a pool, or to the console), with <paramref name="sqlState"/>.</summary>
    internal void LoginRefused(string sqlState) => _refusals.Increment(sqlState);

    /// <summary>
    /// Logins refused, by SQLSTATE: only the code labels them, never the database or user the client named (a
    /// stranger could make up any number of those).
    /// </summary>
    public KeyValuePair<string, long>[] LoginRefusals => _refusals.Read();

    /// <summary>
    /// Counts a new client, connected at <paramref name="connectedAt"/> (a timestamp of <see cref="Time"/>); false when
    /// max_client_conn is already reached (the count is not taken).
    /// </summary>
    public bool TryAddClient(long connectedAt)
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
                _trim.Note(connectedAt);
                return true;
            }
        }
    }

    /// <summary>Uncounts a client.</summary>
    public void RemoveClient()
    {
        Interlocked.Decrement(ref _clients);
        _trim.Note(Time.GetTimestamp());
    }

    /// <summary>The process's deadlines (the pools'): each logged-in session with a timeout configured is one entry.</summary>
    internal DeadlineQueue Deadlines => Pools.Deadlines;
}

/// <summary>The admin console's SHUTDOWN forms (PgBouncer's).</summary>
public enum ShutdownMode
{
    /// <summary>No SHUTDOWN was issued.</summary>
    None,

    /// <summary>SHUTDOWN: close everything now and exit.</summary>
    Immediate,

    /// <summary>SHUTDOWN WAIT_FOR_SERVERS: stop taking clients, pause, exit once every server is released.</summary>
    WaitForServers,

    /// <summary>SHUTDOWN WAIT_FOR_CLIENTS: the SIGTERM drain (readiness fails, shutdown_delay, clients closed at their boundary).</summary>
    WaitForClients,
}
