using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;

namespace PgProxy.Core.Pooling;

/// <summary>Where a pool's backends connect and how they log in; <paramref name="Tls"/> null: plaintext.</summary>
public sealed record PoolTarget(string Host, int Port, string DbName, BackendCredentials Credentials, ServerTlsSettings? Tls = null);

/// <summary>A pool's effective settings: mode and sizes resolved once from [proxy], [databases.X] and [users.Y].</summary>
public sealed record PoolSettings
{
    /// <summary>Pool mode.</summary>
    public PoolMode Mode { get; init; } = PoolMode.Session;
    /// <summary>Backends before the reserve.</summary>
    public int PoolSize { get; init; } = 20;
    /// <summary>Backends kept open even when idle.</summary>
    public int MinPoolSize { get; init; }
    /// <summary>Extra backends after <see cref="ReservePoolTimeout"/>.</summary>
    public int ReservePoolSize { get; init; }
    /// <summary>
    /// The [proxy] section: timeouts, reset and check queries, max_prepared_statements and server_round_robin apply to
    /// every pool alike, so pools read them from there rather than from copies.
    /// </summary>
    public ProxySection Proxy { get; init; } = new();
}
