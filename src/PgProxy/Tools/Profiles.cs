namespace PgProxy.Tools;

/// <summary>
/// <c>pgproxy init --profile NAME</c>: a commented proxy.toml for one of the three places PgProxy runs, each value
/// with the reason for it. The numbers follow the application-side pool guides PgProxy grew from (SQLAlchemy's
/// pool_size, max_overflow, pool_timeout, pool_recycle, pool_pre_ping), moved to the proxy side.
/// </summary>
internal static class Profiles
{
    /// <summary>The profiles, with what each is for.</summary>
    public static readonly (string Name, string Purpose)[] All =
    [
        ("sidecar", "a sidecar in each Kubernetes pod: the pod's application connects over localhost"),
        ("lambda", "the front door many AWS Lambda invocations share: a small always-on service in the VPC"),
        ("local-dev", "a developer's laptop: a local PostgreSQL, no passwords"),
    ];

    /// <summary>The profile's proxy.toml; null for an unknown name.</summary>
    public static string? Render(string name) => name switch
    {
        "sidecar" => Sidecar,
        "lambda" => Lambda,
        "local-dev" => LocalDev,
        _ => null,
    };

    private const string Sidecar = """
        # PgProxy, profile "sidecar" (pgproxy init --profile sidecar): one PgProxy in each application pod, started
        # before the application and stopped after it (a native sidecar). Check it with `pgproxy check --config FILE`
        # and the connection budget with `pgproxy budget --config FILE --replicas <pods>`.

        [proxy]
        # Only the pod's own application connects: loopback, nothing exposed.
        listen = ["127.0.0.1:6432"]
        # Transaction mode: the application's workers share a few servers; prepared statements and session state keep
        # working (see the README), so drivers need no pooler-specific settings.
        pool_mode = "transaction"
        # Each pod's share of the database: pods x (pool_size + reserve_pool_size) must fit max_connections, which
        # `pgproxy budget --replicas N` checks. 5 is SQLAlchemy's default pool_size, now for the whole pod.
        default_pool_size = 5
        # SQLAlchemy's max_overflow, moved here: a few more servers for a burst, once clients have waited this long.
        reserve_pool_size = 2
        reserve_pool_timeout = "3s"
        # The pod's workers x their own pool_size + max_overflow (say 8 x 15), with room to spare.
        max_client_conn = 200
        # SQLAlchemy's pool_timeout: a request that cannot get a server in time fails with a clear 53300 instead of
        # hanging until the load balancer gives up.
        query_wait_timeout = "10s"
        # pool_recycle: servers are replaced hourly (with jitter) and closed after a minute unused.
        server_lifetime = "1h"
        server_idle_timeout = "60s"
        # pool_pre_ping: a server idle this long is checked before a client gets it.
        server_check_delay = "30s"
        # The application's own pool keeps idle connections open on purpose: do not cut them.
        client_idle_timeout = "0"
        # A transaction left open (a bug, a stuck request) holds a server: end it.
        idle_transaction_timeout = "60s"
        # SIGTERM: /readyz fails at once and clients are served for shutdown_delay while Kubernetes takes the pod out
        # of its Service; then the drain. Keep both under the pod's terminationGracePeriodSeconds (30 s by default).
        shutdown_delay = "5s"
        shutdown_timeout = "20s"
        # TLS toward the database when it offers it; set verify-full with server_tls_ca_file for a managed one.
        server_tls_sslmode = "prefer"

        [auth]
        # SCRAM from a userlist mounted from a Secret ("user" "password" or "user" "SCRAM-SHA-256$...").
        type = "scram-sha-256"
        file = "userlist.txt"

        [log]
        # One JSON object per line, for the cluster's log shipper.
        level = "info"
        format = "json"

        [http]
        # /healthz (liveness), /readyz (readiness) and /metrics, on the pod's address for the kubelet and Prometheus.
        listen = "0.0.0.0:9127"

        [databases."*"]
        # Every database name the application asks for, on the database server (a Service name, or the managed
        # database's endpoint).
        host = "postgres.default.svc.cluster.local"
        port = 5432

        """;

    private const string Lambda = """
        # PgProxy, profile "lambda" (pgproxy init --profile lambda): the front door that lets many AWS Lambda
        # invocations share a few database connections. PgProxy runs as a small always-on service in the VPC (ECS or
        # EC2 behind an NLB); every invocation opens one connection to it (the application keeps no pool: NullPool).
        # Check it with `pgproxy check --config FILE` and `pgproxy budget --config FILE --replicas <tasks>`.

        [proxy]
        # Reached from the functions' subnets through the load balancer.
        listen = ["0.0.0.0:6432"]
        # Transaction mode: thousands of invocations, a few servers; prepared statements keep working.
        pool_mode = "transaction"
        # The whole fleet shares these: tasks x (pool_size + reserve_pool_size) must fit max_connections.
        default_pool_size = 20
        reserve_pool_size = 5
        reserve_pool_timeout = "2s"
        # Every concurrent invocation holds one client connection (and a frozen one may keep it a while).
        max_client_conn = 5000
        # Lambda timeouts are short: fail fast (53300) and let the caller retry, rather than time the function out.
        query_wait_timeout = "5s"
        client_login_timeout = "5s"
        # A frozen or timed-out execution environment leaves its connection open: close it after 5 minutes idle.
        client_idle_timeout = "300s"
        # An invocation that died inside a transaction must not hold a server for long.
        idle_transaction_timeout = "30s"
        # A runaway statement is canceled on the server after this long (above the function's own timeout).
        query_timeout = "60s"
        server_lifetime = "1h"
        server_idle_timeout = "300s"
        server_check_delay = "30s"
        shutdown_delay = "10s"
        shutdown_timeout = "60s"
        # TLS on both legs: the functions' traffic crosses the VPC. Clients connect with sslmode=require (or
        # verify-full against the CA that signed server.crt); SCRAM binds to the certificate (channel binding).
        client_tls_sslmode = "require"
        client_tls_cert_file = "tls/server.crt"
        client_tls_key_file = "tls/server.key"
        # RDS and Aurora: the region's CA bundle (https://truststore.pki.rds.amazonaws.com), checked with the host name.
        server_tls_sslmode = "verify-full"
        server_tls_ca_file = "tls/rds-ca.pem"

        [auth]
        type = "scram-sha-256"
        file = "userlist.txt"

        [log]
        level = "info"
        format = "json"

        [http]
        # The load balancer's health check and Prometheus (or the OpenTelemetry collector).
        listen = "0.0.0.0:9127"

        [databases."*"]
        host = "mydb.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com"
        port = 5432

        """;

    private const string LocalDev = """
        # PgProxy, profile "local-dev" (pgproxy init --profile local-dev): a developer's laptop, in front of a local
        # PostgreSQL. The same pool mode as production, so what transaction mode changes shows up here first.

        [proxy]
        listen = ["127.0.0.1:6432"]
        pool_mode = "transaction"
        # A handful of servers is plenty, and shows quickly when code holds connections it should give back.
        default_pool_size = 5
        # Wait a while for a server (a debugger paused inside a transaction), but never hang.
        query_wait_timeout = "30s"
        server_idle_timeout = "60s"
        shutdown_delay = "0"
        shutdown_timeout = "5s"

        [auth]
        # No passwords on a laptop (PostgreSQL's own pg_hba decides who reaches it).
        type = "trust"

        [log]
        # Readable lines; "debug" also shows each link, pin and parameter sync.
        level = "info"
        format = "text"

        [http]
        listen = "127.0.0.1:9127"

        [admin]
        # psql "host=127.0.0.1 port=6432 dbname=pgproxy user=postgres" -c "SHOW POOLS"
        admin_users = ["postgres"]

        [databases."*"]
        host = "127.0.0.1"
        port = 5432

        """;
}
