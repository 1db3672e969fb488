using PgProxy.Protocol.Framing;

namespace PgProxy.Protocol.Backend;

/// <summary>Writers for the backend messages the proxy produces when it plays the server to a client.</summary>
public static class BackendMessages
{
    /// <summary>AuthenticationOk: R, len=8, 0.</summary>
    public static void AuthenticationOk(PgMessageBuilder b) => b.Start(BackendCode.Authentication).Int32(AuthCode.Ok).End();

    /// <summary>AuthenticationCleartextPassword: R, len=8, 3.</summary>
    public static void AuthenticationCleartextPassword(PgMessageBuilder b) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.CleartextPassword).End();

    /// <summary>AuthenticationMD5Password: R, len=12, 5, salt[4].</summary>
    public static void AuthenticationMd5Password(PgMessageBuilder b, ReadOnlySpan<byte> salt) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.Md5Password).Bytes(salt).End();

    /// <summary>AuthenticationSASL with a list of mechanisms, terminated by an empty name.</summary>
    public static void AuthenticationSasl(PgMessageBuilder b, params string[] mechanisms)
    {
        b.Start(BackendCode.Authentication).Int32(AuthCode.Sasl);
        foreach (string m in mechanisms)
        {
            b.CString(m);
        }

        b.Byte(0).End();
    }

    /// <summary>AuthenticationSASLContinue with server-first-message.</summary>
    public static void AuthenticationSaslContinue(PgMessageBuilder b, string data) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.SaslContinue).Utf8(data).End();

    /// <summary>AuthenticationSASLFinal with server-final-message.</summary>
    public static void AuthenticationSaslFinal(PgMessageBuilder b, string data) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.SaslFinal).Utf8(data).End();

    /// <summary>AuthenticationSASLContinue with server-first-message's bytes.</summary>
    public static void AuthenticationSaslContinue(PgMessageBuilder b, ReadOnlySpan<byte> data) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.SaslContinue).Bytes(data).End();

    /// <summary>AuthenticationSASLFinal with server-final-message's bytes.</summary>
    public static void AuthenticationSaslFinal(PgMessageBuilder b, ReadOnlySpan<byte> data) =>
        b.Start(BackendCode.Authentication).Int32(AuthCode.SaslFinal).Bytes(data).End();

    /// <summary>ParameterStatus: S, name, value.</summary>
    public static void ParameterStatus(PgMessageBuilder b, string name, string value) =>
        b.Start(BackendCode.ParameterStatus).CString(name).CString(value).End();

    /// <summary>BackendKeyData: K, len=12, pid, secret.</summary>
    public static void BackendKeyData(PgMessageBuilder b, int processId, int secretKey) =>
        b.Start(BackendCode.BackendKeyData).Int32(processId).Int32(secretKey).End();

    /// <summary>ReadyForQuery: Z, len=5, status ('I', 'T' or 'E').</summary>
    public static void ReadyForQuery(PgMessageBuilder b, TransactionStatus status) =>
        b.Start(BackendCode.ReadyForQuery).Byte((byte)status).End();

    /// <summary>NegotiateProtocolVersion: v, newest minor supported, unrecognized options.</summary>
    public static void NegotiateProtocolVersion(PgMessageBuilder b, int newestMinor, IReadOnlyList<string> unrecognized)
    {
        b.Start(BackendCode.NegotiateProtocolVersion).Int32(newestMinor).Int32(unrecognized.Count);
        foreach (string option in unrecognized)
        {
            b.CString(option);
        }

        b.End();
    }

    /// <summary>Type OID of <c>text</c> (a RowDescription column).</summary>
    public const int TextOid = 25;

    /// <summary>Type OID of <c>int4</c>.</summary>
    public const int Int4Oid = 23;

    /// <summary>Type OID of <c>int8</c>.</summary>
    public const int Int8Oid = 20;

    /// <summary>
    /// RowDescription ("Message Formats"): T, field count, then per field its name, table OID 0, column 0, the type OID,
    /// the type's size (-1: variable), type modifier -1 and format 0 (text).
    /// </summary>
    public static void RowDescription(PgMessageBuilder b, IReadOnlyList<(string Name, int TypeOid)> columns)
    {
        b.Start(BackendCode.RowDescription).Int16((short)columns.Count);
        foreach ((string name, int oid) in columns)
        {
            short size = oid switch { Int4Oid => 4, Int8Oid => 8, _ => -1 };
            b.CString(name).Int32(0).Int16(0).Int32(oid).Int16(size).Int32(-1).Int16(0);
        }

        b.End();
    }

    /// <summary>DataRow: D, column count, then per column its length and text bytes (-1 and none for NULL).</summary>
    public static void DataRow(PgMessageBuilder b, IReadOnlyList<string?> values)
    {
        b.Start(BackendCode.DataRow).Int16((short)values.Count);
        foreach (string? value in values)
        {
            if (value is null)
            {
                b.Int32(-1);
                continue;
            }

            b.Int32(System.Text.Encoding.UTF8.GetByteCount(value)).Utf8(value);
        }

        b.End();
    }

    /// <summary>CommandComplete: C, the command tag.</summary>
    public static void CommandComplete(PgMessageBuilder b, string tag) => b.Start(BackendCode.CommandComplete).CString(tag).End();
}
