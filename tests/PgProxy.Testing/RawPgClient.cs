using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace PgProxy.Testing;

/// <summary>A raw socket speaking just enough protocol to send malformed or hand-made packets and read replies.</summary>
public sealed class RawPgClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawPgClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    /// <summary>Connects to 127.0.0.1:port.</summary>
    public static async Task<RawPgClient> ConnectAsync(int port, CancellationToken ct = default)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync("127.0.0.1", port, ct);
        return new RawPgClient(tcp);
    }

    /// <summary>Sends raw bytes.</summary>
    public async Task SendAsync(byte[] bytes, CancellationToken ct = default)
    {
        await _stream.WriteAsync(bytes, ct);
        await _stream.FlushAsync(ct);
    }

    /// <summary>A StartupMessage with the given protocol code and parameters.</summary>
    public static byte[] Startup(int code, params (string Name, string Value)[] parameters)
    {
        var body = new List<byte>();
        foreach ((string n, string v) in parameters)
        {
            body.AddRange(Encoding.UTF8.GetBytes(n));
            body.Add(0);
            body.AddRange(Encoding.UTF8.GetBytes(v));
            body.Add(0);
        }

        body.Add(0);
        byte[] packet = new byte[8 + body.Count];
        BinaryPrimitives.WriteInt32BigEndian(packet, packet.Length);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(4), code);
        body.CopyTo(packet, 8);
        return packet;
    }

    /// <summary>A typed message.</summary>
    public static byte[] Message(char type, byte[] body)
    {
        byte[] m = new byte[5 + body.Length];
        m[0] = (byte)type;
        BinaryPrimitives.WriteInt32BigEndian(m.AsSpan(1), body.Length + 4);
        body.CopyTo(m, 5);
        return m;
    }

    /// <summary>Reads one byte (e.g. the answer to SSLRequest); -1 at end of stream.</summary>
    public async Task<int> ReadByteAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        using CancellationTokenSource cts = Within(timeout, ct);
        byte[] one = new byte[1];
        int n = await _stream.ReadAsync(one, cts.Token);
        return n == 0 ? -1 : one[0];
    }

    /// <summary>Reads one typed message; null at end of stream.</summary>
    public async Task<(char Type, byte[] Body)?> ReadMessageAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        using CancellationTokenSource cts = Within(timeout, ct);
        byte[] header = new byte[5];
        if (!await ReadExactlyAsync(header, cts.Token))
        {
            return null;
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
        byte[] body = new byte[length - 4];
        if (!await ReadExactlyAsync(body, cts.Token))
        {
            return null;
        }

        return ((char)header[0], body);
    }

    /// <summary>True when the server closed the connection (reads end of stream) within the timeout.</summary>
    public async Task<bool> IsClosedAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        using CancellationTokenSource cts = Within(timeout, ct);
        byte[] buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = await _stream.ReadAsync(buffer, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }

    private static CancellationTokenSource Within(TimeSpan timeout, CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        return cts;
    }

    /// <summary>Parses ErrorResponse fields by their code letter.</summary>
    public static Dictionary<char, string> ErrorFields(byte[] body)
    {
        var fields = new Dictionary<char, string>();
        int i = 0;
        while (i < body.Length && body[i] != 0)
        {
            char code = (char)body[i++];
            int end = Array.IndexOf(body, (byte)0, i);
            fields[code] = Encoding.UTF8.GetString(body, i, end - i);
            i = end + 1;
        }

        return fields;
    }

    private async Task<bool> ReadExactlyAsync(byte[] buffer, CancellationToken ct)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await _stream.ReadAsync(buffer.AsMemory(read), ct);
            if (n == 0)
            {
                return false;
            }

            read += n;
        }

        return true;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
