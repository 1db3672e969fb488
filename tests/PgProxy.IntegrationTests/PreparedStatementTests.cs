using System.Buffers.Binary;
using System.Text;

namespace PgProxy.IntegrationTests;

/// <summary>Protocol-level behaviour of prepared statements in transaction mode, driven byte by byte.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PreparedStatementTests(PostgresFixture pg)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static byte[] Parse(string name, string sql) =>
        RawPgClient.Message('P', [.. Encoding.UTF8.GetBytes(name), 0, .. Encoding.UTF8.GetBytes(sql), 0, 0, 0]);

    private static byte[] Bind(string statement) =>
        RawPgClient.Message('B', [0, .. Encoding.UTF8.GetBytes(statement), 0, 0, 0, 0, 0, 0, 0]);

    private static byte[] Execute() => RawPgClient.Message('E', [0, 0, 0, 0, 0]);

    private static byte[] Sync() => RawPgClient.Message('S', []);

    private static byte[] Query(string sql) => RawPgClient.Message('Q', [.. Encoding.UTF8.GetBytes(sql), 0]);

    private static byte[] Close(string name) => RawPgClient.Message('C', [(byte)'S', .. Encoding.UTF8.GetBytes(name), 0]);

    private static async Task<RawPgClient> LoginAsync(TestProxy proxy)
    {
        RawPgClient c = await RawPgClient.ConnectAsync(proxy.Port);
        await c.SendAsync(RawPgClient.Startup(196608, ("user", "alice"), ("database", "appdb")));
        while ((await c.ReadMessageAsync(Wait))!.Value.Type != 'Z')
        {
        }

        return c;
    }

    private static async Task<string> ReadUntilReadyAsync(RawPgClient c)
    {
        var types = new StringBuilder();
        while (true)
        {
            (char Type, byte[] Body) m = (await c.ReadMessageAsync(Wait))!.Value;
            types.Append(m.Type);
            if (m.Type == 'E')
            {
                types.Append('[').Append(RawPgClient.ErrorFields(m.Body)['C']).Append(']');
            }

            if (m.Type == 'Z')
            {
                return types.ToString();
            }
        }
    }

    /// <summary>Message types up to ReadyForQuery (errors with their SQLSTATE), the first column of each DataRow, and the transaction status.</summary>
    private static async Task<(string Types, List<string> Values, char Status)> ReadResultsAsync(RawPgClient c)
    {
        var types = new StringBuilder();
        var values = new List<string>();
        while (true)
        {
            (char Type, byte[] Body) m = (await c.ReadMessageAsync(Wait))!.Value;
            types.Append(m.Type);
            switch (m.Type)
            {
                case 'E':
                    Dictionary<char, string> fields = RawPgClient.ErrorFields(m.Body);
                    types.Append('[').Append(fields['C']).Append(']');
                    values.Add(fields['M']);
                    break;
                case 'D':
                    int length = BinaryPrimitives.ReadInt32BigEndian(m.Body.AsSpan(2));
                    values.Add(length < 0 ? "NULL" : Encoding.UTF8.GetString(m.Body, 6, length));
                    break;
                case 'Z':
                    return (types.ToString(), values, (char)m.Body[0]);
            }
        }
    }

    private static Task<TestProxy> StartAsync(PostgresFixture pg, string extra = "") =>
        TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 1\n" + extra, authType: "trust");

    [Fact(Timeout = 60_000)]
    public async Task DuplicateName_Is42P05_AndTheRestOfTheBatchIsSkipped()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("s1", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Parse("s1", "SELECT 2"), .. Bind("s1"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[42P05]Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Bind("s1"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("2DCZ", await ReadUntilReadyAsync(c)); // s1 is still "SELECT 1"
    }

    [Fact(Timeout = 60_000)]
    public async Task ReplyOrder_IsKept_WhenTheProxyAnswersParse()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient first = await LoginAsync(proxy);
        await first.SendAsync([.. Parse("a", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(first));

        // A second client parses the same text: the server has it already, so the proxy answers ParseComplete itself,
        // between the server's replies to the surrounding requests.
        await using RawPgClient second = await LoginAsync(proxy);
        await second.SendAsync([.. Parse("", "SELECT 7"), .. Bind(""), .. Execute(), .. Parse("mine", "SELECT 1"), .. Bind("mine"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("12DC12DCZ", await ReadUntilReadyAsync(second));
    }

    [Fact(Timeout = 60_000)]
    public async Task ErrorBeforeAProxyAnsweredParse_DropsItsReply()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("known", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Close("known"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("3Z", await ReadUntilReadyAsync(c));
        // The failing Parse makes the server skip to Sync; the proxy's own ParseComplete for "again" must vanish too.
        await c.SendAsync([.. Parse("", "SELECT * FROM no_such_table"), .. Parse("again", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[42P01]Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Bind("again"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[26000]Z", await ReadUntilReadyAsync(c)); // never created, as in PostgreSQL
    }

    [Fact(Timeout = 60_000)]
    public async Task Deallocate_ForgetsTheClientsName()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("d1", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("DEALLOCATE d1"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("DEALLOCATE d1"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[26000]Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Parse("d1", "SELECT 5"), .. Bind("d1"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("12DCZ", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("DISCARD ALL"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Parse("d1", "SELECT 6"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
    }

    [Fact(Timeout = 60_000)]
    public async Task FlushWithoutSync_GetsTheProxysReply()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("f", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("DEALLOCATE f"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        // The server already has the statement: nothing goes to the server, yet the client must get ParseComplete.
        await c.SendAsync([.. Parse("f", "SELECT 1"), .. RawPgClient.Message('H', [])], ct: TestContext.Current.CancellationToken);
        Assert.Equal('1', (await c.ReadMessageAsync(Wait, ct: TestContext.Current.CancellationToken))!.Value.Type);
        await c.SendAsync(Sync(), ct: TestContext.Current.CancellationToken);
        Assert.Equal("Z", await ReadUntilReadyAsync(c));
    }

    [Fact(Timeout = 60_000)]
    public async Task SqlPrepare_ExecuteAndDeallocate_InOneTransaction()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync(Query("BEGIN; PREPARE p AS SELECT $1::int*2; EXECUTE p(21); DEALLOCATE p; COMMIT"), ct: TestContext.Current.CancellationToken);
        (string types, List<string> values, char status) = await ReadResultsAsync(c);
        Assert.Equal("CCTDCCCZ", types); // BEGIN, PREPARE, EXECUTE's row, DEALLOCATE, COMMIT: no error
        Assert.Equal(["42"], values);
        Assert.Equal('I', status);
    }

    [Fact(Timeout = 60_000)]
    public async Task ProtocolAndSqlNames_AreOneNamespace_AsInPostgres()
    {
        await using TestProxy proxy = await StartAsync(pg);
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("s1", "SELECT 41 + 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));

        // EXECUTE of a protocol-level statement runs it.
        await c.SendAsync(Query("EXECUTE s1"), ct: TestContext.Current.CancellationToken);
        (string types, List<string> values, _) = await ReadResultsAsync(c);
        Assert.Equal("TDCZ", types);
        Assert.Equal(["42"], values);

        // PREPARE of a taken name is 42P05 with PostgreSQL's message, and aborts the transaction as it would.
        await c.SendAsync(Query("PREPARE s1 AS SELECT 0"), ct: TestContext.Current.CancellationToken);
        (types, values, _) = await ReadResultsAsync(c);
        Assert.Equal("E[42P05]Z", types);
        Assert.Equal(["prepared statement \"s1\" already exists"], values);
        await c.SendAsync(Query("BEGIN; PREPARE s1 AS SELECT 0; SELECT 1"), ct: TestContext.Current.CancellationToken);
        (types, _, char status) = await ReadResultsAsync(c);
        Assert.Equal("CE[42P05]Z", types);
        Assert.Equal('E', status);
        await c.SendAsync(Query("ROLLBACK"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));

        // DEALLOCATE of a protocol-level name, inside a multi-statement query, forgets it; the name is free again.
        await c.SendAsync(Query("SELECT 1; DEALLOCATE s1"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("TDCCZ", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Bind("s1"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[26000]Z", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Parse("s1", "SELECT 3"), .. Bind("s1"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("12DCZ", await ReadUntilReadyAsync(c));

        // A Parse of a name a SQL PREPARE holds is the server's own 42P05 (and aborts the transaction).
        await c.SendAsync(Query("BEGIN; PREPARE q AS SELECT 9"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CCZ", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Parse("q", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        (types, values, status) = await ReadResultsAsync(c);
        Assert.Equal("E[42P05]Z", types);
        Assert.Equal(["prepared statement \"q\" already exists"], values);
        Assert.Equal('E', status);
        await c.SendAsync(Query("ROLLBACK"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));

        // DEALLOCATE ALL drops both kinds.
        await c.SendAsync([.. Parse("a", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("BEGIN; PREPARE b AS SELECT 2; DEALLOCATE ALL; EXECUTE b"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CCCE[26000]Z", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("ROLLBACK"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Bind("a"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[26000]Z", await ReadUntilReadyAsync(c));

        // So does DISCARD ALL.
        await c.SendAsync([.. Parse("a", "SELECT 1"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));
        await c.SendAsync(Query("DISCARD ALL"), ct: TestContext.Current.CancellationToken);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        await c.SendAsync([.. Bind("a"), .. Execute(), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("E[26000]Z", await ReadUntilReadyAsync(c));
    }

    [Fact(Timeout = 60_000)]
    public async Task SqlExecuteOfAProtocolName_RunsOnServersThatNeverSawIt()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_round_robin = true",
            authType: "trust");
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync([.. Parse("who", "SELECT pg_backend_pid()::text"), .. Sync()], ct: TestContext.Current.CancellationToken);
        Assert.Equal("1Z", await ReadUntilReadyAsync(c));

        // Make both servers exist: another client holds one while this one uses the other.
        await using (RawPgClient other = await LoginAsync(proxy))
        {
            await other.SendAsync(Query("BEGIN"), ct: TestContext.Current.CancellationToken);
            Assert.Equal("CZ", await ReadUntilReadyAsync(other));
            await c.SendAsync(Query("SELECT 1"), ct: TestContext.Current.CancellationToken);
            Assert.Equal("TDCZ", await ReadUntilReadyAsync(c));
            await other.SendAsync(Query("COMMIT"), ct: TestContext.Current.CancellationToken);
            Assert.Equal("CZ", await ReadUntilReadyAsync(other));
        }

        var pids = new HashSet<string>();
        for (int i = 0; i < 6; i++)
        {
            await c.SendAsync(Query("EXECUTE who"), ct: TestContext.Current.CancellationToken);
            (string types, List<string> values, _) = await ReadResultsAsync(c);
            Assert.Equal("TDCZ", types);
            pids.Add(Assert.Single(values));
        }

        Assert.Equal(2, pids.Count); // executed on both servers, prepared on the second by the proxy
    }

    [Fact(Timeout = 60_000)]
    public async Task SqlPrepare_IsMapped_RunsOnServersThatNeverSawIt_WithPostgresOwnErrors()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, "pool_mode = \"transaction\"\ndefault_pool_size = 2\nserver_round_robin = true",
            authType: "trust");
        await using RawPgClient c = await LoginAsync(proxy);
        await c.SendAsync(Query("PREPARE who AS SELECT pg_backend_pid()::text"), ct: ct);
        Assert.Equal("CZ", await ReadUntilReadyAsync(c));
        await using (RawPgClient other = await LoginAsync(proxy))
        {
            await other.SendAsync(Query("BEGIN"), ct: ct);
            Assert.Equal("CZ", await ReadUntilReadyAsync(other));
            await c.SendAsync(Query("SELECT 1"), ct: ct);
            Assert.Equal("TDCZ", await ReadUntilReadyAsync(c));
            await other.SendAsync(Query("COMMIT"), ct: ct);
            Assert.Equal("CZ", await ReadUntilReadyAsync(other));
        }

        var pids = new HashSet<string>();
        for (int i = 0; i < 6; i++)
        {
            await c.SendAsync(Query("EXECUTE who"), ct: ct);
            (string types, List<string> values, _) = await ReadResultsAsync(c);
            Assert.Equal("TDCZ", types);
            pids.Add(Assert.Single(values));
        }

        Assert.Equal(2, pids.Count); // across transactions, on both servers: the proxy prepared it again where it was missing

        await ExpectAsync(c, "PREPARE who AS SELECT 0", "E[42P05]Z", ["prepared statement \"who\" already exists"], ct);
        // A PREPARE that fails creates no name; one before an error in the same query does, as in PostgreSQL.
        Assert.Equal("E[42601]Z", (await RunAsync(c, "PREPARE bad AS SELEC 1", ct)).Types);
        await ExpectAsync(c, "EXECUTE bad", "E[26000]Z", ["prepared statement \"bad\" does not exist"], ct);
        Assert.Equal("CE[22012]Z", (await RunAsync(c, "PREPARE kept AS SELECT 7; SELECT 1/0", ct)).Types);
        await ExpectAsync(c, "EXECUTE kept", "TDCZ", ["7"], ct);
        // Prepared and executed in one query, with parameters.
        await ExpectAsync(c, "PREPARE m (int) AS SELECT $1 * 3; EXECUTE m(5)", "CTDCZ", ["15"], ct);
        await ExpectAsync(c, "DEALLOCATE who", "CZ", [], ct);
        await ExpectAsync(c, "EXECUTE who", "E[26000]Z", ["prepared statement \"who\" does not exist"], ct);
        // Another client's PREPARE of the same text shares the server's statement, under its own name.
        await using RawPgClient d = await LoginAsync(proxy);
        await ExpectAsync(d, "PREPARE mine (int) AS SELECT $1 * 3", "CZ", [], ct);
        await ExpectAsync(d, "EXECUTE mine(10)", "TDCZ", ["30"], ct);
    }

    private static async Task ExpectAsync(RawPgClient c, string sql, string types, string[] values, CancellationToken ct)
    {
        (string gotTypes, List<string> gotValues) = await RunAsync(c, sql, ct);
        Assert.Equal(types, gotTypes);
        Assert.Equal(values, gotValues);
    }

    private static async Task<(string Types, List<string> Values)> RunAsync(RawPgClient c, string sql, CancellationToken ct)
    {
        await c.SendAsync(Query(sql), ct: ct);
        (string types, List<string> values, _) = await ReadResultsAsync(c);
        return (types, values);
    }
}
