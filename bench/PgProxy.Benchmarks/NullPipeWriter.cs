using System.IO.Pipelines;

namespace PgProxy.Benchmarks;

/// <summary>A PipeWriter that drops what it is given into one reused buffer: measures the relay, not a pipe.</summary>
internal sealed class NullPipeWriter : PipeWriter
{
    private readonly byte[] _buffer = new byte[64 * 1024];

    public long Written { get; private set; }

    public override void Advance(int bytes) => Written += bytes;

    public override Memory<byte> GetMemory(int sizeHint = 0) => _buffer;

    public override Span<byte> GetSpan(int sizeHint = 0) => _buffer;

    public override void CancelPendingFlush()
    {
    }

    public override void Complete(Exception? exception = null)
    {
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => new(new FlushResult(false, false));
}
