using System.Net;
using System.Net.Sockets;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using Npgsql;
using Testcontainers.PostgreSql;
using Xunit;

namespace PgProxy.Testing;

/// <summary>
/// A real PostgreSQL for the integration tests, from one of three sources:
/// <list type="bullet">
/// <item>by default, initdb into a temp dir and pg_ctl start on a free loopback port, as the "postgres" OS user when
/// running as root (initdb refuses root);</item>
/// <item>with PROXY_TEST_POSTGRES=container, a Testcontainers PostgreSQL container (image PROXY_TEST_PG_IMAGE, default
/// the locally built pgproxy-test-postgres:15; any image with the official image's POSTGRES_* interface works), its
/// port published on 127.0.0.1 only;</item>
/// <item>with PROXY_TEST_PG=host:port, that server (superuser "postgres", password <see cref="SuperPassword"/>).</item>
/// </list>
/// Creates the roles and databases the tests use: alice (SCRAM), bob (md5) and database appdb.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    /// <summary>Superuser password of the throwaway cluster.</summary>
    public const string SuperPassword = "pgproxy-super";

    /// <summary>SCRAM user.</summary>
    public const string Alice = "alice";

    /// <summary>Alice's password.</summary>
    public const string AlicePassword = "alice-secret";

    /// <summary>md5 user.</summary>
    public const string Bob = "bob";

    /// <summary>Bob's password.</summary>
    public const string BobPassword = "bob-secret";

    /// <summary>The test database.</summary>
    public const string Database = "appdb";

    private string? _dir;
    private string? _binDir;
    private bool _external;
    private PostgreSqlContainer? _container;

    /// <summary>Server host.</summary>
    public string Host { get; private set; } = "127.0.0.1";

    /// <summary>Server port.</summary>
    public int Port { get; private set; }

    /// <summary>Directory of psql and pgbench.</summary>
    public string BinDir => _binDir ?? "/usr/bin";

    /// <summary>Alice's SCRAM verifier as stored in pg_authid (for SCRAM passthrough tests).</summary>
    public string AliceVerifier { get; private set; } = "";

    /// <summary>A superuser connection string straight to PostgreSQL.</summary>
    public string AdminConnectionString(string database = "postgres") =>
        $"Host={Host};Port={Port};Username=postgres;Password={SuperPassword};Database={database};Pooling=false";

    /// <inheritdoc />
    public async ValueTask InitializeAsync()
    {
        string? external = Environment.GetEnvironmentVariable("PROXY_TEST_PG");
        if (!string.IsNullOrEmpty(external))
        {
            _external = true;
            int colon = external.LastIndexOf(':');
            Host = external[..colon];
            Port = int.Parse(external[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            _binDir = FindBinDir();
        }
        else if (string.Equals(Environment.GetEnvironmentVariable("PROXY_TEST_POSTGRES"), "container", StringComparison.Ordinal))
        {
            await StartContainerAsync();
        }
        else
        {
            await StartClusterAsync();
        }

        await CreateObjectsAsync();
    }

    private static string FindBinDir()
    {
        string? env = Environment.GetEnvironmentVariable("PG_BIN");
        if (!string.IsNullOrEmpty(env))
        {
            return env;
        }

        const string root = "/usr/lib/postgresql";
        if (Directory.Exists(root))
        {
            foreach (string dir in Directory.GetDirectories(root).OrderByDescending(d => int.TryParse(Path.GetFileName(d), out int v) ? v : 0))
            {
                if (File.Exists(Path.Combine(dir, "bin", "initdb")))
                {
                    return Path.Combine(dir, "bin");
                }
            }
        }

        throw new InvalidOperationException("PostgreSQL server binaries not found: install postgresql (the test script does) or set PG_BIN");
    }

    private static bool IsRoot => Environment.UserName == "root";

    private async Task StartClusterAsync()
    {
        _binDir = FindBinDir();
        _dir = Path.Combine(Path.GetTempPath(), "pgproxy-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        string pwfile = Path.Combine(_dir, "pw");
        await File.WriteAllTextAsync(pwfile, SuperPassword + "\n");
        if (IsRoot)
        {
            await RunAsync("chown", ["-R", "postgres:", _dir], TimeSpan.FromSeconds(10));
        }

        Port = Await.FreePort();
        string data = Path.Combine(_dir, "data");
        await RunPgAsync("initdb", ["-D", data, "-U", "postgres", "--auth-host=scram-sha-256", "--auth-local=trust", "--pwfile", pwfile, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], TimeSpan.FromMinutes(2));
        await File.AppendAllTextAsync(Path.Combine(data, "pg_hba.conf"), "\nhost all all 127.0.0.1/32 scram-sha-256\n");
        await RunPgAsync("pg_ctl", ["-D", data, "-o", ServerOptions, "-l", Path.Combine(_dir, "postgres.log"), "-w", "-t", "60", "start"], TimeSpan.FromMinutes(2));
    }

    private async Task StartContainerAsync()
    {
        string image = Environment.GetEnvironmentVariable("PROXY_TEST_PG_IMAGE") is { Length: > 0 } named ? named : "pgproxy-test-postgres:15";
        _binDir = Directory.Exists("/usr/lib/postgresql") ? FindBinDir() : "/usr/bin";
        _container = new PostgreSqlBuilder(image)
            .WithUsername("postgres")
            .WithPassword(SuperPassword)
            .WithDatabase("postgres")
            .WithCommand("-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "shared_buffers=64MB")
            .WithPortBinding(5432, assignRandomHostPort: true)
            // Publish on loopback only (Docker's default is every interface).
            .WithCreateParameterModifier(p =>
            {
                foreach (IList<Docker.DotNet.Models.PortBinding> bindings in p.HostConfig?.PortBindings?.Values ?? [])
                {
                    foreach (Docker.DotNet.Models.PortBinding binding in bindings)
                    {
                        binding.HostIP = "127.0.0.1";
                    }
                }
            })
            .WithWaitStrategy(Wait.ForUnixContainer().AddCustomWaitStrategy(new AcceptsLogins()))
            .Build();
        await _container.StartAsync();
        Host = _container.Hostname;
        Port = _container.GetMappedPublicPort(5432);
    }

    /// <summary>Ready when a superuser login over the published port succeeds (any image, any init sequence).</summary>
    private sealed class AcceptsLogins : IWaitUntil
    {
        public async Task<bool> UntilAsync(IContainer container)
        {
            var cs = new NpgsqlConnectionStringBuilder
            {
                Host = container.Hostname,
                Port = container.GetMappedPublicPort(5432),
                Username = "postgres",
                Password = SuperPassword,
                Database = "postgres",
                Pooling = false,
                Timeout = 3,
            };
            try
            {
                await using var conn = new NpgsqlConnection(cs.ConnectionString);
                await conn.OpenAsync();
                return true;
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or TimeoutException)
            {
                return false;
            }
        }
    }

    private Task<ProcessRunner.Result> RunPgAsync(string tool, string[] args, TimeSpan timeout)
    {
        string exe = Path.Combine(_binDir!, tool);
        return IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", exe, .. args], timeout) : RunAsync(exe, args, timeout);
    }

    private static async Task<ProcessRunner.Result> RunAsync(string file, string[] args, TimeSpan timeout)
    {
        ProcessRunner.Result result = await ProcessRunner.RunAsync(file, args, timeout);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({result.ExitCode}): {result.All}");
        }

        return result;
    }

    private async Task CreateObjectsAsync()
    {
        await using var conn = new NpgsqlConnection(AdminConnectionString());
        await conn.OpenAsync();
        foreach (string sql in new[]
        {
            $"DROP DATABASE IF EXISTS {Database}",
            $"DROP ROLE IF EXISTS {Alice}",
            $"DROP ROLE IF EXISTS {Bob}",
            "SET password_encryption = 'scram-sha-256'",
            $"CREATE ROLE {Alice} LOGIN PASSWORD '{AlicePassword}'",
            "SET password_encryption = 'md5'",
            $"CREATE ROLE {Bob} LOGIN PASSWORD '{BobPassword}'",
            $"CREATE DATABASE {Database} OWNER {Alice}",
            $"GRANT ALL ON DATABASE {Database} TO {Bob}",
        })
        {
            await using var cmd = new NpgsqlCommand(sql, conn);
            await cmd.ExecuteNonQueryAsync();
        }

        await using (var cmd = new NpgsqlCommand($"SELECT rolpassword FROM pg_authid WHERE rolname = '{Alice}'", conn))
        {
            AliceVerifier = (string)(await cmd.ExecuteScalarAsync())!;
        }

        // bob's md5 login to the server: pg_hba's scram-sha-256 lines accept md5 secrets via md5 auth only with "md5"
        // method, so give bob a dedicated md5 line ahead of the rest.
        if (!_external && _dir is not null)
        {
            string hba = Path.Combine(_dir, "data", "pg_hba.conf");
            string text = await File.ReadAllTextAsync(hba);
            await File.WriteAllTextAsync(hba, $"host all {Bob} 127.0.0.1/32 md5\n" + text);
            await using var reload = new NpgsqlCommand("SELECT pg_reload_conf()", conn);
            await reload.ExecuteNonQueryAsync();
        }
        else if (_container is not null)
        {
            // Connections arrive from the bridge's gateway, not from 127.0.0.1.
            await using var show = new NpgsqlCommand("SHOW hba_file", conn);
            string hba = (string)(await show.ExecuteScalarAsync())!;
            ExecResult edit = await _container.ExecAsync(["sed", "-i", $"1i host all {Bob} all md5", hba]);
            if (edit.ExitCode != 0)
            {
                throw new InvalidOperationException($"editing {hba} in the container failed: {edit.Stderr}");
            }

            await using var reload = new NpgsqlCommand("SELECT pg_reload_conf()", conn);
            await reload.ExecuteNonQueryAsync();
        }

        await using var app = new NpgsqlConnection(AdminConnectionString(Database));
        await app.OpenAsync();
        await using var grant = new NpgsqlCommand($"GRANT ALL ON SCHEMA public TO {Bob}; GRANT ALL ON SCHEMA public TO {Alice}", app);
        await grant.ExecuteNonQueryAsync();
    }

    /// <summary>Stops the fixture's own cluster (fault tests); not available with PROXY_TEST_PG.</summary>
    public Task StopAsync() => PgCtlAsync("-m", "fast", "-w", "stop");

    /// <summary>Starts the fixture's own cluster again.</summary>
    public Task StartAsync() => PgCtlAsync("-w", "-t", "60", "-l", Path.Combine(_dir ?? "", "postgres.log"), "-o", ServerOptions, "start");

    /// <summary>pg_ctl restart -m fast.</summary>
    public Task RestartAsync() =>
        // -l matters: without it the new postmaster inherits pg_ctl's output pipes and the run never "ends".
        PgCtlAsync("-m", "fast", "-w", "-t", "60", "-l", Path.Combine(_dir ?? "", "postgres.log"), "-o", ServerOptions, "restart");

    private string ServerOptions => $"-p {Port} -k {_dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off " +
                                    "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB";

    private async Task PgCtlAsync(params string[] args)
    {
        if (_external || _dir is null)
        {
            throw new InvalidOperationException("this test stops and starts PostgreSQL: it needs the fixture's own cluster, not PROXY_TEST_PG or a container");
        }

        await RunPgAsync("pg_ctl", ["-D", Path.Combine(_dir, "data"), .. args], TimeSpan.FromMinutes(2));
    }

    /// <summary>
    /// Turns TLS on in the fixture's own cluster with this certificate and key (PEM files), or off (null): the files are
    /// copied into the data directory, ssl set with ALTER SYSTEM and the configuration reloaded; returns once new
    /// connections see the change. Tests that turn it on turn it off again.
    /// </summary>
    public async Task SetSslAsync(string? certFile, string? keyFile)
    {
        if (_external || _dir is null)
        {
            throw new InvalidOperationException("this test turns TLS on in PostgreSQL: it needs the fixture's own cluster, not PROXY_TEST_PG or a container");
        }

        string data = Path.Combine(_dir, "data");
        if (certFile is not null && keyFile is not null)
        {
            File.Copy(certFile, Path.Combine(data, "test-server.pem"), overwrite: true);
            File.Copy(keyFile, Path.Combine(data, "test-server.key"), overwrite: true);
            File.SetUnixFileMode(Path.Combine(data, "test-server.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (IsRoot)
            {
                await RunAsync("chown", ["postgres:", Path.Combine(data, "test-server.pem"), Path.Combine(data, "test-server.key")], TimeSpan.FromSeconds(10));
            }

            await ExecuteAsync("ALTER SYSTEM SET ssl_cert_file = 'test-server.pem'", "postgres");
            await ExecuteAsync("ALTER SYSTEM SET ssl_key_file = 'test-server.key'", "postgres");
        }

        await ExecuteAsync(certFile is null ? "ALTER SYSTEM SET ssl = off" : "ALTER SYSTEM SET ssl = on", "postgres");
        await ExecuteAsync("SELECT pg_reload_conf()", "postgres");
        string expected = certFile is null ? "off" : "on";
        string? fingerprint = certFile is null ? null : File.ReadAllText(certFile).Trim();
        await Await.UntilAsync(async () =>
        {
            // The postmaster applies the reload by itself, a moment later; a new session shows whether it has.
            await using var conn = new NpgsqlConnection(AdminConnectionString() + ";SSL Mode=Disable");
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SHOW ssl", conn);
            if ((string)(await cmd.ExecuteScalarAsync())! != expected)
            {
                return false;
            }

            if (fingerprint is null)
            {
                return true;
            }

            // On: the server presents the new certificate (a reload with a broken file would keep the old one).
            using var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(Host, Port);
            System.Net.Sockets.NetworkStream stream = tcp.GetStream();
            await stream.WriteAsync(new byte[] { 0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F });
            byte[] answer = new byte[1];
            if (await stream.ReadAsync(answer) != 1 || answer[0] != (byte)'S')
            {
                return false;
            }

            // Accepted only when it is the certificate just installed.
            await using var tls = new System.Net.Security.SslStream(stream, false, (_, presented, _, _) => presented is not null &&
                System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(presented.GetRawCertData()).ExportCertificatePem().Trim() == fingerprint);
            try
            {
                await tls.AuthenticateAsClientAsync("localhost");
                return true;
            }
            catch (System.Security.Authentication.AuthenticationException)
            {
                return false;
            }
        }, CancellationToken.None, seconds: 30);
    }

    /// <summary>The server log (attached to failures).</summary>
    public string ReadLog() => _dir is not null && File.Exists(Path.Combine(_dir, "postgres.log")) ? File.ReadAllText(Path.Combine(_dir, "postgres.log")) : "";

    /// <summary>Runs a query straight on the server and returns the first column of the first row.</summary>
    public async Task<T> ScalarAsync<T>(string sql, string database = Database, CancellationToken ct = default)
    {
        await using var conn = new NpgsqlConnection(AdminConnectionString(database));
        await conn.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Runs a statement straight on the server.</summary>
    public async Task ExecuteAsync(string sql, string database = Database, CancellationToken ct = default)
    {
        await using var conn = new NpgsqlConnection(AdminConnectionString(database));
        await conn.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_container is not null)
        {
            // No Ryuk here (it cannot be pulled): the fixture removes its own container.
            await _container.DisposeAsync();
            return;
        }

        if (_external || _dir is null)
        {
            return;
        }

        try
        {
            await RunPgAsync("pg_ctl", ["-D", Path.Combine(_dir, "data"), "-m", "fast", "-w", "stop"], TimeSpan.FromMinutes(1));
        }
        finally
        {
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }
    }
}
