using System.IO.Pipelines;
using System.Net.Security;

namespace PgProxy.Core.Tls;

/// <summary>
/// A TLS stream as a duplex pipe, on either leg: the stream reads and writes the socket's own pipes, and the relay
/// reads and writes the returned pipe exactly as it does a plaintext socket's.
/// </summary>
internal static class TlsPipe
{
    /// <summary>The ALPN protocol name PostgreSQL registered: offered on both legs, required on direct TLS connections.</summary>
    public static readonly SslApplicationProtocol Alpn = new("postgresql");

    /// <summary><see cref="Alpn"/> as the handshake options take it.</summary>
    public static readonly List<SslApplicationProtocol> AlpnList = [Alpn];

    /// <summary>The duplex pipe over the TLS stream.</summary>
    public static IDuplexPipe Over(SslStream tls) => new StreamPipe(
        PipeReader.Create(tls, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024)),
        PipeWriter.Create(tls), tls);

    /// <summary>The TLS stream of a pipe <see cref="Over"/> made; null for a plaintext transport.</summary>
    public static SslStream? StreamOf(IDuplexPipe transport) => transport is StreamPipe pipe ? pipe.Tls : null;

    /// <summary>SHOW CLIENTS' and SHOW SERVERS' tls column, as PgBouncer fills it: "TLSv1.3/TLS_AES_256_GCM_SHA384"; "" for plaintext.</summary>
    public static string Describe(IDuplexPipe transport) => StreamOf(transport) is { } tls
        ? $"{Protocol(tls.SslProtocol)}/{tls.NegotiatedCipherSuite}"
        : "";

    /// <summary>A log line's "(method, TLS version/cipher)" contents: the method alone on a plaintext transport.</summary>
    public static string WithTls(string method, IDuplexPipe transport) =>
        Describe(transport) is { Length: > 0 } tls ? method + ", " + tls : method;

    private static string Protocol(System.Security.Authentication.SslProtocols protocol) => protocol switch
    {
        System.Security.Authentication.SslProtocols.Tls13 => "TLSv1.3",
        System.Security.Authentication.SslProtocols.Tls12 => "TLSv1.2",
        _ => protocol.ToString(),
    };

    /// <summary>A stream over a duplex pipe: what the TLS stream reads and writes (the socket's pipes).</summary>
    public static Stream Stream(IDuplexPipe pipe) => new PipeStream(pipe.Input.AsStream(leaveOpen: true), pipe.Output.AsStream(leaveOpen: true));

    private sealed record StreamPipe(PipeReader Input, PipeWriter Output, SslStream Tls) : IDuplexPipe;

    /// <summary>Reads from one stream and writes to another.</summary>
    private sealed class PipeStream(Stream reader, Stream writer) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => reader.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => reader.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            reader.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => writer.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => writer.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            writer.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Flush() => writer.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => writer.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                reader.Dispose();
                writer.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
