using System.Text;
using Microsoft.Extensions.DependencyInjection;
using PgProxy.Core.Configuration;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace PgProxy.Logging;

/// <summary>
/// The proxy's log pipeline (this folder is the only one that imports Serilog). A log call formats nothing and waits
/// for nothing on the calling thread (with inline socket completions that is the thread relaying data): it captures its
/// arguments into one object (<see cref="ProxyLoggerFactory"/>) in a bounded queue, and one background thread renders
/// and writes them to stderr as text or CLEF JSON (Serilog's formatter). When stderr does not keep up (a full container
/// log pipe, a stopped terminal) the queue fills and further events are dropped and counted; once the writer has caught
/// up, the next event is preceded by a warning that says how many were lost.
/// </summary>
public sealed class ProxyLog : IAsyncDisposable
{
    /// <summary>Events the queue holds before it drops.</summary>
    public const int QueueCapacity = 10_000;

    private readonly BackgroundWriter _writer;
    private readonly ProxyLoggerFactory _factory;

    private ProxyLog(Logger logger, BackgroundWriter writer, ProxyLoggerFactory factory)
    {
        Logger = logger;
        _writer = writer;
        _factory = factory;
    }

    /// <summary>Serilog's logger into the same queue, for the few lines Program writes itself (filters by [log] level).</summary>
    public Logger Logger { get; }

    /// <summary>The factory of the proxy's loggers (filters by [log] level, then captures and queues).</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory LoggerFactory => _factory;

    /// <summary>Makes this pipeline the host's logger factory (no Microsoft.Extensions.Logging dispatch layer in between).</summary>
    public void AddTo(Microsoft.Extensions.Logging.ILoggingBuilder logging) =>
        logging.Services.AddSingleton<Microsoft.Extensions.Logging.ILoggerFactory>(_factory);

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
        var writer = new BackgroundWriter(log.Format == LogFormat.Json ? new RenderedCompactJsonFormatter() : null,
            output ?? StandardError(), queueCapacity);
        var factory = new ProxyLoggerFactory(writer, level);
        Logger logger = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .WriteTo.Sink(writer)
            .CreateLogger();
        return new ProxyLog(logger, writer, factory);
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
}
