using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Frontend;

/// <summary>Writers for the frontend messages the proxy sends when it plays the client to a backend.</summary>
public static class FrontendMessages
{
    /// <summary>StartupMessage for protocol 3.0 with the given parameters.</summary>
    public static void Startup(PgMessageBuilder b, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        b.StartUntyped().Int32(ProtocolCodes.Protocol30);
        foreach (KeyValuePair<string, string> p in parameters)
        {
            b.CString(p.Key).CString(p.Value);
        }

        b.Byte(0).End();
    }

    /// <summary>SSLRequest: len=8, 80877103.</summary>
    public static void SslRequest(PgMessageBuilder b) => b.StartUntyped().Int32(ProtocolCodes.SslRequest).End();

    /// <summary>CancelRequest: len=16, 80877102, pid, secret.</summary>
    public static void CancelRequest(PgMessageBuilder b, int processId, int secretKey) =>
        b.StartUntyped().Int32(ProtocolCodes.CancelRequest).Int32(processId).Int32(secretKey).End();

    /// <summary>PasswordMessage with a NUL-terminated password or md5 response.</summary>
    public static void Password(PgMessageBuilder b, string password) =>
        b.Start(FrontendCode.Password).CString(password).End();

    /// <summary>SASLInitialResponse: mechanism, length of data, data.</summary>
    public static void SaslInitialResponse(PgMessageBuilder b, string mechanism, ReadOnlySpan<byte> data) =>
        b.Start(FrontendCode.Password).CString(mechanism).Int32(data.Length).Bytes(data).End();

    /// <summary>SASLResponse: raw data.</summary>
    public static void SaslResponse(PgMessageBuilder b, ReadOnlySpan<byte> data) =>
        b.Start(FrontendCode.Password).Bytes(data).End();

    /// <summary>Simple Query.</summary>
    public static void Query(PgMessageBuilder b, string sql) => b.Start(FrontendCode.Query).CString(sql).End();

    /// <summary>Terminate.</summary>
    public static void Terminate(PgMessageBuilder b) => b.Start(FrontendCode.Terminate).End();
}
