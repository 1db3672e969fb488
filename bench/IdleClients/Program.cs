using System.Diagnostics;
using Npgsql;

// Opens N client connections through a pooler (log in, run nothing, or with "query" one SELECT 1 each), prints
// READY with the time taken, holds them for the given seconds (or until killed) and exits. Used by
// bench/load/compare.sh and bench/load/idle.sh to measure the pooler's resident memory per idle client. Bounded: a
// deadline on the whole run.
//   IdleClients "Host=127.0.0.1;Port=6432;Username=u;Password=p;Database=d" 5000 60 [query]
if (args.Length < 3 || !int.TryParse(args[1], out int count) || !int.TryParse(args[2], out int holdSeconds) ||
    (args.Length > 3 && args[3] != "query"))
{
    Console.Error.WriteLine("usage: IdleClients CONNECTION_STRING COUNT HOLD_SECONDS [query]");
    return 2;
}

bool query = args.Length > 3;

var builder = new NpgsqlDataSourceBuilder(args[0]);
builder.ConnectionStringBuilder.Pooling = false;
builder.ConnectionStringBuilder.Timeout = 60;
builder.ConfigureTypeLoading(t => t.EnableTypeLoading(false)); // log in only: no type-loading query
await using NpgsqlDataSource dataSource = builder.Build();
var connections = new NpgsqlConnection[count];
var sw = Stopwatch.StartNew();
using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(holdSeconds + 300));
int failed = 0;
string? firstError = null;
await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = deadline.Token }, async (i, ct) =>
{
    NpgsqlConnection c = dataSource.CreateConnection();
    try
    {
        await c.OpenAsync(ct);
        if (query)
        {
            await using NpgsqlCommand command = new("SELECT 1", c);
            await command.ExecuteScalarAsync(ct);
        }

        connections[i] = c;
    }
    catch (Exception ex) when (ex is NpgsqlException or TimeoutException or IOException)
    {
        Interlocked.Increment(ref failed);
        Interlocked.CompareExchange(ref firstError, ex.Message, null);
        await c.DisposeAsync();
    }
});

Console.WriteLine($"READY opened={count - failed} failed={failed} seconds={sw.Elapsed.TotalSeconds:F1}{(firstError is null ? "" : " first_error=" + firstError)}");
Console.Out.Flush();
await Task.Delay(TimeSpan.FromSeconds(holdSeconds));
foreach (NpgsqlConnection? c in connections)
{
    if (c is not null)
    {
        await c.DisposeAsync();
    }
}

return failed == 0 ? 0 : 1;
