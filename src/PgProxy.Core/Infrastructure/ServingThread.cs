namespace PgProxy.Core.Infrastructure;

/// <summary>
/// A connection whose socket one of the transport's socket threads serves (its events, and the relay code they run,
/// happen on that thread). The socket transport's connections implement it; a backend asks once, when it is made, for
/// the pool to prefer handing a client a backend served on the client's own thread (<see cref="ServingThread"/>).
/// </summary>
public interface IServedOnThread
{
    /// <summary>The index of the socket thread that serves the connection now, or -1.</summary>
    int ServingThreadIndex { get; }
}

/// <summary>
/// Which socket thread the calling code runs on. A client that takes an idle backend served by the same thread has its
/// query sent and the reply relayed by that one thread: a backend on the other thread wakes that thread for every reply
/// (a context switch more per transaction, measured under <c>pgbench -C</c>).
/// </summary>
public static class ServingThread
{
    [ThreadStatic]
    private static int t_indexPlusOne;

    /// <summary>The index of the socket thread running the caller, or -1 on any other thread.</summary>
    public static int Current => t_indexPlusOne - 1;

    /// <summary>Marks the calling thread as socket thread <paramref name="index"/> (called once, by the thread itself).</summary>
    public static void Enter(int index) => t_indexPlusOne = index + 1;
}
