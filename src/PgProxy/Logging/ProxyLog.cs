using System.Collections.Concurrent;
using System.Text;
using PgProxy.Core.Configuration;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Serilog.Parsing;

namespace PgProxy.Logging;

/// <summary>
/// The proxy's log pipeline, the only place that imports Serilog. A log call formats nothing and waits for nothing
/// on the calling thread (with inline socket completions that is the thread relaying data): the event goes into
/// a bounded queue, and one background thread writes it to stderr as text or CLEF JSON. When stderr does not keep
/// up (a full container log pipe, a stopped terminal) the queue fills and further events are dropped and counted;
/// once the writer has caught up, the next event is preceded by a warning that says how many were lost.
/// </summary>
public sealed class ProxyLog : IAsyncDisposable
{
    /// <summary>Events the queue holds before it drops.</summary>
    public const int QueueCapacity = 10_000;

    private readonly BackgroundWriter _writer;

    private ProxyLog(Logger logger, BackgroundWriter writer)
    {
        Logger = logger;
        _writer = writer;
    }

    /// <summary>The logger to give the host (filters by [log] level, then queues).</summary>
    public Logger Logger { get; }

    /// <summary>Makes this pipeline the host's logger factory (no Microsoft.Extensions.Logging dispatch layer in between).</summary>
    public void AddTo(Microsoft.Extensions.Logging.ILoggingBuilder logging) => logging.Services.AddSerilog(Logger, dispose: false);

    /// <summary>Events dropped so far because the output was not keeping up.</summary>
    public long Dropped => _writer.Dropped;

    /// <summary>Builds the pipeline from [log]; <paramref name="output"/> replaces stderr (tests).</summary>
    public static ProxyLog Create(LogSection log, TextWriter? output = null, int queueCapacity = QueueCapacity)
    {
        LogEventLevel level = log.Level switch
        {
            "trace" => LogEventLevel.Verbose,
            "debug" => LogEventLevel.Debug,
            "warning" => LogEventLevel.Warning,
            "error" => LogEventLevel.Error,
            _ => LogEventLevel.Information,
        };
        var writer = new BackgroundWriter(Formatter(log.Format), output ?? StandardError(), queueCapacity);
        Logger logger = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            // Startup failures (port in use) are reported once, in one line, by Program; not again with a stack trace.
            .MinimumLevel.Override("Microsoft.Extensions.Hosting", LogEventLevel.Fatal)
            .WriteTo.Sink(writer)
            .CreateLogger();
        return new ProxyLog(logger, writer);
    }

    /// <summary>Writes out the queue and what was dropped; gives up after a few seconds if the output is stuck.</summary>
    public async ValueTask DisposeAsync()
    {
        await Logger.DisposeAsync().ConfigureAwait(false);
        await _writer.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
    }

    /// <summary>stderr with a buffer that holds a whole batch, so that a batch is one write (Console.Error writes every 256 characters).</summary>
    private static StreamWriter StandardError() =>
        new(Console.OpenStandardError(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 64 * 1024) { AutoFlush = false };

    private static ITextFormatter Formatter(LogFormat format) => format == LogFormat.Json
        ? new RenderedCompactJsonFormatter()
        : new MessageTemplateTextFormatter("{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}",
            System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// A bounded queue with one dedicated writer thread. This replaces Serilog.Sinks.Async, whose worker takes from a
    /// <see cref="BlockingCollection{T}"/>: each take that finds the queue empty spins (about 26 sched_yield calls) before
    /// it sleeps, and a pooler logs a line on every login and logout, so under connect-per-transaction load that spin
    /// cost more CPU than the login itself. Here the writer sleeps on an event that does not spin; once woken it lets
    /// a burst gather for <see cref="BatchWindow"/> and writes it out in one write. A producer pays an enqueue and,
    /// only when the writer sleeps, one wake-up; an idle proxy's writer does not run at all.
    /// </summary>
    private sealed class BackgroundWriter : ILogEventSink
    {
        /// <summary>How long a woken writer waits for more events before writing (a connect storm logs two per client).</summary>
        private static readonly TimeSpan BatchWindow = TimeSpan.FromMilliseconds(10);

        /// <summary>Text written in one piece at most.</summary>
        private const int MaxBatchChars = 32 * 1024;

        private static readonly MessageTemplate DropReport = new MessageTemplateParser().Parse(
            "{DroppedEvents} log events were dropped ({TotalDropped} since start): the log output (stderr) was not keeping up");

        private readonly ConcurrentQueue<LogEvent> _queue = new();
        private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
        private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly StringWriter _buffer = new(System.Globalization.CultureInfo.InvariantCulture);
        private readonly ITextFormatter _formatter;
        private readonly TextWriter _output;
        private readonly int _capacity;
        private int _count;
        private long _dropped;
        private long _reported;
        private volatile bool _stopping;

        public BackgroundWriter(ITextFormatter formatter, TextWriter output, int capacity)
        {
            _formatter = formatter;
            _output = output;
            _capacity = capacity;
            new Thread(Run) { IsBackground = true, Name = "pgproxy log writer" }.Start();
        }

        public long Dropped => Interlocked.Read(ref _dropped);

        public void Emit(LogEvent logEvent)
        {
            if (_stopping || Interlocked.Increment(ref _count) > _capacity)
            {
                Interlocked.Decrement(ref _count);
                Interlocked.Increment(ref _dropped);
                return;
            }

            _queue.Enqueue(logEvent);
            // Set is a read when the event is already set, and makes no system call when the writer is not waiting.
            _wake.Set();
        }

        /// <summary>Stops taking events and waits (at most <paramref name="timeout"/>) for the writer to write out the rest.</summary>
        public async Task StopAsync(TimeSpan timeout)
        {
            _stopping = true;
            _wake.Set();
            await Task.WhenAny(_stopped.Task, Task.Delay(timeout)).ConfigureAwait(false);
        }

        private void Run()
        {
            try
            {
                while (true)
                {
                    // Reset before looking, so that an event enqueued after the look sets it again and is not missed.
                    _wake.Reset();
                    if (_queue.IsEmpty)
                    {
                        if (_stopping)
                        {
                            ReportDrops(force: true, DateTimeOffset.Now);
                            Flush();
                            return;
                        }

                        _wake.Wait();
                        continue;
                    }

                    if (!_stopping)
                    {
                        Thread.Sleep(BatchWindow);
                    }

                    while (_queue.TryDequeue(out LogEvent? e))
                    {
                        Interlocked.Decrement(ref _count);
                        ReportDrops(force: false, e.Timestamp);
                        Format(e);
                    }

                    Flush();
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

        /// <summary>Writes the warning about dropped events once the queue is at most half full (a report into a full queue says little).</summary>
        private void ReportDrops(bool force, DateTimeOffset timestamp)
        {
            long dropped = Interlocked.Read(ref _dropped);
            if (dropped == _reported || (!force && Volatile.Read(ref _count) > _capacity / 2))
            {
                return;
            }

            Format(new LogEvent(timestamp, LogEventLevel.Warning, null, DropReport,
            [
                new LogEventProperty("DroppedEvents", new ScalarValue(dropped - _reported)),
                new LogEventProperty("TotalDropped", new ScalarValue(dropped)),
            ]));
            _reported = dropped;
        }

        /// <summary>Formats the event into the batch; a batch that has grown large is written out at once.</summary>
        private void Format(LogEvent logEvent)
        {
            _formatter.Format(logEvent, _buffer);
            if (_buffer.GetStringBuilder().Length >= MaxBatchChars)
            {
                Flush();
            }
        }

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
}
