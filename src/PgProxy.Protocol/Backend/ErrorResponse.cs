using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>
/// ErrorResponse / NoticeResponse fields the proxy reads or writes ("Error and Notice Message Fields").
/// </summary>
public sealed class ErrorResponse
{
    /// <summary>Creates an error.</summary>
    public ErrorResponse(string severity, string sqlState, string message, string? detail = null, string? hint = null)
    {
        Severity = severity;
        SqlState = sqlState;
        Message = message;
        Detail = detail;
        Hint = hint;
    }

    /// <summary>Non-localized severity: ERROR, FATAL, PANIC, WARNING, NOTICE...</summary>
    public string Severity { get; }

    /// <summary>The SQLSTATE code.</summary>
    public string SqlState { get; }

    /// <summary>The primary message.</summary>
    public string Message { get; }

    /// <summary>Optional detail.</summary>
    public string? Detail { get; }

    /// <summary>Optional hint.</summary>
    public string? Hint { get; }

    /// <summary>True for FATAL and PANIC: the backend closes the connection after sending it.</summary>
    public bool IsFatal => Severity is "FATAL" or "PANIC";

    /// <summary>A FATAL error.</summary>
    public static ErrorResponse Fatal(string sqlState, string message, string? detail = null, string? hint = null)
        => new("FATAL", sqlState, message, detail, hint);

    /// <summary>An ERROR.</summary>
    public static ErrorResponse Error(string sqlState, string message, string? detail = null, string? hint = null)
        => new("ERROR", sqlState, message, detail, hint);

    /// <summary>Appends the message ('E', or 'N' when <paramref name="notice"/>).</summary>
    public void Write(PgMessageBuilder builder, bool notice = false)
    {
        builder.Start(notice ? BackendCode.NoticeResponse : BackendCode.ErrorResponse);
        builder.Byte((byte)'S').CString(Severity);
        builder.Byte((byte)'V').CString(Severity);
        builder.Byte((byte)'C').CString(SqlState);
        builder.Byte((byte)'M').CString(Message);
        if (Detail is not null)
        {
            builder.Byte((byte)'D').CString(Detail);
        }

        if (Hint is not null)
        {
            builder.Byte((byte)'H').CString(Hint);
        }

        builder.Byte(0).End();
    }

    /// <summary>Parses a buffered ErrorResponse or NoticeResponse body. Unknown fields are skipped.</summary>
    public static bool TryParse(ReadOnlySpan<byte> body, out ErrorResponse? error)
    {
        error = null;
        var reader = new PgSpanReader(body);
        string? severity = null;
        string localized = "ERROR", code = "", message = "";
        string? detail = null, hint = null;
        while (true)
        {
            if (!reader.TryReadByte(out byte field))
            {
                return false;
            }

            if (field == 0)
            {
                break;
            }

            if (!reader.TryReadCString(out string value))
            {
                return false;
            }

            switch (field)
            {
                case (byte)'V': severity = value; break;
                case (byte)'S': localized = value; break;
                case (byte)'C': code = value; break;
                case (byte)'M': message = value; break;
                case (byte)'D': detail = value; break;
                case (byte)'H': hint = value; break;
            }
        }

        // 'V' (non-localized) exists since PG 9.6; fall back to the localized 'S' for older servers.
        error = new ErrorResponse(severity ?? localized, code, message, detail, hint);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Severity} {SqlState} {Message}";
}
