namespace PgProxy.Protocol;

/// <summary>The transaction status byte of ReadyForQuery ("Message Formats: ReadyForQuery").</summary>
public enum TransactionStatus : byte
{
    /// <summary>'I': not in a transaction block.</summary>
    Idle = (byte)'I',
    /// <summary>'T': in a transaction block.</summary>
    InTransaction = (byte)'T',
    /// <summary>'E': in a failed transaction block (queries are rejected until it ends).</summary>
    Failed = (byte)'E',
}
