using System.Text;
using PgProxy.Core.Configuration;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;
using Serilog.Sinks.Async;

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

    private readonly Logger _writer;
    private readonly DropReporter _reporter;

    private ProxyLog(Logger logger, Logger writer, DropReporter reporter)
    {
        Logger = logger;
        _writer = writer;
        _reporter = reporter;
    }

    /// <summary>The logger to give the host (filters by [log] level, then queues).</summary>
    public Logger Logger { get; }

    /// <summary>Makes this pipeline the host's logger factory (no Microsoft.Extensions.Logging dispatch layer in between).</summary>
    public void AddTo(Microsoft.Extensions.Logging.ILoggingBuilder logging) => logging.Services.AddSerilog(Logger, dispose: false);

    /// <summary>Events dropped so far because the output was not keeping up.</summary>
    public long Dropped => _reporter.Dropped;

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
        var reporter = new DropReporter();
        Logger writer = new LoggerConfiguration()
            .MinimumLevel.Verbose()
            .WriteTo.Async(sink => sink.Sink(new WriterSink(Formatter(log.Format), output ?? Console.Error)), queueCapacity, blockWhenFull: false, monitor: reporter)
            .CreateLogger();
        reporter.Writer = writer;
        Logger logger = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            // Startup failures (port in use) are reported once, in one line, by Program; not again with a stack trace.
            .MinimumLevel.Override("Microsoft.Extensions.Hosting", LogEventLevel.Fatal)
            .WriteTo.Sink(reporter)
            .CreateLogger();
        return new ProxyLog(logger, writer, reporter);
    }

    /// <summary>Reports what was dropped and writes out the queue; gives up after a few seconds if the output is stuck.</summary>
    public async ValueTask DisposeAsync()
    {
        await Logger.DisposeAsync().ConfigureAwait(false);
        _reporter.ReportDrops(force: true);
        // The writer's dispose waits for its thread to drain the queue, which never happens while stderr is blocked.
        Task drain = Task.Run(_writer.Dispose);
        await Task.WhenAny(drain, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
    }

    private static ITextFormatter Formatter(LogFormat format) => format == LogFormat.Json
        ? new RenderedCompactJsonFormatter()
        : new MessageTemplateTextFormatter("{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}",
            System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Formats each event into a buffer on the queue's thread and hands it to the output in one write.</summary>
    private sealed class WriterSink(ITextFormatter formatter, TextWriter output) : ILogEventSink
    {
        private readonly StringWriter _buffer = new(System.Globalization.CultureInfo.InvariantCulture);

        public void Emit(LogEvent logEvent)
        {
            StringBuilder text = _buffer.GetStringBuilder();
            text.Clear();
            formatter.Format(logEvent, _buffer);
            output.Write(text);
            output.Flush();
        }
    }

    /// <summary>Forwards events to the queue and, once it has room again, says how many it dropped.</summary>
    private sealed class DropReporter : ILogEventSink, IAsyncLogEventSinkMonitor
    {
        private IAsyncLogEventSinkInspector? _inspector;
        private long _reported;

        public Logger? Writer { get; set; }

        public long Dropped => _inspector?.DroppedMessagesCount ?? 0;

        public void Emit(LogEvent logEvent)
        {
            ReportDrops(force: false);
            Writer!.Write(logEvent);
        }

        public void ReportDrops(bool force)
        {
            IAsyncLogEventSinkInspector? inspector = _inspector;
            if (inspector is null)
            {
                return;
            }

            long dropped = inspector.DroppedMessagesCount;
            long reported = Volatile.Read(ref _reported);
            // Report only when the writer has drained half the queue: a report into a full queue would be dropped too.
            if (dropped == reported || (!force && inspector.Count > inspector.BufferSize / 2)
                || Interlocked.CompareExchange(ref _reported, dropped, reported) != reported)
            {
                return;
            }

            Writer!.Warning("{DroppedEvents} log events were dropped ({TotalDropped} since start): the log output (stderr) was not keeping up",
                dropped - reported, dropped);
        }

        public void StartMonitoring(IAsyncLogEventSinkInspector inspector) => _inspector = inspector;

        public void StopMonitoring(IAsyncLogEventSinkInspector inspector)
        {
        }
    }
}
