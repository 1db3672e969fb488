using System.Text;
using PgProxy.Core.Sql;

namespace PgProxy.Core.Tests.Sql;

public sealed class StatementReaderTests
{
    /// <summary>
    /// SQL and what each of its statements is, "; " between statements: "Plain" (nothing for a pooler), a kind with its
    /// name (Prepare(p)), and the session effects, "+" between them.
    /// </summary>
    public static TheoryData<string, string> Corpus => new()
    {
        // Ordinary SQL, pgbench's included: nothing to do.
        { "SELECT 1", "Plain" },
        { "SELECT abalance FROM pgbench_accounts WHERE aid = 42;", "Plain" },
        { "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3;", "Plain" },
        { "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, CURRENT_TIMESTAMP);", "Plain" },
        { "BEGIN; UPDATE t SET x = 1; END;", "Plain; Plain; Plain" },
        { "UPDATE settings SET offset_value = 1", "Plain" },
        { "SELECT 'é' || 'ünïcode'", "Plain" },
        { "EXPLAIN SELECT 1", "Plain" },
        { "SELECT $1::text", "Plain" },
        { "SELECT 1 FROM t WHERE a$b = 1", "Plain" },
        { "SELECT B'1010', X'1F', N'national'", "Plain" },
        { "CLOSE ALL", "Plain" },
        { "COMMIT PREPARED 'gid1'", "Plain" },
        { "SELECT 1;;; SELECT 2", "Plain; Plain" },
        { "", "" },
        { "-- only a comment", "" },
        { "  \n\t ", "" },
        // Keywords inside identifiers and literals are false alarms no more.
        { "SELECT payload, attempts FROM jobs WHERE payload->>'kind' = 'load '", "Plain" },
        { "SELECT * FROM templates WHERE temperature > 20", "Plain" },
        { "INSERT INTO events (payload) VALUES ('prepare listen discard temp set_config(')", "Plain" },
        { "SELECT hold_until, declared_at, listener FROM holds", "Plain" },
        { "CREATE TABLE templates (id int, temperature float)", "Plain" },
        { "INSERT INTO temp_log VALUES (1)", "Plain" },
        { "NOTIFY chan, 'listen'", "Plain" },
        { "SELECT pg_notify('c', 'x')", "Plain" },
        { "select 'set work_mem = 1'", "Plain" },
        { "SELECT 'pg_advisory_lock(1)'", "Plain" },
        { "SELECT x FROM t -- pg_advisory_lock(1)", "Plain" },
        { "SELECT x /* pg_advisory_lock(1) /* nested */ still a comment */ FROM t", "Plain" },
        { "SELECT $$pg_advisory_lock(1)$$", "Plain" },
        { "SELECT $tag$ it's $$ not over; SET work_mem = 1 $tag$, 1", "Plain" },
        { "SELECT 'it''s; SET work_mem = 1'", "Plain" },
        { "SELECT \"weird;name\" FROM t", "Plain" },
        { "SELECT \"set\" FROM t", "Plain" },
        { "SELECT set_config FROM t", "Plain" },
        { "SELECT pg_advisory_lock AS x FROM t", "Plain" },
        { "SELECT 1 -- trailing ; SET work_mem = 1", "Plain" },
        { "ALTER ROLE bob SET work_mem = '1MB'", "Plain" },
        { "ALTER DATABASE d SET search_path = x", "Plain" },
        { "CREATE FUNCTION g() RETURNS void SET search_path = pg_catalog AS 'select 1' LANGUAGE sql", "Plain" },
        { "CREATE FUNCTION f() RETURNS int AS $$ SELECT pg_advisory_lock(1) $$ LANGUAGE sql", "Plain" },
        { "CREATE UNLOGGED TABLE u (x int)", "Plain" },
        { "SELECT * INTO t2 FROM t", "Plain" },
        // Unterminated constructs run to the end (the server reports the error).
        { "/* unterminated comment SET work_mem = 1", "" },
        { "SELECT 'unterminated; SET work_mem = 1", "Plain" },
        { "SELECT $a$ unterminated; SET work_mem = 1", "Plain" },
        // SET and RESET, however they are written.
        { "SET work_mem = '64MB'", "Setting(work_mem)" },
        { "SET\nwork_mem = '77MB'", "Setting(work_mem)" },
        { "/* c */ SET work_mem = '55MB'", "Setting(work_mem)" },
        { "-- comment\nSET work_mem TO '1MB'", "Setting(work_mem)" },
        { "  \t set\tsearch_path = a,b", "Setting(search_path)" },
        { "SeT WoRk_MeM = 1", "Setting(work_mem)" },
        { "RESET work_mem", "Setting(work_mem)" },
        { "SET search_path TO DEFAULT", "Setting(search_path)" },
        { "SET SESSION work_mem = '2MB'", "Setting(work_mem)" },
        { "SET TIME ZONE 'UTC'", "Setting(TimeZone)" },
        { "SET SESSION TIME ZONE 'UTC'", "Setting(TimeZone)" },
        { "RESET TIME ZONE", "Setting(TimeZone)" },
        { "SET NAMES 'UTF8'", "Setting(client_encoding)" },
        { "SET SCHEMA 'public'", "Setting(search_path)" },
        { "SET XML OPTION DOCUMENT", "Setting(xmloption)" },
        { "SET application_name = 'x'", "Setting(application_name)" },
        { "SET \"TimeZone\" = 'UTC'", "Setting(TimeZone)" },
        { "SET myapp.user_id = '42'", "Setting(myapp.user_id)" },
        { "SET LOCAL work_mem = '1MB'", "Plain" },
        { "set local\nstatement_timeout = 0", "Plain" },
        { "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "Plain" },
        { "SET CONSTRAINTS ALL DEFERRED", "Plain" },
        { "SET SESSION AUTHORIZATION bob", "UnreplayableSetting" },
        { "RESET SESSION AUTHORIZATION", "UnreplayableSetting" },
        { "SET ROLE bob", "UnreplayableSetting" },
        { "RESET ROLE", "UnreplayableSetting" },
        { "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", "UnreplayableSetting" },
        { "select 1; reset all", "Plain; UnreplayableSetting" },
        { "SET", "UnreplayableSetting" },
        { "SET work_mem = (SELECT set_config('a', 'b', false))", "UnreplayableSetting" },
        // set_config: session-level unless is_local is a literal true.
        { "select set_config('work_mem', '1MB', false)", "Setting(work_mem)" },
        { "SELECT set_config('request.jwt.claims', '{}', true)", "Plain" },
        { "SELECT pg_catalog.set_config('search_path', 'x', TRUE)", "Plain" },
        { "SELECT set_config('a', 'b', 'on')", "Plain" },
        { "SELECT set_config('a', 'b', $3)", "Setting(a)" },
        { "SELECT set_config('a', 'b', NOT false)", "Setting(a)" },
        { "SELECT set_config(name, 'b', false) FROM t", "UnreplayableSetting" },
        { "SELECT set_config('a', '1', false), set_config('b', '2', false)", "UnreplayableSetting" },
        { "SELECT set_config('it''s', '1', false)", "UnreplayableSetting" },
        { "SELECT set_config('a', (SELECT 'b'), true)", "Plain" },
        // Advisory locks: session-level calls outside literals.
        { "SELECT pg_advisory_lock(1)", "AdvisoryLock" },
        { "select PG_ADVISORY_LOCK_SHARED(1, 2)", "AdvisoryLock" },
        { "SELECT pg_try_advisory_lock(42)", "AdvisoryLock" },
        { "SELECT pg_try_advisory_lock_shared(42)", "AdvisoryLock" },
        { "SELECT pg_catalog.pg_advisory_lock(1)", "AdvisoryLock" },
        { "SELECT \"pg_advisory_lock\"(1)", "AdvisoryLock" },
        { "SELECT \"PG_ADVISORY_LOCK\"(1)", "Plain" },
        { "SELECT pg_advisory_lock (1)", "AdvisoryLock" },
        { "SELECT pg_advisory_lock/**/(1)", "AdvisoryLock" },
        { "(SELECT pg_advisory_lock(7))", "AdvisoryLock" },
        { "WITH x AS (SELECT pg_try_advisory_lock(1)) SELECT * FROM x", "AdvisoryLock" },
        { "SELECT pg_advisory_xact_lock(1)", "Plain" },
        { "SELECT pg_advisory_unlock(1)", "AdvisoryUnlock" },
        { "SELECT pg_advisory_unlock_all()", "AdvisoryUnlock" },
        // LISTEN.
        { "LISTEN chan", "Listen" },
        { "listen \"Chan\"", "Listen" },
        { "UNLISTEN *", "Unlisten" },
        { "unlisten chan", "Unlisten" },
        // DISCARD and DEALLOCATE.
        { "DISCARD ALL", "DiscardAll" },
        { "discard all;", "DiscardAll" },
        { "DISCARD PLANS", "Plain" },
        { "DISCARD TEMP", "Plain" },
        { "DEALLOCATE ALL", "DeallocateAll" },
        { "DEALLOCATE PREPARE ALL", "DeallocateAll" },
        { "deallocate prepare s1", "Deallocate(s1)" },
        { "DEALLOCATE \"MyStmt\"", "Deallocate(MyStmt)" },
        { "DEALLOCATE MyStmt", "Deallocate(mystmt)" },
        // SQL-level prepared statements.
        { "PREPARE p AS SELECT 1", "Prepare(p)" },
        { "PREPARE p (int, text) AS SELECT $1, $2", "Prepare(p)" },
        { "prepare \"P\" as select 1", "Prepare(P)" },
        { "PREPARE TRANSACTION 'gid1'", "Plain" },
        { "EXECUTE p(1, 'x')", "Execute(p)" },
        { "EXECUTE p", "Execute(p)" },
        { "BEGIN; PREPARE p AS SELECT $1::int*2; EXECUTE p(21); DEALLOCATE p; COMMIT", "Plain; Prepare(p); Execute(p); Deallocate(p); Plain" },
        // Temp objects.
        { "CREATE TEMP TABLE t (x int)", "TempObject" },
        { "CREATE TEMPORARY TABLE t AS SELECT 1", "TempObject" },
        { "create global temporary table t (x int)", "TempObject" },
        { "CREATE LOCAL TEMP TABLE t (x int)", "TempObject" },
        { "CREATE OR REPLACE TEMP VIEW v AS SELECT 1", "TempObject" },
        { "CREATE TEMP SEQUENCE s", "TempObject" },
        { "CREATE TABLE pg_temp.t (x int)", "TempObject" },
        { "SELECT * INTO TEMP t2 FROM t", "TempObject" },
        { "SELECT * INTO TEMPORARY TABLE t2 FROM t", "TempObject" },
        // Cursors.
        { "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "HoldCursor" },
        { "DECLARE c BINARY INSENSITIVE NO SCROLL CURSOR WITH HOLD FOR SELECT 1", "HoldCursor" },
        { "DECLARE \"for\" CURSOR WITH HOLD FOR SELECT 1", "HoldCursor" },
        { "DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", "Plain" },
        { "DECLARE c CURSOR FOR SELECT 'with hold'", "Plain" },
        { "DECLARE c CURSOR FOR SELECT x FROM t WITH hold", "Plain" },
        // LOAD and code the lexer cannot see into.
        { "LOAD 'auto_explain'", "Load" },
        { "DO $$BEGIN PERFORM set_config('work_mem', '1MB', false); END$$", "Unknown" },
        { "prepare", "PreparedStatement" },
        // Several statements: each one classified, whatever sits before it.
        { "SELECT 1; SET work_mem = '99MB'", "Plain; Setting(work_mem)" },
        { "SELECT 1;SET work_mem=1;select pg_advisory_lock(2)", "Plain; Setting(work_mem); AdvisoryLock" },
        { "SELECT E'it\\'s'; SET work_mem = 1", "Plain; Setting(work_mem)" },
        { "SELECT e'\\\\'; SET work_mem = 1", "Plain; Setting(work_mem)" },
        { "SELECT U&'d\\0061t\\+000061'; SET work_mem = 1", "Plain; Setting(work_mem)" },
        { "SELECT '--not a comment'; RESET search_path", "Plain; Setting(search_path)" },
        { "SELECT 'a\\'; SET work_mem = 1 --'", "Plain; Setting(work_mem)" },
        { "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT pg_advisory_lock(1); SELECT CASE WHEN true THEN 1 END; END; SET work_mem = 1",
            "Plain; Setting(work_mem)" },
    };

    [Theory]
    [MemberData(nameof(Corpus))]
    public void Corpus_EveryStatementIsClassified(string sql, string expected) => Assert.Equal(expected, Describe(sql, standardConformingStrings: true));

    [Fact]
    public void Corpus_HasAtLeast100Statements() => Assert.True(Corpus.Count >= 100, $"{Corpus.Count} entries");

    [Fact]
    public void StandardConformingStringsOff_BackslashEscapesInPlainStrings() =>
        Assert.Equal("Plain", Describe("SELECT 'a\\'; SET work_mem = 1 --'", standardConformingStrings: false));

    [Fact]
    public void VeryLongQuery_StatementAfterItIsStillSeen()
    {
        var sql = new StringBuilder("INSERT INTO t VALUES ");
        for (int i = 0; i < 20_000; i++)
        {
            sql.Append('(').Append(i).Append(", 'payload; SET work_mem = 1 temp listen'),");
        }

        sql.Append("(0, ''); SET work_mem = '1GB'");
        Assert.Equal("Plain; Setting(work_mem)", Describe(sql.ToString(), standardConformingStrings: true));
    }

    [Fact]
    public void Positions_CoverEachStatementAndName()
    {
        byte[] text = Encoding.UTF8.GetBytes("  SELECT 1 ;  EXECUTE \"Q\" (1)");
        var reader = new StatementReader(text);
        Assert.True(reader.MoveNext(out SqlStatement first));
        Assert.Equal("SELECT 1", Encoding.UTF8.GetString(text[first.Start..first.End]));
        Assert.True(reader.MoveNext(out SqlStatement second));
        Assert.Equal("EXECUTE \"Q\" (1)", Encoding.UTF8.GetString(text[second.Start..second.End]));
        Assert.Equal("\"Q\"", Encoding.UTF8.GetString(text[second.Name.Start..second.Name.End]));
        Assert.False(reader.MoveNext(out _));
    }

    [Fact]
    public void OrdinarySql_AllocatesNothing()
    {
        byte[][] queries =
        [
            .. new[]
            {
                "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
                "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77; SELECT 1 /* c */ -- x\n",
                "INSERT INTO t (payload) VALUES (E'it\\'s', $$x$$, \"Quoted\", 1.5e3)",
            }.Select(Encoding.UTF8.GetBytes),
        ];
        Count(queries); // warm up (JIT, static tables)
        long before = GC.GetAllocatedBytesForCurrentThread();
        int n = Count(queries);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(4, n);

        static int Count(byte[][] queries)
        {
            int statements = 0;
            foreach (byte[] q in queries)
            {
                var reader = new StatementReader(q);
                while (reader.MoveNext(out SqlStatement s))
                {
                    statements += s.Effects == SessionEffects.None ? 1 : 100;
                }
            }

            return statements;
        }
    }

    [Theory]
    [InlineData("SELECT 'a''b' AS \"x\"\"y\", $q$z$q$", "Word String Word QuotedIdentifier Comma String")]
    [InlineData("a.b::int+$1;(", "Word Dot Word Operator Operator Word Operator Parameter Semicolon OpenParen")]
    [InlineData("E'\\''U&\"x\"", "String QuotedIdentifier")]
    [InlineData("1.5e10 .5 x1", "Number Number Word")]
    [InlineData("/* a /* b */ c */ -- d\n e", "Word")]
    public void Lexer_Tokens(string sql, string kinds)
    {
        byte[] text = Encoding.UTF8.GetBytes(sql);
        var lexer = new SqlLexer(text);
        var seen = new List<string>();
        while (lexer.Next(out SqlToken t))
        {
            seen.Add(t.Kind.ToString());
        }

        Assert.Equal(kinds, string.Join(' ', seen));
    }

    [Theory]
    [InlineData("DISCARD TEMP", true)]
    [InlineData("discard all", true)]
    [InlineData("CLOSE ALL", true)]
    [InlineData("drop table if exists t", true)]
    [InlineData("UNLISTEN *", true)]
    [InlineData("DEALLOCATE p", true)]
    [InlineData("RESET ROLE", true)]
    [InlineData("reset work_mem", true)]
    [InlineData("SELECT 1", false)]
    [InlineData("INSERT INTO dropped VALUES (1)", false)]
    [InlineData("SET work_mem = '1MB'", false)]
    [InlineData("SELECT 'DROP TABLE x'", false)]
    public void StatementsThatMayDropSessionState_AreMarked(string sql, bool mayRelease)
    {
        Assert.True(StatementReader.TryReadFirst(Encoding.UTF8.GetBytes(sql), true, out SqlStatement s));
        Assert.Equal(mayRelease, (s.Effects & SessionEffects.MayRelease) != 0);
        Assert.Equal(mayRelease, (s.Effects & SqlStatement.PinEffects) != 0);
    }

    private static string Describe(string sql, bool standardConformingStrings)
    {
        byte[] text = Encoding.UTF8.GetBytes(sql);
        var reader = new StatementReader(text, standardConformingStrings);
        var statements = new List<string>();
        while (reader.MoveNext(out SqlStatement s))
        {
            var parts = new List<string>();
            SessionEffects effects = s.Effects & ~SessionEffects.MayRelease; // its own test below
            if (s.Kind != StatementKind.Other)
            {
                parts.Add(s.Name.Length > 0 ? $"{s.Kind}({SqlNames.Decode(text, s.Name)})" : s.Kind.ToString());
                effects &= s.Kind switch
                {
                    StatementKind.Listen => ~SessionEffects.Listen,
                    StatementKind.Prepare => ~SessionEffects.PreparedStatement,
                    _ => ~SessionEffects.None,
                };
            }

            foreach (SessionEffects flag in Enum.GetValues<SessionEffects>())
            {
                if (flag == SessionEffects.None || (effects & flag) == 0)
                {
                    continue;
                }

                parts.Add(flag == SessionEffects.Setting
                    ? $"Setting({s.SettingAlias ?? SqlNames.Decode(text, s.SettingName)})"
                    : flag.ToString());
            }

            statements.Add(parts.Count == 0 ? "Plain" : string.Join('+', parts));
        }

        return string.Join("; ", statements);
    }
}
