using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PgProxy.Transport;

/// <summary>
/// The Linux system calls the transport makes itself (epoll, eventfd, accept4, connect, recv, send), and errno as
/// <see cref="SocketError"/>. Every call that takes a socket takes its <see cref="SafeHandle"/>, so the descriptor
/// cannot be closed (and its number reused by another connection) while a call on it runs.
/// </summary>
internal static unsafe partial class LinuxNative
{
    private const string Libc = "libc";

    internal const int EpollCloexec = 0x80000;
    internal const int EpollCtlAdd = 1;
    internal const int EpollCtlDel = 2;
    internal const int EpollCtlMod = 3;

    internal const uint EpollIn = 0x001;
    internal const uint EpollOut = 0x004;
    internal const uint EpollErr = 0x008;
    internal const uint EpollHup = 0x010;
    internal const uint EpollRdHup = 0x2000;
    internal const uint EpollEt = 1u << 31;

    internal const int SockStream = 1;
    internal const ushort AfInet = 2;
    internal const int SockNonBlock = 0x800;
    internal const int SockCloexec = 0x80000;
    internal const int EfdNonBlock = 0x800;
    internal const int EfdCloexec = 0x80000;

    internal const int MsgNoSignal = 0x4000;
    internal const int ShutRdWr = 2;

    internal const int SolSocket = 1;
    internal const int SoReuseAddr = 2;
    internal const int SoError = 4;
    internal const int SoKeepAlive = 9;
    internal const int IpProtoTcp = 6;
    internal const int TcpNoDelay = 1;
    internal const int TcpDeferAccept = 9;

    internal const int EIntr = 4;
    internal const int EAgain = 11;
    internal const int EInProgress = 115;

    /// <summary>
    /// Size of one <c>struct epoll_event</c> and where its data word sits: packed (12 bytes) on x86-64, naturally
    /// aligned (16 bytes) elsewhere.
    /// </summary>
    internal static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    internal static readonly int EpollDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport(Libc, EntryPoint = "epoll_create1", SetLastError = true)]
    internal static partial int EpollCreate(int flags);

    [LibraryImport(Libc, EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epfd, int op, SafeHandle fd, byte* ev);

    [LibraryImport(Libc, EntryPoint = "epoll_wait", SetLastError = true)]
    internal static partial int EpollWait(int epfd, byte* events, int maxEvents, int timeout);

    [LibraryImport(Libc, EntryPoint = "eventfd", SetLastError = true)]
    internal static partial int EventFd(uint initval, int flags);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(int fd, byte* buf, nint count);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    internal static partial nint Read(int fd, byte* buf, nint count);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(SafeHandle fd, byte* addr, int* addrlen, int flags);

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    internal static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "connect", SetLastError = true)]
    private static partial int Connect(SafeHandle fd, byte* addr, int addrlen);

    [LibraryImport(Libc, EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(SafeHandle fd, byte* buf, nint len, int flags);

    [LibraryImport(Libc, EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(SafeHandle fd, byte* buf, nint len, int flags);

    [LibraryImport(Libc, EntryPoint = "shutdown", SetLastError = true)]
    private static partial int Shutdown(SafeHandle fd, int how);

    [LibraryImport(Libc, EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(SafeHandle fd, int level, int name, int* value, int len);

    [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(SafeHandle fd, int level, int name, int* value, int* len);

    [LibraryImport(Libc, EntryPoint = "getpeername", SetLastError = true)]
    private static partial int GetPeerName(SafeHandle fd, byte* addr, int* addrlen);

    [LibraryImport(Libc, EntryPoint = "getsockname", SetLastError = true)]
    private static partial int GetSockName(SafeHandle fd, byte* addr, int* addrlen);

    /// <summary>Adds <paramref name="fd"/> to the epoll set with <paramref name="events"/> and a data word.</summary>
    internal static SocketError EpollAdd(int epfd, SafeHandle fd, uint events, ulong data) =>
        EpollControl(epfd, EpollCtlAdd, fd, events, data);

    /// <summary>Changes the events <paramref name="fd"/> is watched for (the kernel then reports those that hold already).</summary>
    internal static SocketError EpollModify(int epfd, SafeHandle fd, uint events, ulong data) =>
        EpollControl(epfd, EpollCtlMod, fd, events, data);

    /// <summary>Takes <paramref name="fd"/> out of the epoll set.</summary>
    internal static SocketError EpollDelete(int epfd, SafeHandle fd) => EpollControl(epfd, EpollCtlDel, fd, 0, 0);

    private static SocketError EpollControl(int epfd, int op, SafeHandle fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        new Span<byte>(ev, 16).Clear();
        *(uint*)ev = events;
        *(ulong*)(ev + EpollDataOffset) = data;
        return EpollCtl(epfd, op, fd, ev) == 0 ? SocketError.Success : LastError();
    }

    /// <summary>
    /// Takes a pending connection off a listening socket: the new descriptor (non-blocking), or -1 and the error.
    /// <paramref name="ipv4Peer"/> is the peer's address when it is IPv4 (<see cref="PollSocket.Accepted"/> keeps it),
    /// else 0: the kernel writes it with the accept, where asking later is a <c>getpeername</c> call per login.
    /// </summary>
    internal static int Accept(SafeHandle listen, out SocketError error, out ulong ipv4Peer)
    {
        byte* address = stackalloc byte[128]; // sockaddr_storage
        int length = 128;
        int fd = Accept4(listen, address, &length, SockNonBlock | SockCloexec);
        error = fd >= 0 ? SocketError.Success : LastError();
        ipv4Peer = fd >= 0 && length >= 8 && *(ushort*)address == AfInet ? PackIpv4(new ReadOnlySpan<byte>(address, 8)) : 0;
        return fd;
    }

    /// <summary>An IPv4 sockaddr_in's port and address in one word, with a bit set so that it is never 0.</summary>
    internal static ulong PackIpv4(ReadOnlySpan<byte> sockaddrIn) =>
        (1UL << 48) | ((ulong)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(sockaddrIn[2..]) << 32) |
        BitConverter.ToUInt32(sockaddrIn[4..8]);

    /// <summary>The endpoint of a word from <see cref="PackIpv4"/>.</summary>
    internal static IPEndPoint UnpackIpv4(ulong packed) => new(new IPAddress((uint)packed), (int)((packed >> 32) & 0xFFFF));

    /// <summary>Starts a non-blocking connect: Success, WouldBlock (in progress: wait until writable), or the error.</summary>
    internal static SocketError StartConnect(SafeHandle fd, ReadOnlySpan<byte> address)
    {
        fixed (byte* p = address)
        {
            if (Connect(fd, p, address.Length) == 0)
            {
                return SocketError.Success;
            }
        }

        int errno = Marshal.GetLastPInvokeError();
        return errno == EInProgress ? SocketError.WouldBlock : ToSocketError(errno);
    }

    /// <summary>The outcome of a finished non-blocking connect (SO_ERROR).</summary>
    internal static SocketError PendingError(SafeHandle fd)
    {
        int value = 0;
        int len = sizeof(int);
        if (GetSockOpt(fd, SolSocket, SoError, &value, &len) != 0)
        {
            return LastError();
        }

        return value == 0 ? SocketError.Success : ToSocketError(value);
    }

    /// <summary>Reads an integer socket option (-1 if it cannot).</summary>
    internal static int GetOption(SafeHandle fd, int level, int name)
    {
        int value = 0;
        int len = sizeof(int);
        return GetSockOpt(fd, level, name, &value, &len) == 0 ? value : -1;
    }

    /// <summary>Sets an integer socket option; errors are ignored (a connection reset meanwhile fails its next read).</summary>
    internal static void SetOption(SafeHandle fd, int level, int name, int value) => SetSockOpt(fd, level, name, &value, sizeof(int));

    /// <summary>One non-blocking receive. Bytes received (0: the peer closed), or -1 with the error.</summary>
    internal static int Receive(SafeHandle fd, Span<byte> buffer, out SocketError error)
    {
        nint n;
        fixed (byte* p = buffer)
        {
            do
            {
                n = Recv(fd, p, buffer.Length, 0);
            }
            while (n < 0 && Marshal.GetLastPInvokeError() == EIntr);
        }

        error = n >= 0 ? SocketError.Success : LastError();
        return (int)n;
    }

    /// <summary>One non-blocking send (no SIGPIPE). Bytes sent, or -1 with the error.</summary>
    internal static int Send(SafeHandle fd, ReadOnlySpan<byte> buffer, out SocketError error)
    {
        nint n;
        fixed (byte* p = buffer)
        {
            do
            {
                n = Send(fd, p, buffer.Length, MsgNoSignal);
            }
            while (n < 0 && Marshal.GetLastPInvokeError() == EIntr);
        }

        error = n >= 0 ? SocketError.Success : LastError();
        return (int)n;
    }

    /// <summary>Shuts both directions down; errors (not connected, already closed) are ignored.</summary>
    internal static void ShutdownBoth(SafeHandle fd) => Shutdown(fd, ShutRdWr);

    /// <summary>The peer's (or the socket's own) address as a sockaddr: its length, or 0.</summary>
    internal static int Name(SafeHandle fd, bool peer, Span<byte> address)
    {
        int len = address.Length;
        fixed (byte* p = address)
        {
            int rc = peer ? GetPeerName(fd, p, &len) : GetSockName(fd, p, &len);
            return rc == 0 ? Math.Min(len, address.Length) : 0;
        }
    }

    internal static SocketError LastError() => ToSocketError(Marshal.GetLastPInvokeError());

    /// <summary>errno as the <see cref="SocketError"/> .NET reports for it (Linux numbering).</summary>
    internal static SocketError ToSocketError(int errno) => errno switch
    {
        0 => SocketError.Success,
        EIntr => SocketError.Interrupted,
        9 => SocketError.OperationAborted, // EBADF: closed under us
        EAgain => SocketError.WouldBlock,
        13 => SocketError.AccessDenied, // EACCES
        22 => SocketError.InvalidArgument, // EINVAL
        23 or 24 => SocketError.TooManyOpenSockets, // ENFILE, EMFILE
        32 => SocketError.Shutdown, // EPIPE
        88 => SocketError.NotSocket, // ENOTSOCK
        97 => SocketError.AddressFamilyNotSupported, // EAFNOSUPPORT
        98 => SocketError.AddressAlreadyInUse, // EADDRINUSE
        99 => SocketError.AddressNotAvailable, // EADDRNOTAVAIL
        100 => SocketError.NetworkDown, // ENETDOWN
        101 => SocketError.NetworkUnreachable, // ENETUNREACH
        103 => SocketError.ConnectionAborted, // ECONNABORTED
        104 => SocketError.ConnectionReset, // ECONNRESET
        105 => SocketError.NoBufferSpaceAvailable, // ENOBUFS
        107 => SocketError.NotConnected, // ENOTCONN
        110 => SocketError.TimedOut, // ETIMEDOUT
        111 => SocketError.ConnectionRefused, // ECONNREFUSED
        112 => SocketError.HostDown, // EHOSTDOWN
        113 => SocketError.HostUnreachable, // EHOSTUNREACH
        114 => SocketError.AlreadyInProgress, // EALREADY
        EInProgress => SocketError.InProgress,
        _ => SocketError.SocketError,
    };
}
