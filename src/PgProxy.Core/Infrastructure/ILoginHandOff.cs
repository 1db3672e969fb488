namespace PgProxy.Core.Infrastructure;

/// <summary>
/// A client connection whose login runs on the thread that accepted it and which moves, once the login is over, to
/// the thread that serves it from then on (the socket transport's poll loops: see <c>PollSocket.HandOff</c>). The
/// session says when: after the login, or before a TLS handshake, whose cost should not all fall on the accepting
/// thread.
/// </summary>
public interface ILoginHandOff
{
    /// <summary>Moves the connection to its own thread now, if it has not moved yet. Any thread may call it.</summary>
    void HandOff();
}
