namespace PgProxy.Core.Relay;

/// <summary>Why a relay stopped.</summary>
public enum RelayStop
{
    /// <summary>Still running (internal).</summary>
    None,
    /// <summary>The client closed its socket.</summary>
    ClientClosed,
    /// <summary>The client sent Terminate.</summary>
    ClientTerminated,
    /// <summary>The client sent a malformed message header.</summary>
    ClientProtocolViolation,
    /// <summary>The client sent a message the proxy must buffer that is over its cap.</summary>
    ClientMessageTooLarge,
    /// <summary>The backend closed, failed or sent a malformed header.</summary>
    BackendClosed,
    /// <summary>Stopped by the other direction.</summary>
    Canceled,
    /// <summary>Transaction or statement mode: the transaction ended and nothing is outstanding; the backend can go back.</summary>
    Released,
    /// <summary>Statement mode: a statement left a transaction open (BEGIN); the proxy refuses it.</summary>
    TransactionInStatementMode,
}
