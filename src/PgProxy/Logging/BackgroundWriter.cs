using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Parsing;

namespace PgProxy.Logging;

/// <summary>
/// A bounded queue with one dedicated writer thread. This replaces Serilog.Sinks.Async, whose worker takes from a
/// <see cref="BlockingCollection{T}"/>: each take that finds the queue empty spins (about 26 sched_yield calls) before
/// it sleeps, and a pooler logs a line on every login and logout, so under connect-per-transaction load that spin
/// cost more CPU than the login itself. Here the writer sleeps on an event that does not spin; once woken it lets
/// a burst gather for <see cref="FirstWindow"/>, renders it and writes it out in one write. Then it stays awake for a
/// window twice as long, and writes what came meanwhile: while events keep coming the window doubles, up to
/// <see cref="LongestWindow"/>, and producers wake nobody; after a window in which nothing came the writer sleeps
/// again and the window goes back to its first length. A queue half full ends a window at once. A producer pays an
/// enqueue and, only when the writer sleeps, one wake-up; an idle proxy's writer does not run at all.
/// <para>
/// Why the window grows: each round of the writer (a timed sleep, its wake-up, a write, the thread's switches in and
/// out) costs CPU whether it writes one line or fifty, and a login storm kept a 10 ms window busy for good. The
/// writer's own CPU per login (perf stat per thread, 8 000 trust and 3 000 SCRAM logins, three fresh processes each,
/// native build): 2.0-3.9 µs per trust login and 4.8-7.1 µs per SCRAM login (whose slower logins share a round among
/// fewer lines) with the fixed 10 ms window, 1.1-1.2 and 1.9-2.1 µs with this one; its context switches went from
/// about 340 and 530 per run to about 30. What is left is rendering the lines. A single line still goes out within
/// 10 ms, and under sustained logging a line waits at most 100 ms; a quiet spell costs one more round (the window in
/// which nothing came).
/// </para>
/// </summary>
internal sealed class BackgroundWriter : ILogEventSink
{
    /// <summary>How long a woken writer waits for more events before writing (a connect storm logs two per client).</summary>
    private static readonly TimeSpan FirstWindow = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest wait between writes while events keep coming.</summary>
    private static readonly TimeSpan LongestWindow = TimeSpan.FromMilliseconds(100);

    /// <summary>Text written in one piece at most.</summary>
    private const int MaxBatchChars = 32 * 1024;

    private static readonly MessageTemplate DropReport = new MessageTemplateParser().Parse(
        "{DroppedEvents} log events were dropped ({TotalDropped} since start): the log output (stderr) was not keeping up");

    /// <summary>Turns a logger's arguments into Serilog properties, for JSON (no sinks: it only binds).</summary>
    private static readonly Logger s_binder = new Serilog.LoggerConfiguration().CreateLogger();

    private readonly ConcurrentQueue<PendingEvent> _queue = new();
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);

    /// <summary>Ends the writer's window early: set when the queue reaches half its capacity, and by a stop.</summary>
    private readonly ManualResetEventSlim _hurry = new(false, spinCount: 0);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly StringWriter _buffer = new(CultureInfo.InvariantCulture);
    private readonly ITextFormatter? _json;
    private readonly TextWriter _output;
    private readonly int _capacity;
    private readonly LocalClock _clock = new();
    private int _count;
    private long _dropped;
    private long _reported;
    private volatile bool _stopping;

    /// <summary>Starts the writer thread; <paramref name="json"/> formats each event as JSON, or null for text lines.</summary>
    public BackgroundWriter(ITextFormatter? json, TextWriter output, int capacity)
    {
        _json = json;
        _output = output;
        _capacity = capacity;
        new Thread(Run) { IsBackground = true, Name = "pgproxy log writer" }.Start();
    }

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Serilog's events (<see cref="ProxyLog.Logger"/>).</summary>
    public void Emit(LogEvent logEvent) => Enqueue(new SerilogEvent(logEvent));

    /// <summary>Queues the event, or drops and counts it when the queue is full or the log is stopping.</summary>
    public void Enqueue(PendingEvent e)
    {
        int count = Interlocked.Increment(ref _count);
        if (_stopping || count > _capacity)
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Increment(ref _dropped);
            return;
        }

        _queue.Enqueue(e);
        // Set is a read when the event is already set, and makes no system call when the writer is not waiting.
        _wake.Set();
        if (count == _capacity / 2)
        {
            _hurry.Set(); // a flood (a mass logout): the writer ends its window now rather than drop what comes next
        }
    }

    /// <summary>Stops taking events and waits (at most <paramref name="timeout"/>) for the writer to write out the rest.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        _stopping = true;
        _wake.Set();
        _hurry.Set();
        await Task.WhenAny(_stopped.Task, Task.Delay(timeout)).ConfigureAwait(false);
    }

    /// <summary>
    /// The writer thread. It never returns, so it is compiled fully optimized from the start: left to tiering, it ran
    /// as tier-0 code for good (a <c>pgbench -C</c> profile showed it so). The batch itself is <see cref="WriteOut"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Run()
    {
        try
        {
            TimeSpan window = FirstWindow;
            while (true)
            {
                // Reset before looking, so that an event enqueued after the look sets it again and is not missed.
                _wake.Reset();
                if (_queue.IsEmpty)
                {
                    if (_stopping)
                    {
                        ReportDrops(force: true, DateTime.UtcNow);
                        Flush();
                        return;
                    }

                    // Quiet for a whole window: sleep until the next event, then let its burst gather for the first window.
                    _wake.Wait();
                    window = FirstWindow;
                    Gather(window);
                }

                _hurry.Reset(); // before the write-out: a flood that reaches half during it ends the next window at once
                WriteOut();
                // Still busy, maybe: the next batch gathers for a longer window (no wake-up per event meanwhile).
                window = window * 2 < LongestWindow ? window * 2 : LongestWindow;
                Gather(window);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // stderr is gone (closed pipe): nothing can be logged any more, and the relay must not notice.
            _stopping = true;
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    /// <summary>
    /// Lets events gather for <paramref name="window"/>. Not a wait on <see cref="_wake"/>, which every enqueue sets:
    /// only a queue half full or a stop ends the window early.
    /// </summary>
    private void Gather(TimeSpan window)
    {
        if (!_stopping)
        {
            _hurry.Wait(window);
        }
    }

    /// <summary>Renders what is queued and writes it out.</summary>
    private void WriteOut()
    {
        while (_queue.TryDequeue(out PendingEvent? e))
        {
            Interlocked.Decrement(ref _count);
            ReportDrops(force: false, e.Utc);
            Format(e);
        }

        Flush();
    }

    /// <summary>Writes the warning about dropped events once the queue is at most half full (a report into a full queue says little).</summary>
    private void ReportDrops(bool force, DateTime utc)
    {
        long dropped = Interlocked.Read(ref _dropped);
        if (dropped == _reported || (!force && Volatile.Read(ref _count) > _capacity / 2))
        {
            return;
        }

        Format(new SerilogEvent(new LogEvent(new DateTimeOffset(utc).ToLocalTime(), LogEventLevel.Warning, null, DropReport,
        [
            new LogEventProperty("DroppedEvents", new ScalarValue(dropped - _reported)),
            new LogEventProperty("TotalDropped", new ScalarValue(dropped)),
        ])));
        _reported = dropped;
    }

    /// <summary>Renders the event into the batch; a batch that has grown large is written out at once.</summary>
    private void Format(PendingEvent e)
    {
        if (_json is not null)
        {
            _json.Format(e.ToLogEvent(s_binder), _buffer);
        }
        else
        {
            // "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}", written directly.
            Span<char> stamp = stackalloc char[23];
            _clock.Format(e.Utc, stamp);
            _buffer.Write(stamp);
            _buffer.Write(LevelText(e.Level));
            e.Render(_buffer.GetStringBuilder());
            _buffer.WriteLine();
            if (e.Exception is { } exception)
            {
                _buffer.WriteLine(exception.ToString());
            }
        }

        if (_buffer.GetStringBuilder().Length >= MaxBatchChars)
        {
            Flush();
        }
    }

    private static string LevelText(LogEventLevel level) => level switch
    {
        LogEventLevel.Verbose => " VRB ",
        LogEventLevel.Debug => " DBG ",
        LogEventLevel.Information => " INF ",
        LogEventLevel.Warning => " WRN ",
        LogEventLevel.Error => " ERR ",
        _ => " FTL ",
    };

    /// <summary>Hands the batch to the output in one write.</summary>
    private void Flush()
    {
        StringBuilder text = _buffer.GetStringBuilder();
        if (text.Length > 0)
        {
            _output.Write(text);
            _output.Flush();
            text.Clear();
        }
    }
}
