using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Infrastructure;

/// <summary>A failure the client must hear about as a PostgreSQL error with a SQLSTATE.</summary>
public class ProxyException : Exception
{
    /// <summary>Creates an error.</summary>
    public ProxyException(string sqlState, string message, string? detail = null, Exception? inner = null)
        : base(message, inner)
    {
        SqlState = sqlState;
        Detail = detail;
    }

    /// <summary>The SQLSTATE.</summary>
    public string SqlState { get; }

    /// <summary>Optional detail line.</summary>
    public string? Detail { get; }

    /// <summary>The client-visible FATAL error.</summary>
    public virtual ErrorResponse ToFatal() => ErrorResponse.Fatal(SqlState, Message, Detail);
}

/// <summary>A backend could not be had: connect or login failed, or the wait timed out.</summary>
public sealed class BackendUnavailableException : ProxyException
{
    /// <summary>Creates an error.</summary>
    public BackendUnavailableException(string sqlState, string message, string? detail = null, Exception? inner = null, ErrorResponse? serverError = null)
        : base(sqlState, message, detail, inner)
    {
        ServerError = serverError;
    }

    /// <summary>The backend's own error, when it sent one during login (forwarded as is).</summary>
    public ErrorResponse? ServerError { get; }

    /// <summary>Why the connect failed, when the connector knows (the server's own errors are classified from <see cref="ServerError"/>).</summary>
    public Pooling.ConnectFailure? Failure { get; init; }

    /// <summary>
    /// The server (or the proxy's own configuration) refused the login itself: authentication (28xxx), an unknown
    /// database (3D000), no permission (42501), or TLS that cannot be set up (an untrusted or expired certificate, a
    /// server without TLS under require). Retrying soon will not help, unlike a refused connection, a timeout, 57P03
    /// (starting up, shutting down) or too many connections.
    /// </summary>
    public bool IsLoginRefused => SqlState.StartsWith("28", StringComparison.Ordinal) || SqlState is "3D000" or "42501" or "08004" ||
                                  Failure == Pooling.ConnectFailure.Tls;

    /// <summary>A copy to throw to one more client (each waiter gets its own exception).</summary>
    public BackendUnavailableException Copy() => new(SqlState, Message, Detail, null, ServerError) { Failure = Failure };

    /// <inheritdoc />
    public override ErrorResponse ToFatal() =>
        ServerError is { } e ? ErrorResponse.Fatal(e.SqlState, e.Message, e.Detail, e.Hint) : base.ToFatal();
}
