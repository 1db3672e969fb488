namespace PgProxy.Protocol.Framing;

/// <summary>Magic numbers of the PostgreSQL v3 protocol ("Message Formats").</summary>
public static class ProtocolCodes
{
    /// <summary>Protocol 3.0 as sent in a StartupMessage (3 &lt;&lt; 16).</summary>
    public const int Protocol30 = 196608;

    /// <summary>The major version this proxy speaks.</summary>
    public const int MajorVersion = 3;

    /// <summary>CancelRequest code (1234 &lt;&lt; 16 | 5678).</summary>
    public const int CancelRequest = 80877102;

    /// <summary>SSLRequest code (1234 &lt;&lt; 16 | 5679).</summary>
    public const int SslRequest = 80877103;

    /// <summary>GSSENCRequest code (1234 &lt;&lt; 16 | 5680).</summary>
    public const int GssEncRequest = 80877104;

    /// <summary>PostgreSQL's own cap on a startup packet (MAX_STARTUP_PACKET_LENGTH).</summary>
    public const int MaxStartupPacketBytes = 10_000;

    /// <summary>The smallest valid startup packet: length and code.</summary>
    public const int MinStartupPacketBytes = 8;
}

/// <summary>Message type bytes sent by the client.</summary>
public static class FrontendCode
{
    /// <summary>Bind.</summary>
    public const byte Bind = (byte)'B';
    /// <summary>Close.</summary>
    public const byte Close = (byte)'C';
    /// <summary>CopyData (both directions).</summary>
    public const byte CopyData = (byte)'d';
    /// <summary>CopyDone (both directions).</summary>
    public const byte CopyDone = (byte)'c';
    /// <summary>CopyFail.</summary>
    public const byte CopyFail = (byte)'f';
    /// <summary>Describe.</summary>
    public const byte Describe = (byte)'D';
    /// <summary>Execute.</summary>
    public const byte Execute = (byte)'E';
    /// <summary>Flush.</summary>
    public const byte Flush = (byte)'H';
    /// <summary>FunctionCall.</summary>
    public const byte FunctionCall = (byte)'F';
    /// <summary>Parse.</summary>
    public const byte Parse = (byte)'P';
    /// <summary>PasswordMessage, SASLInitialResponse and SASLResponse share this byte.</summary>
    public const byte Password = (byte)'p';
    /// <summary>Simple Query.</summary>
    public const byte Query = (byte)'Q';
    /// <summary>Sync.</summary>
    public const byte Sync = (byte)'S';
    /// <summary>Terminate.</summary>
    public const byte Terminate = (byte)'X';
}

/// <summary>Message type bytes sent by the backend.</summary>
public static class BackendCode
{
    /// <summary>Authentication* family.</summary>
    public const byte Authentication = (byte)'R';
    /// <summary>BackendKeyData.</summary>
    public const byte BackendKeyData = (byte)'K';
    /// <summary>CommandComplete.</summary>
    public const byte CommandComplete = (byte)'C';
    /// <summary>CopyInResponse.</summary>
    public const byte CopyInResponse = (byte)'G';
    /// <summary>CopyOutResponse.</summary>
    public const byte CopyOutResponse = (byte)'H';
    /// <summary>CopyBothResponse.</summary>
    public const byte CopyBothResponse = (byte)'W';
    /// <summary>DataRow.</summary>
    public const byte DataRow = (byte)'D';
    /// <summary>EmptyQueryResponse.</summary>
    public const byte EmptyQueryResponse = (byte)'I';
    /// <summary>ErrorResponse.</summary>
    public const byte ErrorResponse = (byte)'E';
    /// <summary>NegotiateProtocolVersion.</summary>
    public const byte NegotiateProtocolVersion = (byte)'v';
    /// <summary>NoticeResponse.</summary>
    public const byte NoticeResponse = (byte)'N';
    /// <summary>ParameterStatus.</summary>
    public const byte ParameterStatus = (byte)'S';
    /// <summary>ReadyForQuery.</summary>
    public const byte ReadyForQuery = (byte)'Z';
    /// <summary>RowDescription.</summary>
    public const byte RowDescription = (byte)'T';
}

/// <summary>Authentication request codes carried in an 'R' message.</summary>
public static class AuthCode
{
    /// <summary>AuthenticationOk.</summary>
    public const int Ok = 0;
    /// <summary>AuthenticationCleartextPassword.</summary>
    public const int CleartextPassword = 3;
    /// <summary>AuthenticationMD5Password.</summary>
    public const int Md5Password = 5;
    /// <summary>AuthenticationSASL.</summary>
    public const int Sasl = 10;
    /// <summary>AuthenticationSASLContinue.</summary>
    public const int SaslContinue = 11;
    /// <summary>AuthenticationSASLFinal.</summary>
    public const int SaslFinal = 12;
}
