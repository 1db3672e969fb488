using System.Net;
using System.Net.Sockets;

namespace PgProxy.Testing;

/// <summary>Small waits and a free port, shared by the test projects.</summary>
public static class Await
{
    /// <summary>A loopback port free a moment ago (for a process that binds it itself).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms; fails the test if it is not met within <paramref name="seconds"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, CancellationToken ct, int seconds = 30)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"condition not met in {seconds} s");
            }

            await Task.Delay(50, ct);
        }
    }

    /// <inheritdoc cref="UntilAsync(Func{Task{bool}}, CancellationToken, int)"/>
    public static Task UntilAsync(Func<bool> condition, CancellationToken ct, int seconds = 30) =>
        UntilAsync(() => Task.FromResult(condition()), ct, seconds);
}
