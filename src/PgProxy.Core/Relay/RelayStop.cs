namespace PgProxy.Core.Relay;

/// <summary>Why a relay loop stopped.</summary>
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
    /// <summary>The backend closed, failed or sent a malformed header.</summary>
    BackendClosed,
    /// <summary>Stopped by the other direction.</summary>
    Canceled,
}
