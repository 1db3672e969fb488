using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using PgProxy.Core.Backend;
using PgProxy.Core.Pooling;
using PgProxy.Protocol.Framing;

namespace PgProxy.Benchmarks;

/// <summary>Builds protocol byte streams and in-memory backends for the benchmarks.</summary>
internal static class Wire
{
    public static byte[] Messages(params Action<PgMessageBuilder>[] writers)
    {
        var b = new PgMessageBuilder();
        foreach (Action<PgMessageBuilder> w in writers)
        {
            w(b);
        }

        return b.Written.ToArray();
    }

    /// <summary>The same bytes split into segments of <paramref name="segment"/> bytes, as a socket read would deliver them.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int segment)
    {
        Segment? first = null;
        Segment? last = null;
        for (int i = 0; i < bytes.Length; i += segment)
        {
            var s = new Segment(bytes.AsMemory(i, Math.Min(segment, bytes.Length - i)));
            if (first is null)
            {
                first = last = s;
            }
            else
            {
                last = last!.Append(s);
            }
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>An in-memory backend of <paramref name="pool"/> whose output drops what is written (no pump runs).</summary>
    public static BackendConnection Backend(Pool pool)
    {
        var fromBackend = new Pipe();
        var context = new DefaultConnectionContext("bench", new Duplex(fromBackend.Reader, new NullPipeWriter()), new Duplex(new Pipe().Reader, fromBackend.Writer));
        return new BackendConnection(context, "bench", 1, pool);
    }

    /// <summary>A transaction-mode pool of in-memory backends.</summary>
    public static Pool Pool(int size = 20) =>
        new(new PoolKey("db", "u"), new PoolTarget("bench", 1, "db", new BackendCredentials { User = "u" }),
            new PoolSettings { PoolSize = size, Mode = PgProxy.Core.Configuration.PoolMode.Transaction }, [new ConnectionLimiter(0)],
            (pool, _) => new ValueTask<BackendConnection>(Backend(pool)), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
            return next;
        }
    }

    /// <summary>A pipe pair as one side of a connection.</summary>
    internal sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
