using System.IO.Pipelines;

namespace PgProxy.Core.Infrastructure;

/// <summary>
/// A <see cref="PipeReader"/> whose read can wait without an awaiting state machine: the session of an idle client
/// parks its read with a static callback and its own object as the state, and returns. While the client is idle, all
/// that is kept is that callback pair in the reader (the socket's reader, <c>SocketPipeReader</c>, implements it).
/// </summary>
public interface IParkableReader
{
    /// <summary>
    /// Reads as <see cref="PipeReader.ReadAsync"/> does. When the read completes at once, returns true with its
    /// <paramref name="result"/>. Otherwise returns false, and calls <paramref name="resume"/>(<paramref name="state"/>)
    /// once it completes (on the thread that completes it), after which <see cref="TakeParkedResult"/> gives the result.
    /// </summary>
    bool TryReadOrPark(Action<object?> resume, object state, out ReadResult result);

    /// <summary>The result of the read that <see cref="TryReadOrPark"/> parked; throws what the read failed with.</summary>
    ReadResult TakeParkedResult();
}
