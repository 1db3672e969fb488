namespace PgProxy.Core.Relay;

/// <summary>Why forwarding stopped at this point.</summary>
public enum RelayStop
{
    /// <summary>Not stopped: everything there was forwarded (or waits for the rest of a message).</summary>
    None,
    /// <summary>Client side: no backend is attached; the next message (left in the buffer) needs a link.</summary>
    NeedBackend,
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
    /// <summary>Backend side: this backend is not attached to the relay (any more).</summary>
    Detached,
    /// <summary>Backend side: the client's session asked to end the link (the client left, a timeout); the relay has detached.</summary>
    DetachRequested,
    /// <summary>Transaction or statement mode: the transaction ended and nothing is outstanding; the backend can go back.</summary>
    Released,
    /// <summary>Statement mode: a statement left a transaction open (BEGIN); the proxy refuses it.</summary>
    TransactionInStatementMode,
}
