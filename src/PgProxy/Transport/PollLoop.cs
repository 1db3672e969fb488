using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PgProxy.Transport;

/// <summary>Something registered with a <see cref="PollLoop"/>: told, on the loop's thread, which events fired.</summary>
internal interface IPollTarget
{
    /// <summary>The data word it was registered with (slot and generation): an event for a reused slot is dropped.</summary>
    ulong PollToken { get; set; }

    /// <summary>Runs on the loop's thread; must not block.</summary>
    void OnPollEvents(uint events);
}

/// <summary>
/// One epoll instance and the thread that waits on it. Descriptors are added edge-triggered for input and peer close
/// and stay for as long as they live on this loop (as in .NET's own socket engine), so waiting costs no system call
/// per wait; an accepted client moves once, from the accepting loop to its own, when its first moments are over
/// (<see cref="PollSocket.HandOff"/>). Output is added the first time a send would block (<see cref="WatchWritable"/>)
/// and then stays, or at once for a socket that connects out: an accepted socket is writable from the start, so
/// watching output from the start would wake this thread once per login for an event no one waits for (and it is
/// added only once the accepting thread has run its first code: see <see cref="PollSocket.Accepted"/>). Each event is
/// handed to its target inline, on this thread, where the relay then runs (PgBouncer's event loop, one per core). A
/// target is found by slot in a table, with a generation beside the slot so that an event still in flight for a
/// closed connection, or one that moved, never reaches the connection that took its slot.
/// </summary>
internal sealed unsafe class PollLoop
{
    private const int MaxEvents = 256;

    private readonly int _epoll;
    private readonly Lock _lock = new();
    private IPollTarget?[] _targets = new IPollTarget?[64];
    private int[] _free = new int[64];
    private int _freeCount;
    private int _used;
    private uint _generation;

    internal PollLoop(int index)
    {
        Index = index;
        _epoll = LinuxNative.EpollCreate(LinuxNative.EpollCloexec);
        if (_epoll < 0)
        {
            throw new SocketException((int)LinuxNative.LastError());
        }

        var thread = new Thread(Run, maxStackSize: 1024 * 1024)
        {
            IsBackground = true,
            Name = "pgproxy-io-" + index,
        };
        thread.UnsafeStart();
    }

    /// <summary>The loop's place in the process's set (its thread is <c>pgproxy-io-</c> this).</summary>
    internal int Index { get; }

    /// <summary>Reports an exception a target threw (the loop goes on). Set once by the host, for its log.</summary>
    internal static Action<Exception>? UnhandledError { get; set; }

    private const uint InputEvents = LinuxNative.EpollIn | LinuxNative.EpollRdHup | LinuxNative.EpollEt;
    private const uint AllEvents = InputEvents | LinuxNative.EpollOut;

    /// <summary>Adds the descriptor, edge-triggered, for input and peer close, and for output if <paramref name="writable"/>.</summary>
    internal SocketError Add(SafeHandle fd, IPollTarget target, bool writable)
    {
        ulong token;
        lock (_lock)
        {
            int slot;
            if (_freeCount > 0)
            {
                slot = _free[--_freeCount];
            }
            else
            {
                if (_used == _targets.Length)
                {
                    var larger = new IPollTarget?[_targets.Length * 2];
                    _targets.AsSpan().CopyTo(larger);
                    Volatile.Write(ref _targets, larger);
                }

                slot = _used++;
            }

            token = ((ulong)++_generation << 32) | (uint)slot;
            target.PollToken = token;
            Volatile.Write(ref _targets[slot], target);
        }

        SocketError error;
        try
        {
            error = LinuxNative.EpollAdd(_epoll, fd, writable ? AllEvents : InputEvents, token);
        }
        catch (ObjectDisposedException)
        {
            Remove(target); // closed meanwhile, by another thread
            throw;
        }

        if (error != SocketError.Success)
        {
            Remove(target);
        }

        return error;
    }

    /// <summary>
    /// Watches an added descriptor for output as well, from now on. If it is writable already the kernel reports it
    /// at once, so a waiter that set itself up before this call is not missed.
    /// </summary>
    internal SocketError WatchWritable(SafeHandle fd, IPollTarget target) =>
        LinuxNative.EpollModify(_epoll, fd, AllEvents, target.PollToken);

    /// <summary>Takes the descriptor out of the epoll set and forgets the target (to add it to another loop).</summary>
    internal void Delete(SafeHandle fd, IPollTarget target)
    {
        LinuxNative.EpollDelete(_epoll, fd);
        Remove(target);
    }

    /// <summary>Forgets the target. Closing its descriptor is what takes it out of the epoll set.</summary>
    internal void Remove(IPollTarget target)
    {
        lock (_lock)
        {
            int slot = (int)(uint)target.PollToken;
            if (slot < _used && ReferenceEquals(_targets[slot], target))
            {
                _targets[slot] = null;
                if (_freeCount == _free.Length)
                {
                    Array.Resize(ref _free, _free.Length * 2);
                }

                _free[_freeCount++] = slot;
            }
        }
    }

    /// <summary>
    /// The loop's thread, for its whole life. Fully optimized from the start: a method that never returns would
    /// otherwise run its tier-0 code (only its loop is patched over, by on-stack replacement), around every wait.
    /// The handling of a batch of events is its own method, which tiers up with the rest.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private void Run()
    {
        PgProxy.Core.Infrastructure.ServingThread.Enter(Index);
        byte* events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * LinuxNative.EpollEventSize));
        while (true)
        {
            int n = LinuxNative.EpollWait(_epoll, events, MaxEvents, -1);
            if (n >= 0)
            {
                Dispatch(events, n);
            }
            else if (Marshal.GetLastPInvokeError() != LinuxNative.EIntr)
            {
                UnhandledError?.Invoke(new SocketException((int)LinuxNative.LastError()));
                Thread.Sleep(100);
            }
        }
    }

    /// <summary>Hands each of the <paramref name="n"/> events to its target, on this thread.</summary>
    private void Dispatch(byte* events, int n)
    {
        int size = LinuxNative.EpollEventSize;
        int offset = LinuxNative.EpollDataOffset;
        IPollTarget?[] targets = Volatile.Read(ref _targets);
        for (int i = 0; i < n; i++)
        {
            byte* ev = events + (i * size);
            uint mask = *(uint*)ev;
            ulong token = *(ulong*)(ev + offset);
            int slot = (int)(uint)token;
            IPollTarget? target = slot < targets.Length ? Volatile.Read(ref targets[slot]) : null;
            if (target is null || target.PollToken != token)
            {
                continue; // closed meanwhile; its slot may belong to someone else now
            }

            try
            {
                target.OnPollEvents(mask);
            }
            catch (Exception ex)
            {
                UnhandledError?.Invoke(ex);
            }
        }
    }
}

/// <summary>
/// The process's poll loops ([proxy] io_threads of them, by default one per core); descriptors are spread over them in
/// turn. A process has one set, made when the first proxy host starts (or, without one, at the first registration).
/// </summary>
internal static class PollGroup
{
    private static readonly Lock s_creating = new();
    private static PollLoop[]? s_loops;
    private static int s_next;

    /// <summary>
    /// Makes <paramref name="count"/> loops (0: one per core) unless the process has its loops already; returns how
    /// many run.
    /// </summary>
    internal static int Start(int count) => Loops(count).Length;

    /// <summary>The loop whose turn it is: descriptors are spread over the loops in turn.</summary>
    internal static PollLoop Next()
    {
        PollLoop[] loops = Volatile.Read(ref s_loops) ?? Loops(0);
        return loops[(int)((uint)Interlocked.Increment(ref s_next) % (uint)loops.Length)];
    }

    /// <summary>
    /// Registers with the next loop (for output too if <paramref name="writable"/>); that loop's thread runs the
    /// target's events from now on.
    /// </summary>
    internal static PollLoop Register(SafeHandle fd, IPollTarget target, bool writable)
    {
        PollLoop loop = Next();
        SocketError error = loop.Add(fd, target, writable);
        if (error != SocketError.Success)
        {
            throw new SocketException((int)error);
        }

        return loop;
    }

    /// <summary>The process's loops, made now (<paramref name="count"/> of them, 0: one per core) if there are none yet.</summary>
    private static PollLoop[] Loops(int count)
    {
        lock (s_creating)
        {
            return s_loops ??= CreateLoops(count > 0 ? count : Math.Max(1, Environment.ProcessorCount));
        }
    }

    private static PollLoop[] CreateLoops(int count)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("PgProxy's socket transport uses epoll: it runs on Linux.");
        }

        var loops = new PollLoop[count];
        for (int i = 0; i < loops.Length; i++)
        {
            loops[i] = new PollLoop(i);
        }

        return loops;
    }
}
