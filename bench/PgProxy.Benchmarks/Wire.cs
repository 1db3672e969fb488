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

    public static BackendConnection Backend(Pool? pool = null)
    {
        var toBackend = new Pipe();
        var fromBackend = new Pipe();
        var context = new DefaultConnectionContext("bench", new Duplex(fromBackend.Reader, toBackend.Writer), new Duplex(toBackend.Reader, fromBackend.Writer));
        return new BackendConnection(context, "bench", 1, pool!);
    }

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

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
