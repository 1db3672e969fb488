using System.Text;
using BenchmarkDotNet.Attributes;
using PgProxy.Core.Sql;

namespace PgProxy.Benchmarks;

/// <summary>
/// The statement reader on what transaction mode sees most: pgbench's select and TPC-B statements, a multi-statement
/// query, and a 10 KB INSERT. Goal: 0 bytes allocated for ordinary SQL.
/// </summary>
[MemoryDiagnoser]
public class StatementClassification
{
    private byte[] _select = [];
    private byte[] _tpcb = [];
    private byte[] _multi = [];
    private byte[] _bulk = [];

    [GlobalSetup]
    public void Setup()
    {
        _select = Encoding.UTF8.GetBytes("SELECT abalance FROM pgbench_accounts WHERE aid = 42;");
        _tpcb = Encoding.UTF8.GetBytes("UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77;");
        _multi = Encoding.UTF8.GetBytes("BEGIN; UPDATE t SET payload = 'load temp listen' WHERE id = 1; /* set work_mem */ SELECT $$x$$; COMMIT;");
        var bulk = new StringBuilder("INSERT INTO events (id, payload) VALUES ");
        for (int i = 0; bulk.Length < 10_000; i++)
        {
            bulk.Append('(').Append(i).Append(", 'attempt ").Append(i).Append("'),");
        }

        _bulk = Encoding.UTF8.GetBytes(bulk.Append("(0, '')").ToString());
    }

    [Benchmark]
    public int Select() => Classify(_select);

    [Benchmark]
    public int TpcbUpdate() => Classify(_tpcb);

    [Benchmark]
    public int MultiStatement() => Classify(_multi);

    [Benchmark]
    public int Insert10KB() => Classify(_bulk);

    private static int Classify(byte[] text)
    {
        var reader = new StatementReader(text);
        int effects = 0;
        while (reader.MoveNext(out SqlStatement s))
        {
            effects |= (int)s.Effects;
        }

        return effects;
    }
}
