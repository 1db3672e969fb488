using System.Collections.Frozen;

namespace PgProxy.Core.Configuration;

/// <summary>Pool modes (PgBouncer's names).</summary>
public enum PoolMode
{
    /// <summary>A backend is linked to a client for the client's whole session.</summary>
    Session,
    /// <summary>A backend is linked for one transaction.</summary>
    Transaction,
    /// <summary>A backend is linked for one statement.</summary>
    Statement,
}

/// <summary>Client authentication methods.</summary>
public enum AuthType
{
    /// <summary>No password asked (local development only).</summary>
    Trust,
    /// <summary>md5 challenge; users with a SCRAM verifier are asked for SCRAM instead (as PgBouncer does).</summary>
    Md5,
    /// <summary>SCRAM-SHA-256 (RFC 7677).</summary>
    ScramSha256,
    /// <summary>
    /// PostgreSQL's cert method: a client logs in as the common name of the TLS client certificate it showed (needs
    /// client_tls_sslmode verify-ca or verify-full); no password is asked.
    /// </summary>
    Cert,
}

/// <summary>Log output format.</summary>
public enum LogFormat
{
    /// <summary>One readable line per event.</summary>
    Text,
    /// <summary>One JSON object per event.</summary>
    Json,
}

/// <summary>
/// The immutable, validated configuration snapshot the runtime reads. Built by <see cref="ConfigLoader"/> from TOML.
/// How to add a setting: the property here (with its default), its parsing and validation in
/// <see cref="ConfigLoader"/>, its entry in proxy.toml.example, its line in <see cref="ConfigPrinter"/> (pgproxy check),
/// and a test.
/// </summary>
public sealed record ProxyConfig
{
    /// <summary>[proxy]: listener, pool defaults and timeouts.</summary>
    public ProxySection Proxy { get; init; } = new();

    /// <summary>[auth]: client authentication.</summary>
    public AuthSection Auth { get; init; } = new();

    /// <summary>[log]: logging.</summary>
    public LogSection Log { get; init; } = new();

    /// <summary>[http]: the operations port (probes and metrics).</summary>
    public HttpSection Http { get; init; } = new();

    /// <summary>[admin]: who may use the admin console (the virtual databases pgproxy and pgbouncer).</summary>
    public AdminSection Admin { get; init; } = new();

    /// <summary>[otel]: OTLP export of the metrics.</summary>
    public OtelSection Otel { get; init; } = new();

    /// <summary>[databases.NAME] entries; "*" is the fallback.</summary>
    public FrozenDictionary<string, DatabaseConfig> Databases { get; init; } = FrozenDictionary<string, DatabaseConfig>.Empty;

    /// <summary>[users.NAME] entries.</summary>
    public FrozenDictionary<string, UserConfig> Users { get; init; } = FrozenDictionary<string, UserConfig>.Empty;

    /// <summary>[peers.N] entries: the other PgProxy processes a CancelRequest for their clients is forwarded to.</summary>
    public FrozenDictionary<int, PeerConfig> Peers { get; init; } = FrozenDictionary<int, PeerConfig>.Empty;

    /// <summary>The file this snapshot was read from (for relative paths and messages).</summary>
    public string? SourcePath { get; init; }

    /// <summary>Finds the database entry for a client's requested database: exact name, else "*".</summary>
    public DatabaseConfig? FindDatabase(string name)
    {
        if (Databases.TryGetValue(name, out DatabaseConfig? db))
        {
            return db;
        }

        return Databases.TryGetValue("*", out DatabaseConfig? fallback) ? fallback : null;
    }
}

/// <summary>[proxy] section.</summary>
public sealed record ProxySection
{
    /// <summary>Addresses to accept clients on ("host:port"). Default 127.0.0.1:6432.</summary>
    public IReadOnlyList<string> Listen { get; init; } = ["127.0.0.1:6432"];

    /// <summary>Default pool mode: session, transaction or statement. Default session.</summary>
    public PoolMode PoolMode { get; init; } = PoolMode.Session;

    /// <summary>Backends per (database, user) pool. Default 20.</summary>
    public int DefaultPoolSize { get; init; } = 20;

    /// <summary>Backends kept open per pool even when idle. Default 0.</summary>
    public int MinPoolSize { get; init; }

    /// <summary>Extra backends a pool may open when a client has waited <see cref="ReservePoolTimeout"/>. Default 0.</summary>
    public int ReservePoolSize { get; init; }

    /// <summary>How long a client waits before the reserve pool may be used. Default 5 s.</summary>
    public TimeSpan ReservePoolTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Backends per database across all its pools; 0 = no limit. Default 0.</summary>
    public int MaxDbConnections { get; init; }

    /// <summary>Client connections the proxy accepts in all. Default 100.</summary>
    public int MaxClientConn { get; init; } = 100;

    /// <summary>
    /// Threads that run the sockets' events (and the relaying that follows them); 0 = one per core. Only a restart
    /// changes it. Default 0.
    /// </summary>
    public int IoThreads { get; init; }

    /// <summary>How long a client may wait for a backend before it gets an error; 0 = forever. Default 120 s.</summary>
    public TimeSpan QueryWaitTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>How long a client has to finish startup and authentication; 0 = forever. Default 60 s.</summary>
    public TimeSpan ClientLoginTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A client with no server linked and no traffic for this long is closed (57P05); 0 = never. Default 0.</summary>
    public TimeSpan ClientIdleTimeout { get; init; }

    /// <summary>A client idle inside a transaction this long is closed (25P03) and its server rolled back; 0 = never. Default 0.</summary>
    public TimeSpan IdleTransactionTimeout { get; init; }

    /// <summary>A request outstanding this long is canceled on the server and the client closed (57014); 0 = never. Default 0.</summary>
    public TimeSpan QueryTimeout { get; init; }

    /// <summary>
    /// The longest wait between connect attempts after a failed connect: a server that is down or restarting is retried
    /// after 100 ms doubling up to 500 ms (or this, if shorter) while clients wait; a login the server refuses waits
    /// this long, and new clients get the server's error at once. Default 15 s.
    /// </summary>
    public TimeSpan ServerLoginRetry { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Timeout for a backend TCP connect plus login. Default 15 s.</summary>
    public TimeSpan ServerConnectTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A backend older than this (minus up to 10% random jitter) is closed when released; 0 = never. Default 1 h.</summary>
    public TimeSpan ServerLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Idle backends above min_pool_size are closed after this long; 0 = never. Default 10 min.</summary>
    public TimeSpan ServerIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>A backend idle longer than this runs server_check_query before a client gets it; 0 = always. Default 30 s.</summary>
    public TimeSpan ServerCheckDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The pre-ping query; ";" (an empty query, the cheapest round trip) by default; empty string = no check.</summary>
    public string ServerCheckQuery { get; init; } = ";";

    /// <summary>SQL run on a backend before another client may use it (session mode); empty = none. Default DISCARD ALL.</summary>
    public string ServerResetQuery { get; init; } = "DISCARD ALL";

    /// <summary>
    /// Transaction/statement mode: protocol-level prepared statements kept per backend (LRU); clients' statements keep
    /// working whichever backend they land on. 0 turns the mapping off. Default 200.
    /// </summary>
    public int MaxPreparedStatements { get; init; } = 200;

    /// <summary>
    /// Transaction/statement mode: clients a pool may keep pinned to their servers at once (for session state: advisory
    /// locks, temp tables, WITH HOLD cursors, LISTEN, SQL prepared statements, SET ROLE). At the limit, a statement
    /// that would create such state is refused with 0A000. Null (the default): half of the pool's pool_size, rounded
    /// down, so pins always leave a server to the others. 0: no client is ever pinned (every such statement refused).
    /// </summary>
    public int? MaxPinnedClientsPerPool { get; init; }

    /// <summary>Transaction/statement mode: a client pinned longer than this is closed with a FATAL saying why. 0 (default): never.</summary>
    public TimeSpan PinTimeout { get; init; }

    /// <summary>
    /// This process's number among peers (PgBouncer's peer_id), 1 to 16383; 0 (default): no peering. Its clients'
    /// cancel keys carry it, so a CancelRequest that reaches another replica (through a Service or a load balancer) is
    /// forwarded to this one, as [peers.N] of that replica says.
    /// </summary>
    public int PeerId { get; init; }

    /// <summary>
    /// Peers found through DNS ("NAME:PORT", a Kubernetes headless Service): a CancelRequest for another replica's client
    /// that no [peers.N] names is sent to every address NAME resolves to (this replica's own excepted), and the owner
    /// acts on it. A request that comes from one of those addresses was forwarded already and is not sent on. Empty
    /// (default): none.
    /// </summary>
    public string PeerDns { get; init; } = "";

    /// <summary>Reuse idle backends FIFO instead of LIFO. Default false.</summary>
    public bool ServerRoundRobin { get; init; }

    /// <summary>
    /// On SIGTERM, how long /readyz fails before the proxy stops accepting clients, so that Kubernetes can take the pod
    /// out of its Service first. Default 5 s; "0" stops at once.
    /// </summary>
    public TimeSpan ShutdownDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After shutdown_delay: how long running transactions get to finish (clients between transactions are closed at
    /// once, new logins refused) before whatever is left is closed. Default 30 s.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often the running totals are snapshotted for the averages (SHOW STATS, SHOW STATS_AVERAGES): the averages
    /// cover the time since the snapshot before the last one. PgBouncer's stats_period. Default 60 s.
    /// </summary>
    public TimeSpan StatsPeriod { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Once no client has connected or disconnected for this long, the proxy compacts its heap and returns the free
    /// memory to the operating system (one blocking collection: measured 10 ms with 5 000 idle clients, 18 ms with
    /// 15 000), if enough was allocated since the last time. A burst of logins otherwise leaves its garbage resident, since
    /// relaying allocates nothing and so never collects it. Default 5 s; "0" never does.
    /// </summary>
    public TimeSpan MemoryTrimDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// TLS toward clients (PgBouncer's client_tls_sslmode): disable (default: SSLRequest gets 'N'), allow or prefer
    /// (TLS when the client asks), require (a client must use TLS), verify-ca / verify-full (and show a certificate
    /// signed by client_tls_ca_file; verify-full: its CN is the user name).
    /// </summary>
    public TlsMode ClientTlsSslMode { get; init; } = TlsMode.Disable;

    /// <summary>The proxy's certificate for clients (PEM, with its chain). Required unless client_tls_sslmode is disable.</summary>
    public string? ClientTlsCertFile { get; init; }

    /// <summary>Its private key (PEM, unencrypted).</summary>
    public string? ClientTlsKeyFile { get; init; }

    /// <summary>The CAs that sign client certificates (PEM); required for verify-ca and verify-full.</summary>
    public string? ClientTlsCaFile { get; init; }

    /// <summary>TLS versions offered to clients: "secure" (default: TLS 1.2 and 1.3), "all", or a list of tlsv1.2, tlsv1.3.</summary>
    public System.Security.Authentication.SslProtocols ClientTlsProtocols { get; init; } =
        System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;

    /// <summary>
    /// Cipher suites offered to clients for TLS 1.2 (PgBouncer's client_tls_ciphers): "default" (the system's OpenSSL
    /// defaults; secure, fast, normal and all mean the same), or suites by OpenSSL or IANA name separated by ':'.
    /// </summary>
    public string ClientTlsCiphers { get; init; } = "default";

    /// <summary>
    /// TLS toward servers, for every database that does not set its own (PgBouncer's server_tls_* keys): the mode, the
    /// CA file, the client certificate and key, the TLS versions, and direct TLS (PostgreSQL 17+).
    /// </summary>
    public ServerTlsSettings ServerTls { get; init; } = new();
}

/// <summary>
/// TLS toward a server. <see cref="Mode"/>: disable (plaintext), allow or prefer (default: TLS when the server offers
/// it, else plaintext), require (TLS, no certificate checks), verify-ca (the server's certificate chains to
/// <see cref="CaFile"/>, or to the system's CAs when unset), verify-full (and names the host).
/// </summary>
public sealed record ServerTlsSettings
{
    /// <summary>server_tls_sslmode. Default prefer, as PgBouncer and libpq.</summary>
    public TlsMode Mode { get; init; } = TlsMode.Prefer;

    /// <summary>server_tls_ca_file: the CAs that sign the server's certificate (PEM); unset: the system's.</summary>
    public string? CaFile { get; init; }

    /// <summary>server_tls_cert_file: a client certificate for the server (PEM), for PostgreSQL's clientcert / cert auth.</summary>
    public string? CertFile { get; init; }

    /// <summary>server_tls_key_file: its private key (PEM, unencrypted).</summary>
    public string? KeyFile { get; init; }

    /// <summary>server_tls_protocols. Default TLS 1.2 and 1.3.</summary>
    public System.Security.Authentication.SslProtocols Protocols { get; init; } =
        System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13;

    /// <summary>server_tls_direct: the TLS handshake at once, without SSLRequest (PostgreSQL 17's sslnegotiation=direct). Default false.</summary>
    public bool Direct { get; init; }
}

/// <summary>
/// A database's own server_tls_* keys: each one set replaces [proxy]'s value, each one unset (null) inherits it, so a
/// reload or SET that changes [proxy] reaches every database that does not override that key. A file key set to ""
/// means no file (for server_tls_ca_file: the system's CAs).
/// </summary>
public sealed record ServerTlsOverride
{
    /// <summary>server_tls_sslmode.</summary>
    public TlsMode? Mode { get; init; }

    /// <summary>server_tls_ca_file ("" for none).</summary>
    public string? CaFile { get; init; }

    /// <summary>server_tls_cert_file ("" for none).</summary>
    public string? CertFile { get; init; }

    /// <summary>server_tls_key_file ("" for none).</summary>
    public string? KeyFile { get; init; }

    /// <summary>server_tls_protocols.</summary>
    public System.Security.Authentication.SslProtocols? Protocols { get; init; }

    /// <summary>server_tls_direct.</summary>
    public bool? Direct { get; init; }

    /// <summary>These keys over <paramref name="inherited"/>.</summary>
    public ServerTlsSettings Over(ServerTlsSettings inherited) => new()
    {
        Mode = Mode ?? inherited.Mode,
        CaFile = Path(CaFile, inherited.CaFile),
        CertFile = Path(CertFile, inherited.CertFile),
        KeyFile = Path(KeyFile, inherited.KeyFile),
        Protocols = Protocols ?? inherited.Protocols,
        Direct = Direct ?? inherited.Direct,
    };

    private static string? Path(string? own, string? inherited) => own is null ? inherited : own.Length == 0 ? null : own;
}

/// <summary>PgBouncer's (and libpq's) sslmode values.</summary>
public enum TlsMode
{
    /// <summary>No TLS.</summary>
    Disable,

    /// <summary>TLS if the other side wants it.</summary>
    Allow,

    /// <summary>TLS if the other side can.</summary>
    Prefer,

    /// <summary>TLS always, no certificate checks.</summary>
    Require,

    /// <summary>TLS, and the peer's certificate is signed by a trusted CA.</summary>
    VerifyCa,

    /// <summary>TLS, a trusted certificate, and its name matches (the host name; for a client, the user name).</summary>
    VerifyFull,
}

/// <summary>[admin] section: users of the admin console. They log in as any user does ([auth]).</summary>
public sealed record AdminSection
{
    /// <summary>Users who may run every console command. Default none.</summary>
    public IReadOnlyList<string> AdminUsers { get; init; } = [];

    /// <summary>Users who may run the SHOW commands only. Default none.</summary>
    public IReadOnlyList<string> StatsUsers { get; init; } = [];
}

/// <summary>[http] section: the operations port, off the data path.</summary>
public sealed record HttpSection
{
    /// <summary>host:port of /healthz, /readyz and /metrics; empty disables the port. Default 127.0.0.1:9127.</summary>
    public string Listen { get; init; } = "127.0.0.1:9127";

    /// <summary>/readyz also requires a server to be reachable (a pool holds one, or a TCP connect to one succeeds). Default false.</summary>
    public bool ReadyzRequiresServer { get; init; }
}

/// <summary>[otel] section: OpenTelemetry (OTLP) export of the <c>PgProxy</c> meter.</summary>
public sealed record OtelSection
{
    /// <summary>The OTLP collector's URL (http://host:4317 for grpc, http://host:4318 for http/protobuf); empty: no export. Default empty.</summary>
    public string Endpoint { get; init; } = "";

    /// <summary>grpc or http/protobuf. Default grpc.</summary>
    public string Protocol { get; init; } = "grpc";

    /// <summary>How often the figures are exported. Default 60 s.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>[auth] section.</summary>
public sealed record AuthSection
{
    /// <summary>Client authentication method. Default scram-sha-256.</summary>
    public AuthType Type { get; init; } = AuthType.ScramSha256;

    /// <summary>PgBouncer-style userlist file ("user" "secret" per line). Required unless type = trust or cert.</summary>
    public string? File { get; init; }
}

/// <summary>[log] section.</summary>
public sealed record LogSection
{
    /// <summary>Minimum level: trace, debug, info, warning, error. Default info.</summary>
    public string Level { get; init; } = "info";

    /// <summary>text or json. Default text.</summary>
    public LogFormat Format { get; init; } = LogFormat.Text;
}

/// <summary>[databases.NAME]: where a client-visible database lives and how its pools are sized.</summary>
public sealed record DatabaseConfig
{
    /// <summary>The client-visible name ("*" for the fallback).</summary>
    public required string Name { get; init; }

    /// <summary>Backend host name or address. Default 127.0.0.1.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Backend port. Default 5432.</summary>
    public int Port { get; init; } = 5432;

    /// <summary>Backend database name; default: the client-visible name (for "*": what the client asked for).</summary>
    public string? DbName { get; init; }

    /// <summary>When set, every client of this database uses this backend user (forced user).</summary>
    public string? User { get; init; }

    /// <summary>Password for <see cref="User"/> (or for client users without a plaintext secret).</summary>
    public string? Password { get; init; }

    /// <summary>Overrides [proxy] default_pool_size.</summary>
    public int? PoolSize { get; init; }

    /// <summary>Overrides [proxy] min_pool_size.</summary>
    public int? MinPoolSize { get; init; }

    /// <summary>Overrides [proxy] reserve_pool_size.</summary>
    public int? ReservePoolSize { get; init; }

    /// <summary>Overrides [proxy] max_db_connections.</summary>
    public int? MaxDbConnections { get; init; }

    /// <summary>Overrides [proxy] pool_mode.</summary>
    public PoolMode? PoolMode { get; init; }

    /// <summary>Overrides of [proxy]'s server_tls_* keys, each on its own.</summary>
    public ServerTlsOverride ServerTls { get; init; } = new();

    /// <summary>The backend database name for a client that asked for <paramref name="requested"/>.</summary>
    public string BackendDbName(string requested) => DbName ?? (Name == "*" ? requested : Name);
}

/// <summary>[users.NAME]: per-user overrides.</summary>
public sealed record PeerConfig
{
    /// <summary>The peer's peer_id (the section's name).</summary>
    public required int Id { get; init; }

    /// <summary>Where the peer listens for clients.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Its port. Default 6432.</summary>
    public int Port { get; init; } = 6432;
}

/// <summary>[users.NAME] section.</summary>
public sealed record UserConfig
{
    /// <summary>The user name.</summary>
    public required string Name { get; init; }

    /// <summary>Overrides the database's and [proxy]'s pool_mode.</summary>
    public PoolMode? PoolMode { get; init; }

    /// <summary>Backends this user may hold across all pools; 0 = no limit.</summary>
    public int MaxUserConnections { get; init; }
}
