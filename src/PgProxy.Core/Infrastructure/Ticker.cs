namespace PgProxy.Core.Infrastructure;

/// <summary>The proxy's background clocks (janitor, waiter deadlines, session watchdog): one loop shape for all.</summary>
public static class Ticker
{
    /// <summary>Runs <paramref name="tick"/> every <paramref name="period"/> of <paramref name="time"/> on the thread pool until <paramref name="stopping"/> fires.</summary>
    public static Task Run(TimeSpan period, Func<ValueTask> tick, TimeProvider time, CancellationToken stopping) => Task.Run(async () =>
    {
        using var timer = new PeriodicTimer(period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                await tick().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping.
        }
    }, CancellationToken.None); // the loop itself watches the token
}
