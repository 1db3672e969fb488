using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using PgProxy.Hosting;

namespace PgProxy.IntegrationTests;

/// <summary>
/// The <c>pgproxy</c> executable run as a user runs it, one process per test, every subcommand. By default it is the
/// build under test (<c>dotnet exec pgproxy.dll</c>); with <c>PGPROXY_EXECUTABLE</c> set, that file: the test command
/// sets it to the Native AOT build the image ships (<c>scripts/publish.sh</c>), so that the paths a trimmed native
/// build could lose (config binding, the command line, Kestrel and /metrics, JSON logs, TLS, Npgsql in
/// <c>budget</c>, signals) run in the shipped binary and not only in the JIT build the other tests host in-process.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ShippedBinaryTests(PostgresFixture pg) : IDisposable
{
    private readonly string _dir = Users(Directory.CreateTempSubdirectory("pgproxy-binary").FullName);

    [Fact(Timeout = 120_000)]
    public async Task Run_ServesScramClients_PreparedStatements_Console_Ops_Reload_AndDrainsOnSigterm()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        int port = Await.FreePort();
        int opsPort = Await.FreePort();
        string config = Config(port, opsPort, poolSize: 20);
        await using var proxy = Proxy.Start(_dir, config);
        string ops = $"http://127.0.0.1:{opsPort}";
        await proxy.UntilAsync(async () => await HttpProbe.StatusAsync(ops + "/readyz", ct) == HttpStatusCode.OK, ct);

        // SCRAM logins and named prepared statements (Npgsql prepares automatically) in transaction mode, on two
        // clients sharing the pool.
        string cs = ClientString(port);
        await using (var a = new NpgsqlConnection(cs + ";Max Auto Prepare=5;Auto Prepare Min Usages=1"))
        await using (var b = new NpgsqlConnection(cs + ";Max Auto Prepare=5;Auto Prepare Min Usages=1"))
        {
            await a.OpenAsync(ct);
            await b.OpenAsync(ct);
            for (int i = 0; i < 5; i++)
            {
                foreach (NpgsqlConnection c in new[] { a, b })
                {
                    await using var cmd = new NpgsqlCommand("SELECT $1::int * 2", c) { Parameters = { new() { Value = i } } };
                    Assert.Equal(i * 2, await cmd.ExecuteScalarAsync(ct));
                }
            }
        }

        // A wrong password and an unknown database, in PostgreSQL's own form.
        PostgresException wrong = await Assert.ThrowsAsync<PostgresException>(() => OpenAsync(cs.Replace(PostgresFixture.AlicePassword, "not-alices", StringComparison.Ordinal), ct));
        Assert.Equal("28P01", wrong.SqlState);
        PostgresException unknown = await Assert.ThrowsAsync<PostgresException>(() => OpenAsync(cs.Replace($"Database={PostgresFixture.Database}", "Database=nosuchdb", StringComparison.Ordinal), ct));
        Assert.Equal("3D000", unknown.SqlState);

        // The admin console through psql.
        ProcessRunner.Result pools = await PsqlAsync(port, "pgproxy", "SHOW POOLS", ct);
        Assert.True(pools.ExitCode == 0, pools.All);
        Assert.Contains($"{PostgresFixture.Database}|{PostgresFixture.Alice}|", pools.StdOut, StringComparison.Ordinal);

        // The ops port: /metrics in Prometheus' text format with the pool's counters, and `pgproxy health`.
        string metrics = await HttpProbe.Client.GetStringAsync(ops + "/metrics", ct);
        await PromText.CheckAsync(metrics, ct);
        Assert.True(PromText.Value(metrics, $"pgproxy_pool_logins_total{{database=\"{PostgresFixture.Database}\",user=\"{PostgresFixture.Alice}\"}}") >= 2, metrics);
        ProcessRunner.Result health = await RunAsync(["health", "--url", ops + "/healthz"], ct);
        Assert.True(health.ExitCode == 0, health.All);
        Assert.Contains("200 OK", health.StdOut, StringComparison.Ordinal);

        // SIGHUP reloads the file: the new pool size shows in SHOW CONFIG.
        await File.WriteAllTextAsync(Path.Combine(_dir, "proxy.toml"), Config(port, opsPort, poolSize: 7), ct);
        Signal(proxy.Process, "HUP");
        await proxy.UntilAsync(() => Task.FromResult(proxy.Log.Any(l => l.Contains("Reloaded", StringComparison.Ordinal))), ct);
        ProcessRunner.Result shown = await PsqlAsync(port, "pgproxy", "SHOW CONFIG", ct);
        Assert.Contains("default_pool_size|7|", shown.StdOut, StringComparison.Ordinal);

        // SIGTERM: readiness fails, the process drains and exits 0.
        Signal(proxy.Process, "TERM");
        await Await.UntilAsync(async () => await HttpProbe.StatusAsync(ops + "/readyz", ct) != HttpStatusCode.OK, ct);
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30), ct));

        // The log: one JSON object per line, with the login and the drain, and never a password.
        string[] lines = [.. proxy.Log];
        Assert.NotEmpty(lines);
        foreach (string line in lines)
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            Assert.True(doc.RootElement.TryGetProperty("@t", out _), line);
            Assert.DoesNotContain(PostgresFixture.AlicePassword, line, StringComparison.Ordinal);
        }

        Assert.Contains(lines, l => l.Contains("\"Auth\":\"SCRAM-SHA-256\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("Draining", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task Run_OffersTlsFromTheConfiguredCertificate_LogsAsText_AndRunsTheConfiguredIoThreads()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        Pki pki = Pki.Create(_dir);
        int port = Await.FreePort();
        await using var proxy = Proxy.Start(_dir, $"""
            [proxy]
            listen = "127.0.0.1:{port}"
            pool_mode = "transaction"
            shutdown_delay = "0"
            io_threads = 1
            client_tls_sslmode = "require"
            client_tls_cert_file = "{pki.ServerFile}"
            client_tls_key_file = "{pki.ServerKeyFile}"
            [auth]
            type = "scram-sha-256"
            file = "users.txt"
            [log]
            format = "text"
            [http]
            listen = ""
            {Database()}
            """);
        await proxy.UntilAsync(() => Task.FromResult(proxy.Log.Any(l => l.Contains("Listening for PostgreSQL clients", StringComparison.Ordinal))), ct);

        // verify-full against the test CA: the certificate is the configured one and the channel is TLS.
        ProcessRunner.Result tls = await PsqlAsync(port, PostgresFixture.Database, "SELECT 42", ct, $"sslmode=verify-full sslrootcert={pki.CaFile}");
        Assert.True(tls.ExitCode == 0, tls.All);
        Assert.Equal("42", tls.StdOut.Trim());
        ProcessRunner.Result plain = await PsqlAsync(port, PostgresFixture.Database, "SELECT 42", ct, "sslmode=disable");
        Assert.NotEqual(0, plain.ExitCode);

        // io_threads = 1: one socket loop thread, whatever the cores, and the start-up line says so.
        Assert.Contains(proxy.Log, l => l.Contains("(I/O threads: 1)", StringComparison.Ordinal));
        string[] threads = Directory.GetDirectories($"/proc/{proxy.Process.Id}/task")
            .Select(t => File.ReadAllText(Path.Combine(t, "comm")).Trim()).ToArray();
        Assert.Equal(["pgproxy-io-0"], threads.Where(t => t.StartsWith("pgproxy-io-", StringComparison.Ordinal)));

        Signal(proxy.Process, "TERM");
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30), ct));
        Assert.Contains(proxy.Log, l => l.Contains("logged in", StringComparison.Ordinal) && !l.StartsWith('{'));
    }

    [Fact(Timeout = 120_000)]
    public async Task Check_Init_Convert_AndBudget_RunInTheBinary()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string path = Path.Combine(_dir, "proxy.toml");
        await File.WriteAllTextAsync(path, Config(Await.FreePort(), 0, poolSize: 10).Replace("[databases.", "[databases.x]\nhost = \"127.0.0.1\"\npassword = \"db-secret\"\n[databases.", StringComparison.Ordinal), ct);

        // check: the effective settings, secrets masked.
        ProcessRunner.Result check = await RunAsync(["check", "--config", path], ct);
        Assert.True(check.ExitCode == 0, check.All);
        Assert.Contains("default_pool_size = 10", check.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("db-secret", check.All, StringComparison.Ordinal);

        // A bad value: the key and the reason, exit 1.
        await File.WriteAllTextAsync(path, "[proxy]\npool_mode = \"sometimes\"\n", ct);
        ProcessRunner.Result bad = await RunAsync(["check", "--config", path], ct);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("pool_mode", bad.StdErr, StringComparison.Ordinal);

        // init writes a profile that check accepts (its auth file, userlist.txt, beside it).
        File.Copy(Path.Combine(_dir, "users.txt"), Path.Combine(_dir, "userlist.txt"));
        string sidecar = Path.Combine(_dir, "sidecar.toml");
        ProcessRunner.Result init = await RunAsync(["init", "--profile", "sidecar", "--out", sidecar], ct);
        Assert.True(init.ExitCode == 0, init.All);
        ProcessRunner.Result checkInit = await RunAsync(["check", "--config", sidecar], ct);
        Assert.True(checkInit.ExitCode == 0, checkInit.All);

        // convert a PgBouncer config.
        string ini = Path.Combine(_dir, "pgbouncer.ini");
        await File.WriteAllTextAsync(ini, "[databases]\napp = host=127.0.0.1 port=5432\n[pgbouncer]\nauth_type = trust\npool_mode = transaction\ndefault_pool_size = 15\nlogfile = /var/log/pgbouncer.log\n", ct);
        ProcessRunner.Result convert = await RunAsync(["convert", ini], ct);
        Assert.True(convert.ExitCode == 0, convert.All);
        Assert.Contains("default_pool_size = 15", convert.StdOut, StringComparison.Ordinal);
        Assert.Contains("logfile is not carried over", convert.StdErr, StringComparison.Ordinal);

        // budget reads max_connections from the server through Npgsql.
        await File.WriteAllTextAsync(path, Config(Await.FreePort(), 0, poolSize: 10), ct);
        ProcessRunner.Result budget = await RunAsync(["budget", "--config", path, "--replicas", "3"], ct);
        Assert.True(budget.ExitCode == 0, budget.All);
        Assert.Contains("30 (3 x 10)", budget.StdOut, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Writes the auth file every config here names (users.txt: alice's plaintext password) into <paramref name="dir"/>.</summary>
    private static string Users(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "users.txt"), $"\"{PostgresFixture.Alice}\" \"{PostgresFixture.AlicePassword}\"\n");
        return dir;
    }

    /// <summary>The command that starts the binary under test: the file in PGPROXY_EXECUTABLE, or dotnet exec pgproxy.dll.</summary>
    private static (string File, string[] Prefix) Executable() =>
        Environment.GetEnvironmentVariable("PGPROXY_EXECUTABLE") is { Length: > 0 } exe
            ? (Path.GetFullPath(exe, RepoPaths.Root), [])
            : ("dotnet", ["exec", typeof(ProxyHost).Assembly.Location]);

    private string Database() => $"[databases.{PostgresFixture.Database}]\nhost = \"{pg.Host}\"\nport = {pg.Port.ToString(CultureInfo.InvariantCulture)}\n";

    private string Config(int port, int opsPort, int poolSize) => $"""
        [proxy]
        listen = "127.0.0.1:{port}"
        pool_mode = "transaction"
        default_pool_size = {poolSize}
        shutdown_delay = "1s"
        shutdown_timeout = "10s"
        [auth]
        type = "scram-sha-256"
        file = "users.txt"
        [admin]
        admin_users = ["{PostgresFixture.Alice}"]
        [log]
        format = "json"
        [http]
        listen = "{(opsPort == 0 ? "" : $"127.0.0.1:{opsPort}")}"
        {Database()}
        """;

    private static string ClientString(int port) =>
        $"Host=127.0.0.1;Port={port};Username={PostgresFixture.Alice};Password={PostgresFixture.AlicePassword};Database={PostgresFixture.Database};Pooling=false;Timeout=10";

    private static async Task OpenAsync(string cs, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(cs);
        await c.OpenAsync(ct);
    }

    private async Task<ProcessRunner.Result> RunAsync(string[] args, CancellationToken ct)
    {
        (string file, string[] prefix) = Executable();
        return await ProcessRunner.RunAsync(file, [.. prefix, .. args], TimeSpan.FromSeconds(60), workingDirectory: _dir, ct: ct);
    }

    private Task<ProcessRunner.Result> PsqlAsync(int port, string database, string command, CancellationToken ct, string extra = "sslmode=disable") =>
        ProcessRunner.RunAsync(Path.Combine(pg.BinDir, "psql"),
            ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", command,
                $"host=127.0.0.1 port={port.ToString(CultureInfo.InvariantCulture)} user={PostgresFixture.Alice} dbname={database} {extra}"],
            TimeSpan.FromSeconds(30), new Dictionary<string, string> { ["PGPASSWORD"] = PostgresFixture.AlicePassword }, ct: ct);

    private static void Signal(Process process, string signal)
    {
        using Process kill = Process.Start("kill", ["-" + signal, process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>A running <c>pgproxy run</c>: its stderr lines collected as they come; killed at dispose if still running.</summary>
    private sealed class Proxy : IAsyncDisposable
    {
        private Proxy(Process process) => Process = process;

        public Process Process { get; }

        public ConcurrentQueue<string> Log { get; } = new();

        public static Proxy Start(string dir, string config)
        {
            File.WriteAllText(Path.Combine(dir, "proxy.toml"), config);
            (string file, string[] prefix) = Executable();
            var psi = new ProcessStartInfo(file)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
                WorkingDirectory = dir,
            };
            foreach (string a in (string[])[.. prefix, "run", "--config", Path.Combine(dir, "proxy.toml")])
            {
                psi.ArgumentList.Add(a);
            }

            var proxy = new Proxy(Process.Start(psi)!);
            proxy.Process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    proxy.Log.Enqueue(line);
                }
            };
            proxy.Process.OutputDataReceived += (_, _) => { };
            proxy.Process.BeginErrorReadLine();
            proxy.Process.BeginOutputReadLine();
            return proxy;
        }

        /// <summary>Waits for <paramref name="condition"/>; on a timeout the failure shows the process's log (and whether it exited).</summary>
        public async Task UntilAsync(Func<Task<bool>> condition, CancellationToken ct)
        {
            try
            {
                await Await.UntilAsync(condition, ct);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"timed out{(Process.HasExited ? $"; the process exited with {Process.ExitCode}" : "")}; its log:\n{string.Join('\n', Log)}");
            }
        }

        public async Task<int> WaitForExitAsync(TimeSpan timeout, CancellationToken ct)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            await Process.WaitForExitAsync(cts.Token);
            return Process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }

            Process.Dispose();
        }
    }
}
