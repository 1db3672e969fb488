using System.Text;
using PgProxy.Core.Relay;

namespace PgProxy.Core.Tests.Relay;

public sealed class QueryInspectorTests
{
    public static TheoryData<string> Statements => new()
    {
        "SELECT 1",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3;",
        "BEGIN; UPDATE t SET x = 1; END;",
        "SET work_mem = '64MB'",
        "  set\tsearch_path = a,b",
        "select 1; reset all",
        "RESET work_mem",
        "SET LOCAL work_mem = '1MB'",
        "SET SESSION AUTHORIZATION bob",
        "SET ROLE bob",
        "select set_config('work_mem', '1MB', false)",
        "LISTEN chan",
        "listen \"Chan\"",
        "DISCARD ALL",
        "DEALLOCATE ALL",
        "deallocate prepare s1",
        "CREATE TEMP TABLE t (x int)",
        "SELECT pg_advisory_lock(1)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "PREPARE p AS SELECT 1",
        "LOAD 'auto_explain'",
        "SELECT 'é' || 'ünïcode'",
        "UPDATE settings SET offset_value = 1",
    };

    [Theory]
    [MemberData(nameof(Statements))]
    public void FastFilter_NeverHidesWhatTheClassifiersFind(string sql)
    {
        bool matters = QueryInspector.Classify(sql, out _) != QueryKind.Plain || QueryInspector.MayLeaveSessionState(sql);
        if (matters)
        {
            Assert.True(QueryInspector.MayMatter(Encoding.UTF8.GetBytes(sql)), sql);
        }
    }

    [Theory]
    [InlineData("SELECT abalance FROM pgbench_accounts WHERE aid = 42;")]
    [InlineData("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3;")]
    [InlineData("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, CURRENT_TIMESTAMP);")]
    [InlineData("BEGIN;")]
    public void FastFilter_LetsOrdinarySqlThrough(string sql) => Assert.False(QueryInspector.MayMatter(Encoding.UTF8.GetBytes(sql)));

    [Theory]
    [InlineData("SET work_mem = '64MB'", true)]
    [InlineData("select 1; reset all", true)]
    [InlineData("SET LOCAL work_mem = '1MB'", false)]
    [InlineData("UPDATE t SET x = 1", false)]
    [InlineData("CREATE TEMP TABLE t (x int)", true)]
    public void SessionState_IsDetected(string sql, bool expected) => Assert.Equal(expected, QueryInspector.MayLeaveSessionState(sql));
}
