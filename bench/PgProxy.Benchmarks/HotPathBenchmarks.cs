using System.Buffers;
using BenchmarkDotNet.Attributes;
using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;
using PgProxy.Core.Prepared;
using PgProxy.Core.Relay;
using PgProxy.Protocol.Auth;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Benchmarks;

/// <summary>Parsing the 5-byte header of 1000 DataRow messages delivered in 4 KiB reads.</summary>
[MemoryDiagnoser]
public class HeaderParsing
{
    private ReadOnlySequence<byte> _rows;

    [GlobalSetup]
    public void Setup() => _rows = Wire.Segmented(Wire.Messages(Enumerable.Range(0, 1000).Select(i => (Action<PgMessageBuilder>)(b =>
        b.Start((byte)'D').Int16(1).Int32(8).Bytes("12345678"u8).End())).ToArray()), 4096);

    [Benchmark(OperationsPerInvoke = 1000)]
    public int Parse1000Headers()
    {
        ReadOnlySequence<byte> buffer = _rows;
        int n = 0;
        while (MessageHeader.TryRead(buffer, out MessageHeader header, out _))
        {
            buffer = buffer.Slice(header.TotalLength);
            n++;
        }

        return n;
    }
}

/// <summary>
/// The relay forwarding a select-only transaction in transaction mode, per message: client Query (inspected), then
/// the backend's RowDescription, DataRow, CommandComplete and ReadyForQuery. ReadyForQuery says "in transaction"
/// so the link is not released and the same relay runs every iteration. Goal: 0 bytes allocated.
/// </summary>
[MemoryDiagnoser]
public class Relaying
{
    private SessionRelay _relay = null!;
    private readonly NullPipeWriter _sink = new();
    private ReadOnlySequence<byte> _query;
    private ReadOnlySequence<byte> _reply;
    private ReadOnlySequence<byte> _bind;
    private ReadOnlySequence<byte> _bindReply;
    private SessionRelay _preparedRelay = null!;

    [GlobalSetup]
    public void Setup()
    {
        _relay = new SessionRelay(new System.IO.Pipelines.Pipe().Reader, _sink, Wire.Backend(), PoolMode.Transaction, null, 0);
        _query = new ReadOnlySequence<byte>(Wire.Messages(b => FrontendMessages.Query(b, "SELECT abalance FROM pgbench_accounts WHERE aid = 42;")));
        _reply = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'T').Int16(1).CString("abalance").Int32(0).Int16(0).Int32(23).Int16(4).Int32(-1).Int16(0).End(),
            b => b.Start((byte)'D').Int16(1).Int32(1).Bytes("0"u8).End(),
            b => b.Start((byte)'C').CString("SELECT 1").End(),
            b => b.Start((byte)'Z').Byte((byte)'T').End()));

        // Prepared statements in transaction mode: the client's Bind of its statement "s1" is rewritten to the
        // proxy-wide name the backend already has (no Parse injected), then Execute and Sync.
        byte[] parseTail = Wire.Messages(b => b.CString("SELECT abalance FROM pgbench_accounts WHERE aid = $1").Int16(0));
        PreparedStatement statement = PreparedStatement.FromParseTail(parseTail);
        var statements = new Dictionary<string, PreparedStatement>(StringComparer.Ordinal) { ["s1"] = statement };
        BackendConnection backend = Wire.Backend();
        backend.Statements.Add(statement.ProxyName);
        _preparedRelay = new SessionRelay(new System.IO.Pipelines.Pipe().Reader, _sink, backend, PoolMode.Transaction, statements, 200);
        _bind = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'B').CString("").CString("s1").Int16(0).Int16(1).Int32(2).Bytes("42"u8).Int16(0).End(),
            b => b.Start((byte)'E').CString("").Int32(0).End(),
            b => b.Start((byte)'S').End()));
        _bindReply = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'2').End(),
            b => b.Start((byte)'D').Int16(1).Int32(1).Bytes("0"u8).End(),
            b => b.Start((byte)'C').CString("SELECT 1").End(),
            b => b.Start((byte)'Z').Byte((byte)'T').End()));
    }

    /// <summary>One Query and its four reply messages: five relayed messages per operation.</summary>
    [Benchmark(OperationsPerInvoke = 5)]
    public RelayStop SimpleQueryTransaction() => RoundTrip(_relay, _query, _reply);

    /// <summary>Bind (statement name rewritten), Execute, Sync and four replies: seven messages per operation.</summary>
    [Benchmark(OperationsPerInvoke = 7)]
    public RelayStop PreparedBindRewrite() => RoundTrip(_preparedRelay, _bind, _bindReply);

    /// <summary>The client's request through the relay, then the backend's reply.</summary>
    private RelayStop RoundTrip(SessionRelay relay, ReadOnlySequence<byte> request, ReadOnlySequence<byte> reply)
    {
        relay.ForwardFromClient(ref request, _sink);
        return relay.ForwardFromBackend(ref reply, _sink);
    }
}

/// <summary>Taking an idle backend from a pool and giving it back (the per-transaction cost in transaction mode).</summary>
[MemoryDiagnoser]
public class PoolAcquireRelease
{
    private Pool _pool = null!;

    [GlobalSetup]
    public void Setup()
    {
        _pool = new Pool(new PoolKey("db", "u"), new PoolTarget("bench", 1, "db", new BackendCredentials { User = "u" }),
            new PoolSettings { PoolSize = 20 }, [new ConnectionLimiter(0)], (pool, _) => new ValueTask<BackendConnection>(Wire.Backend(pool)),
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        _pool.AcquireAsync(default).AsTask().GetAwaiter().GetResult();
        BackendConnection first = _pool.AcquireAsync(default).AsTask().GetAwaiter().GetResult();
        _pool.ReleaseAsync(first, reusable: true).AsTask().GetAwaiter().GetResult();
    }

    [Benchmark]
    public void AcquireAndRelease()
    {
        ValueTask<BackendConnection> acquire = _pool.AcquireAsync(default);
        BackendConnection backend = acquire.IsCompletedSuccessfully ? acquire.Result : acquire.AsTask().GetAwaiter().GetResult();
        ValueTask release = _pool.ReleaseAsync(backend, reusable: true);
        if (!release.IsCompletedSuccessfully)
        {
            release.AsTask().GetAwaiter().GetResult();
        }
    }
}

/// <summary>A client login by SCRAM-SHA-256 against a stored verifier (server side), and the client side with PBKDF2.</summary>
[MemoryDiagnoser]
public class ScramLogin
{
    private ScramVerifier _verifier = null!;
    private byte[] _clientKey = null!;

    [GlobalSetup]
    public void Setup()
    {
        _verifier = ScramVerifier.FromPassword("bench-secret", "0123456789abcdef"u8.ToArray());
        _clientKey = ScramSha256.Hmac(ScramSha256.SaltedPassword("bench-secret", _verifier.Salt, _verifier.Iterations), "Client Key"u8);
    }

    /// <summary>The proxy verifying a client that proves its key (what a login costs the proxy).</summary>
    [Benchmark]
    public bool ServerVerifiesClient()
    {
        var client = ScramClientExchange.FromKeys(_clientKey, _verifier);
        var server = new ScramServerExchange(_verifier);
        string? serverFirst = server.HandleClientFirst(client.ClientFirst(), out _);
        string? clientFinal = client.HandleServerFirst(serverFirst!, out _);
        string? serverFinal = server.HandleClientFinal(clientFinal!, out _);
        return serverFinal is not null && client.VerifyServerFinal(serverFinal, out _);
    }

    /// <summary>PBKDF2 with 4096 iterations: what a plaintext password costs per login without the proxy's key cache.</summary>
    [Benchmark]
    public byte[] SaltedPassword() => ScramSha256.SaltedPassword("bench-secret", _verifier.Salt, _verifier.Iterations);
}
