namespace PgProxy.Core.Relay;

/// <summary>
/// Session state that keeps a transaction-mode client on its server ("pinned"), as the server reports it at the end of
/// a transaction (<see cref="PinProbe"/>).
/// </summary>
[Flags]
public enum PinKinds : byte
{
    /// <summary>Nothing left: the server may go back to the pool.</summary>
    None = 0,
    /// <summary>Session-level advisory locks of this backend (pg_locks).</summary>
    AdvisoryLock = 1 << 0,
    /// <summary>Relations in this backend's temp schema.</summary>
    TempTable = 1 << 1,
    /// <summary>WITH HOLD cursors (pg_cursors).</summary>
    HoldCursor = 1 << 2,
    /// <summary>LISTEN channels (pg_listening_channels()).</summary>
    Listen = 1 << 3,
    /// <summary>SQL-level prepared statements (pg_prepared_statements from SQL).</summary>
    PreparedStatement = 1 << 4,
    /// <summary>SET ROLE, SET SESSION AUTHORIZATION or SET SESSION CHARACTERISTICS in force.</summary>
    SessionSetting = 1 << 5,
}

/// <summary>Names of <see cref="PinKinds"/> for logs, SHOW CLIENTS and metric labels.</summary>
public static class PinKindNames
{
    /// <summary>Each kind with its name, in column order of the probe.</summary>
    public static readonly (PinKinds Kind, string Name)[] All =
    [
        (PinKinds.AdvisoryLock, "advisory_lock"), (PinKinds.TempTable, "temp_table"), (PinKinds.HoldCursor, "hold_cursor"),
        (PinKinds.Listen, "listen"), (PinKinds.PreparedStatement, "prepared_statement"), (PinKinds.SessionSetting, "session_setting"),
    ];

    /// <summary>"advisory_lock,listen"; "" for none.</summary>
    public static string Describe(PinKinds kinds)
    {
        if (kinds == PinKinds.None)
        {
            return "";
        }

        var names = new List<string>(2);
        foreach ((PinKinds kind, string name) in All)
        {
            if ((kinds & kind) != 0)
            {
                names.Add(name);
            }
        }

        return string.Join(',', names);
    }

    /// <summary>The index of a single kind in <see cref="All"/>.</summary>
    public static int IndexOf(PinKinds kind) => System.Numerics.BitOperations.TrailingZeroCount((uint)kind);
}
