using System.Buffers;

namespace PgProxy.Testing;

/// <summary>Builds multi-segment sequences (Bedrock's TestSequenceSegment) to feed parsers split at every byte.</summary>
public static class Segments
{
    /// <summary>Hex with spaces, e.g. "5a 00000005 49".</summary>
    public static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    /// <summary>Flushes <paramref name="pipe"/> and returns everything written to it so far.</summary>
    public static byte[] Drain(System.IO.Pipelines.Pipe pipe)
    {
        pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
        pipe.Reader.TryRead(out System.IO.Pipelines.ReadResult r);
        byte[] bytes = r.Buffer.ToArray();
        pipe.Reader.AdvanceTo(r.Buffer.End);
        return bytes;
    }

    /// <summary>Splits <paramref name="data"/> into segments at the given offsets.</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var pieces = new List<byte[]>();
        int start = 0;
        foreach (int cut in cuts.Where(c => c > 0 && c < data.Length).Distinct().Order())
        {
            pieces.Add(data[start..cut]);
            start = cut;
        }

        pieces.Add(data[start..]);
        var first = new Segment(pieces[0], 0);
        Segment last = first;
        for (int i = 1; i < pieces.Count; i++)
        {
            last = last.Append(pieces[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>Every way to split <paramref name="data"/> in two, plus one segment per byte.</summary>
    public static IEnumerable<ReadOnlySequence<byte>> AllSplits(byte[] data)
    {
        yield return new ReadOnlySequence<byte>(data);
        for (int i = 1; i < data.Length; i++)
        {
            yield return Split(data, i);
        }

        yield return Split(data, Enumerable.Range(1, Math.Max(0, data.Length - 1)).ToArray());
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
