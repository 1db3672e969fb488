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
/// Whole transactions through the relay in transaction mode, as production runs them: the client's message finds no
/// backend, one is taken from the pool and attached, the request is forwarded and flushed, the reply is forwarded
/// and its ReadyForQuery 'I' ends the link, and the backend goes back to the pool. Three shapes: a simple Query
/// (pgbench -S), a named prepared statement (pgbench -M prepared: Bind, Execute, Sync), and a driver that describes
/// its prepared statement each time (Describe rewritten, Bind, Execute, Sync). Goal: 0 bytes allocated per
/// transaction. (A Parse of a name the client has not used yet allocates that name's key once.)
/// </summary>
[MemoryDiagnoser]
public class TransactionRelaying
{
    private readonly NullPipeWriter _client = new();
    private Pool _pool = null!;
    private MessageRelay _simpleRelay = null!;
    private MessageRelay _preparedRelay = null!;
    private ReadOnlySequence<byte> _query;
    private ReadOnlySequence<byte> _reply;
    private ReadOnlySequence<byte> _bind;
    private ReadOnlySequence<byte> _bindReply;
    private ReadOnlySequence<byte> _describe;
    private ReadOnlySequence<byte> _describeReply;

    [GlobalSetup]
    public void Setup()
    {
        _pool = Wire.Pool();
        var registry = new StatementRegistry();
        _simpleRelay = new MessageRelay(new System.IO.Pipelines.Pipe().Reader, _client, _pool, null);
        var mapper = new StatementMapper(registry, 200);
        _preparedRelay = new MessageRelay(new System.IO.Pipelines.Pipe().Reader, _client, _pool, mapper);

        _query = new ReadOnlySequence<byte>(Wire.Messages(b => FrontendMessages.Query(b, "SELECT abalance FROM pgbench_accounts WHERE aid = 42;")));
        _reply = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'T').Int16(1).CString("abalance").Int32(0).Int16(0).Int32(23).Int16(4).Int32(-1).Int16(0).End(),
            b => b.Start((byte)'D').Int16(1).Int32(1).Bytes("0"u8).End(),
            b => b.Start((byte)'C').CString("SELECT 1").End(),
            b => b.Start((byte)'Z').Byte((byte)'I').End()));

        // The client's statement "P_0" and the backends' copy of it: every backend of the pool has it prepared.
        byte[] tail = Wire.Messages(b => b.CString("SELECT abalance FROM pgbench_accounts WHERE aid = $1").Int16(0));
        mapper.TryRegister("P_0"u8, tail, out PreparedStatement? statement, out _);
        var backends = new List<BackendConnection>();
        for (int i = 0; i < 20; i++)
        {
            BackendConnection backend = _pool.AcquireAsync(default).AsTask().GetAwaiter().GetResult();
            backend.Session.Statements.Add(statement!);
            backends.Add(backend);
        }

        foreach (BackendConnection backend in backends)
        {
            _pool.ReleaseAsync(backend, reusable: true).AsTask().GetAwaiter().GetResult();
        }

        _bind = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'B').CString("").CString("P_0").Int16(0).Int16(1).Int32(2).Bytes("42"u8).Int16(0).End(),
            b => b.Start((byte)'E').CString("").Int32(0).End(),
            b => b.Start((byte)'S').End()));
        _bindReply = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'2').End(),
            b => b.Start((byte)'D').Int16(1).Int32(1).Bytes("0"u8).End(),
            b => b.Start((byte)'C').CString("SELECT 1").End(),
            b => b.Start((byte)'Z').Byte((byte)'I').End()));
        _describe = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'D').Byte((byte)'S').CString("P_0").End(),
            b => b.Start((byte)'B').CString("").CString("P_0").Int16(0).Int16(1).Int32(2).Bytes("42"u8).Int16(0).End(),
            b => b.Start((byte)'E').CString("").Int32(0).End(),
            b => b.Start((byte)'S').End()));
        _describeReply = new ReadOnlySequence<byte>(Wire.Messages(
            b => b.Start((byte)'t').Int16(1).Int32(23).End(),
            b => b.Start((byte)'T').Int16(1).CString("abalance").Int32(0).Int16(0).Int32(23).Int16(4).Int32(-1).Int16(0).End(),
            b => b.Start((byte)'2').End(),
            b => b.Start((byte)'D').Int16(1).Int32(1).Bytes("0"u8).End(),
            b => b.Start((byte)'C').CString("SELECT 1").End(),
            b => b.Start((byte)'Z').Byte((byte)'I').End()));
    }

    /// <summary>pgbench -S: Query, then T D C Z.</summary>
    [Benchmark]
    public RelayStop SimpleQuery() => Transaction(_simpleRelay, _query, _reply);

    /// <summary>pgbench -M prepared: Bind (name rewritten), Execute, Sync, then 2 D C Z.</summary>
    [Benchmark]
    public RelayStop PreparedStatement() => Transaction(_preparedRelay, _bind, _bindReply);

    /// <summary>A driver describing its prepared statement each time: Describe (rewritten), Bind, Execute, Sync.</summary>
    [Benchmark]
    public RelayStop DescribeBindExecute() => Transaction(_preparedRelay, _describe, _describeReply);

    private RelayStop Transaction(MessageRelay relay, ReadOnlySequence<byte> request, ReadOnlySequence<byte> reply)
    {
        ReadOnlySequence<byte> buffer = request;
        relay.ForwardFromClient(ref buffer, out _); // NeedBackend: no backend attached between transactions
        ValueTask<BackendConnection> acquire = _pool.AcquireAsync(default);
        BackendConnection backend = acquire.IsCompletedSuccessfully ? acquire.Result : throw new InvalidOperationException("no idle backend");
        relay.BeginLink();
        relay.Attach(backend);
        backend.TryAttach(relay);
        relay.ForwardFromClient(ref buffer, out _);
        relay.ClientFlushed();
        ReadOnlySequence<byte> fromBackend = reply;
        RelayStop stop = relay.ForwardFromBackend(backend, ref fromBackend);
        backend.ReleaseRelay();
        relay.CompleteDetach(backend);
        ValueTask release = _pool.ReleaseAsync(backend, reusable: true);
        if (!release.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("release did not complete at once");
        }

        return stop;
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
        _pool = Wire.Pool();
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
