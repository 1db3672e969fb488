namespace PgProxy.Core.Infrastructure;

/// <summary>
/// A client connection served, while young, on the thread that accepted it, which moves later to the thread that
/// serves it from then on (the socket transport's poll loops: see <c>PollSocket.Accepted</c>). The transport moves
/// it by itself once its first moments are over; the session asks for the move sooner before a TLS handshake,
/// whose cost should not all fall on the accepting thread.
/// </summary>
public interface ILoginHandOff
{
    /// <summary>Moves the connection to its own thread now, if it has not moved yet. Any thread may call it.</summary>
    void HandOff();
}
