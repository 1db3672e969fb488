namespace PgProxy.Protocol;

/// <summary>SQLSTATE codes of the errors the proxy produces itself (PG "Appendix A. Error Codes").</summary>
public static class SqlState
{
    /// <summary>protocol_violation.</summary>
    public const string ProtocolViolation = "08P01";
    /// <summary>connection_failure: a backend could not be reached or died.</summary>
    public const string ConnectionFailure = "08006";
    /// <summary>sqlclient_unable_to_establish_sqlconnection.</summary>
    public const string UnableToEstablishConnection = "08001";
    /// <summary>invalid_authorization_specification.</summary>
    public const string InvalidAuthorizationSpecification = "28000";
    /// <summary>invalid_password.</summary>
    public const string InvalidPassword = "28P01";
    /// <summary>invalid_catalog_name: unknown database.</summary>
    public const string InvalidCatalogName = "3D000";
    /// <summary>too_many_connections.</summary>
    public const string TooManyConnections = "53300";
    /// <summary>admin_shutdown.</summary>
    public const string AdminShutdown = "57P01";
    /// <summary>cannot_connect_now.</summary>
    public const string CannotConnectNow = "57P03";
    /// <summary>query_canceled (also used for timeouts, as PG does).</summary>
    public const string QueryCanceled = "57014";
    /// <summary>feature_not_supported.</summary>
    public const string FeatureNotSupported = "0A000";
    /// <summary>invalid_parameter_value.</summary>
    public const string InvalidParameterValue = "22023";
    /// <summary>program_limit_exceeded.</summary>
    public const string ProgramLimitExceeded = "54000";
    /// <summary>42P05 duplicate_prepared_statement.</summary>
    public const string DuplicatePreparedStatement = "42P05";
    /// <summary>26000 invalid_sql_statement_name (no such prepared statement).</summary>
    public const string InvalidSqlStatementName = "26000";
    /// <summary>55000 object_not_in_prerequisite_state (PostgreSQL's code for a database not accepting connections).</summary>
    public const string ObjectNotInPrerequisiteState = "55000";
    /// <summary>42501 insufficient_privilege.</summary>
    public const string InsufficientPrivilege = "42501";
    /// <summary>57P05 idle_session_timeout.</summary>
    public const string IdleSessionTimeout = "57P05";
    /// <summary>25P03 idle_in_transaction_session_timeout.</summary>
    public const string IdleInTransactionSessionTimeout = "25P03";
    /// <summary>53400 configuration_limit_exceeded (pin_timeout).</summary>
    public const string ConfigurationLimitExceeded = "53400";
    /// <summary>internal_error.</summary>
    public const string InternalError = "XX000";
}
