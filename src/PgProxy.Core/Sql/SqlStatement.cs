namespace PgProxy.Core.Sql;

/// <summary>What a statement is to a pooler, by its leading keywords.</summary>
public enum StatementKind : byte
{
    /// <summary>Nothing the pooler acts on by itself (its <see cref="SqlStatement.Effects"/> may still matter).</summary>
    Other,
    /// <summary>LISTEN channel.</summary>
    Listen,
    /// <summary>UNLISTEN channel | *.</summary>
    Unlisten,
    /// <summary>PREPARE name [(types)] AS statement: a SQL-level prepared statement.</summary>
    Prepare,
    /// <summary>EXECUTE name [(args)].</summary>
    Execute,
    /// <summary>DEALLOCATE [PREPARE] name.</summary>
    Deallocate,
    /// <summary>DEALLOCATE [PREPARE] ALL.</summary>
    DeallocateAll,
    /// <summary>DISCARD ALL.</summary>
    DiscardAll,
}

/// <summary>Session state a statement may leave on the server after its transaction ends.</summary>
[Flags]
public enum SessionEffects : ushort
{
    /// <summary>None: the statement's effects end with its transaction.</summary>
    None = 0,
    /// <summary>
    /// A session-level SET, RESET or set_config(..., false) of the one setting in <see cref="SqlStatement.SettingName"/>
    /// or <see cref="SqlStatement.SettingAlias"/>. A setting the server reports (ParameterStatus) follows the client
    /// through parameter sync; any other one stays on the server.
    /// </summary>
    Setting = 1 << 0,
    /// <summary>Session settings the pooler cannot replay: SET ROLE, SET SESSION AUTHORIZATION, SET SESSION CHARACTERISTICS, RESET ALL, a set_config whose name is not a literal, several settings in one statement.</summary>
    UnreplayableSetting = 1 << 1,
    /// <summary>pg_advisory_lock and friends (session-level; the _xact_ ones end with the transaction).</summary>
    AdvisoryLock = 1 << 2,
    /// <summary>pg_advisory_unlock and friends: releases, creates nothing.</summary>
    AdvisoryUnlock = 1 << 3,
    /// <summary>CREATE TEMP ..., CREATE ... pg_temp.x, SELECT ... INTO TEMP.</summary>
    TempObject = 1 << 4,
    /// <summary>DECLARE ... CURSOR WITH HOLD.</summary>
    HoldCursor = 1 << 5,
    /// <summary>LISTEN.</summary>
    Listen = 1 << 6,
    /// <summary>SQL-level PREPARE.</summary>
    PreparedStatement = 1 << 7,
    /// <summary>LOAD 'library'.</summary>
    Load = 1 << 8,
    /// <summary>Code the lexer cannot see into (DO): anything may be left behind.</summary>
    Unknown = 1 << 9,
    /// <summary>May drop session state: DISCARD, CLOSE, DROP, UNLISTEN, DEALLOCATE, RESET.</summary>
    MayRelease = 1 << 10,
}

/// <summary>A setting named by SQL syntax rather than by its name (no reference fields: statements are copied on the hot path).</summary>
public enum SettingAlias : byte
{
    /// <summary>None.</summary>
    None,
    /// <summary>SET TIME ZONE.</summary>
    TimeZone,
    /// <summary>SET NAMES.</summary>
    ClientEncoding,
    /// <summary>SET SCHEMA.</summary>
    SearchPath,
    /// <summary>SET XML OPTION.</summary>
    XmlOption,
}

/// <summary>One statement of a query string, classified.</summary>
/// <param name="Kind">Its kind.</param>
/// <param name="Effects">Session state it may leave.</param>
/// <param name="Start">Offset of its first token.</param>
/// <param name="End">Offset just past its last token (the ';' excluded).</param>
/// <param name="Name">For Prepare, Execute and Deallocate: the statement name token (Word or QuotedIdentifier).</param>
/// <param name="SettingName">For <see cref="SessionEffects.Setting"/> without an alias: the setting's name (Word, QuotedIdentifier, String, or a Word spanning a qualified name).</param>
/// <param name="Alias">For <see cref="SessionEffects.Setting"/> spelled by syntax (SET TIME ZONE, SET NAMES, SET SCHEMA, SET XML OPTION): which setting.</param>
public readonly record struct SqlStatement(
    StatementKind Kind, SessionEffects Effects, int Start, int End, SqlToken Name = default, SqlToken SettingName = default,
    SettingAlias Alias = SettingAlias.None)
{
    /// <summary>The name of the setting <see cref="Alias"/> stands for; null when there is none.</summary>
    public string? SettingAlias => Alias switch
    {
        Sql.SettingAlias.TimeZone => "TimeZone",
        Sql.SettingAlias.ClientEncoding => "client_encoding",
        Sql.SettingAlias.SearchPath => "search_path",
        Sql.SettingAlias.XmlOption => "xmloption",
        _ => null,
    };

    /// <summary>Effects that leave state on the server whatever its settings: everything but <see cref="SessionEffects.Setting"/> and unlocks.</summary>
    public const SessionEffects StatefulEffects = SessionEffects.UnreplayableSetting | SessionEffects.AdvisoryLock | SessionEffects.TempObject |
        SessionEffects.HoldCursor | SessionEffects.Listen | SessionEffects.PreparedStatement | SessionEffects.Load | SessionEffects.Unknown;

    /// <summary>
    /// Effects that make the proxy ask the server, at the end of the transaction, what session state is left (and pin
    /// the client to its server while any is): what may create state a pin keeps, and what may drop it.
    /// </summary>
    public const SessionEffects PinEffects = SessionEffects.UnreplayableSetting | SessionEffects.AdvisoryLock | SessionEffects.AdvisoryUnlock |
        SessionEffects.TempObject | SessionEffects.HoldCursor | SessionEffects.Listen | SessionEffects.PreparedStatement |
        SessionEffects.Unknown | SessionEffects.MayRelease;

    /// <summary>
    /// Effects that create state a pin keeps whatever the rest of the transaction does: a client not pinned yet is
    /// counted against max_pinned_clients_per_pool when it sends one, and refused (0A000) at the limit. (A SQL PREPARE
    /// is not among them: it is most often deallocated in its own transaction.)
    /// </summary>
    public const SessionEffects CreatingEffects = SessionEffects.AdvisoryLock | SessionEffects.TempObject | SessionEffects.HoldCursor |
        SessionEffects.Listen;
}
