using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgProxy.Core.Auth;
using PgProxy.Core.Configuration;
using PgProxy.Hosting;
using PgProxy.Testing;

namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>
/// A proxy hosted in-process on a free loopback port in front of the fixture's PostgreSQL. Its log lines are
/// captured so tests can assert on them (and on what must never be in them).
/// </summary>
public sealed class TestProxy : IAsyncDisposable
{
    private readonly ProxyHost _host;
    private readonly string _dir;

    private TestProxy(ProxyHost host, string dir, ConcurrentQueue<string> log)
    {
        _host = host;
        _dir = dir;
        Log = log;
    }

    /// <summary>The config file the proxy was started from (RELOAD reads it again).</summary>
    public string ConfigPath => Path.Combine(_dir, "proxy.toml");

    /// <summary>Captured log lines ("Level Category: message").</summary>
    public ConcurrentQueue<string> Log { get; }

    /// <summary>The bound port.</summary>
    public int Port => _host.Endpoints[0].Port;

    /// <summary>Runtime services (pools).</summary>
    public Core.Client.ProxyServices Services => _host.Services;

    /// <summary>The hosted proxy.</summary>
    public ProxyHost Host => _host;

    /// <summary>
    /// Starts a proxy. <paramref name="proxySection"/> lines go under [proxy]; <paramref name="extra"/> is appended
    /// (more sections). The default database "appdb" points at the fixture; userlist has alice (plaintext) and bob (md5)
    /// unless <paramref name="userlist"/> is given. <paramref name="logging"/> replaces the capturing log provider.
    /// <paramref name="http"/> is [http] listen: off unless a test asks (the default port would collide across tests);
    /// <paramref name="httpExtra"/> more [http] lines.
    /// </summary>
    public static async Task<TestProxy> StartAsync(PostgresFixture pg, string proxySection = "", string authType = "scram-sha-256",
        string? userlist = null, string? databases = null, string extra = "", Action<ILoggingBuilder>? logging = null, string http = "",
        string httpExtra = "", string listen = "127.0.0.1:0")
    {
        string dir = Path.Combine(Path.GetTempPath(), "pgproxy-test-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        userlist ??= $"\"{PostgresFixture.Alice}\" \"{PostgresFixture.AlicePassword}\"\n" +
                     $"\"{PostgresFixture.Bob}\" \"{Protocol.Auth.Md5Password.Hash(PostgresFixture.BobPassword, PostgresFixture.Bob)}\"\n" +
                     $"\"postgres\" \"{PostgresFixture.SuperPassword}\"\n";
        await File.WriteAllTextAsync(Path.Combine(dir, "users.txt"), userlist);
        databases ??= $"[databases.{PostgresFixture.Database}]\nhost = \"{pg.Host}\"\nport = {pg.Port}\n";
        string toml = $"""
            [proxy]
            listen = "{listen}"
            {proxySection}

            [auth]
            type = "{authType}"
            file = "users.txt"

            [log]
            level = "debug"

            [http]
            listen = "{http}"
            {httpExtra}

            {databases}
            {extra}
            """;
        string path = Path.Combine(dir, "proxy.toml");
        await File.WriteAllTextAsync(path, toml);
        ConfigResult result = ConfigLoader.LoadFile(path);
        if (result.Config is null)
        {
            throw new InvalidOperationException("test config invalid: " + string.Join("; ", result.Errors));
        }

        var errors = new List<string>();
        UserList users = result.Config.Auth.File is { } file ? UserList.Load(file, errors) : UserList.Empty;
        if (errors.Count > 0)
        {
            throw new InvalidOperationException(string.Join("; ", errors));
        }

        var log = new ConcurrentQueue<string>();
        ProxyHost host = await ProxyHost.StartAsync(result.Config, users, logging ?? (builder =>
        {
            builder.SetMinimumLevel(LogLevel.Debug);
            builder.AddProvider(new CapturingLoggerProvider(log));
        }));
        host.EnableReload(path); // the console's RELOAD re-reads ConfigPath, as in `pgproxy run`
        return new TestProxy(host, dir, log);
    }

    /// <summary>An Npgsql connection string to the proxy (client-side pooling off unless asked).</summary>
    public string ConnectionString(string user = PostgresFixture.Alice, string password = PostgresFixture.AlicePassword,
        string database = PostgresFixture.Database, string extra = "") =>
        $"Host=127.0.0.1;Port={Port};Username={user};Password={password};Database={database};Pooling=false;Timeout=30;Command Timeout=60;{extra}";

    /// <summary>Opens a connection through the proxy.</summary>
    public async Task<NpgsqlConnection> OpenAsync(string user = PostgresFixture.Alice, string password = PostgresFixture.AlicePassword,
        string database = PostgresFixture.Database, string extra = "", CancellationToken ct = default)
    {
        var conn = new NpgsqlConnection(ConnectionString(user, password, database, extra));
        await conn.OpenAsync(ct);
        return conn;
    }

    /// <summary>All captured log text.</summary>
    public string LogText => string.Join('\n', Log);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _host.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private sealed class CapturingLoggerProvider(ConcurrentQueue<string> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new CapturingLogger(sink, categoryName);

        public void Dispose()
        {
        }
    }

    private sealed class CapturingLogger(ConcurrentQueue<string> sink, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var sb = new StringBuilder().Append(logLevel).Append(' ').Append(category).Append(": ").Append(formatter(state, exception));
            if (exception is not null)
            {
                sb.Append(' ').Append(exception);
            }

            sink.Enqueue(sb.ToString());
        }
    }
}
