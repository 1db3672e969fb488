using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging.Abstractions;
using PgProxy.Core.Auth;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Benchmarks;

/// <summary>
/// A whole client session from StartupMessage to Terminate with trust auth, as <c>pgbench -C</c> runs it minus the
/// transaction: the startup packet is read and checked, the user's pool found, the welcome (ParameterStatus,
/// BackendKeyData, ReadyForQuery) written, the client's relay built, then the client leaves and everything is torn
/// down. In memory (pipes instead of sockets) and with logging off, so the figure is the proxy's own: what a login
/// allocates. <see cref="ConnectionOnly"/> is the harness alone (the in-memory connection), to subtract: a login
/// allocates the difference. Goal (issue "connect and idle cost"): a bounded amount, and a number that only goes down.
/// </summary>
[MemoryDiagnoser]
public class LoginAllocations
{
    private ProxyServices _services = null!;
    private byte[] _startup = null!;
    private byte[] _terminate = null!;

    [GlobalSetup]
    public void Setup()
    {
        const string toml = """
            [proxy]
            listen = "127.0.0.1:6432"
            pool_mode = "transaction"
            [auth]
            type = "trust"
            [databases.bench]
            host = "127.0.0.1"
            port = 5432
            """;
        ConfigResult loaded = ConfigLoader.Load(Encoding.UTF8.GetBytes(toml), "bench.toml");
        ProxyConfig config = loaded.Config ?? throw new InvalidOperationException(string.Join("; ", loaded.Errors));
        var pools = new PoolManager(config, UserList.Empty, new BackendConnector(new NoServers()), NullLogger<PoolManager>.Instance);
        _services = new ProxyServices(pools, NullLoggerFactory.Instance);
        // The pool has met its server once (what every later login of a running proxy sees): the welcome parameters
        // are known, and a login completes without a backend.
        Pool pool = pools.GetOrCreate(config.Databases["bench"], "bench", "bench");
        pool.WelcomeParameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["server_version"] = "15.14", ["server_encoding"] = "UTF8", ["client_encoding"] = "UTF8",
            ["DateStyle"] = "ISO, MDY", ["IntervalStyle"] = "postgres", ["TimeZone"] = "Etc/UTC",
            ["integer_datetimes"] = "on", ["is_superuser"] = "on", ["session_authorization"] = "bench",
            ["standard_conforming_strings"] = "on", ["application_name"] = "",
        };
        _startup = Wire.Messages(b => FrontendMessages.Startup(b, [new("user", "bench"), new("database", "bench"), new("application_name", "pgbench")]));
        _terminate = Wire.Messages(FrontendMessages.Terminate);
        if (!TrustLogin().GetAwaiter().GetResult())
        {
            throw new InvalidOperationException("the login did not reach ReadyForQuery");
        }
    }

    /// <summary>The in-memory connection alone: two pipes and a connection context, written to and completed.</summary>
    [Benchmark(Baseline = true)]
    public async Task<bool> ConnectionOnly()
    {
        (DefaultConnectionContext connection, Pipe toProxy, Pipe fromProxy) = Connection();
        await toProxy.Writer.WriteAsync(_startup);
        await toProxy.Writer.WriteAsync(_terminate);
        await toProxy.Writer.CompleteAsync();
        await fromProxy.Writer.CompleteAsync();
        await connection.DisposeAsync();
        return !await ReadUntilReady(fromProxy.Reader);
    }

    /// <summary>StartupMessage, trust, welcome, relay, Terminate, teardown.</summary>
    [Benchmark]
    public async Task<bool> TrustLogin()
    {
        // As over a socket: the session waits for the startup packet, the client waits for ReadyForQuery, then the
        // session waits for the client's next message, which is Terminate.
        (DefaultConnectionContext connection, Pipe toProxy, Pipe fromProxy) = Connection();
        Task session = new ClientSession(connection, _services).RunAsync();
        await toProxy.Writer.WriteAsync(_startup);
        bool ready = await ReadUntilReady(fromProxy.Reader);
        await toProxy.Writer.WriteAsync(_terminate);
        await toProxy.Writer.CompleteAsync();
        await session;
        await fromProxy.Writer.CompleteAsync();
        await fromProxy.Reader.CompleteAsync();
        return ready;
    }

    private static (DefaultConnectionContext, Pipe, Pipe) Connection()
    {
        var toProxy = new Pipe(PipeOptions.Default);
        var fromProxy = new Pipe(PipeOptions.Default);
        var connection = new DefaultConnectionContext("bench", new Wire.Duplex(toProxy.Reader, fromProxy.Writer), new Wire.Duplex(fromProxy.Reader, toProxy.Writer));
        return (connection, toProxy, fromProxy);
    }

    /// <summary>Reads what the proxy writes up to its ReadyForQuery; false when the output ends first.</summary>
    private static async Task<bool> ReadUntilReady(PipeReader reader)
    {
        while (true)
        {
            ReadResult read = await reader.ReadAsync();
            System.Buffers.ReadOnlySequence<byte> buffer = read.Buffer;
            while (MessageHeader.TryRead(buffer, out MessageHeader header, out _) && buffer.Length >= header.TotalLength)
            {
                buffer = buffer.Slice(header.TotalLength);
                if (header.Type == (byte)'Z')
                {
                    reader.AdvanceTo(buffer.Start);
                    return true;
                }
            }

            reader.AdvanceTo(buffer.Start, read.Buffer.End);
            if (read.IsCompleted)
            {
                return false;
            }
        }
    }

    private sealed class NoServers : IBackendTransport
    {
        public ValueTask<ConnectionContext> ConnectAsync(string host, int port, CancellationToken ct) =>
            throw new InvalidOperationException("the login benchmark never connects to a server");

        public ValueTask SendCancelAsync(string host, int port, ReadOnlyMemory<byte> packet, CancellationToken ct) => ValueTask.CompletedTask;
    }
}
