using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Serilog.Events;

namespace PgProxy.Logging;

/// <summary>
/// The host's <see cref="ILoggerFactory"/>: every <see cref="ILogger"/> call of the proxy lands here. A call that
/// passes the level check captures its arguments as they are (the logger's state, its formatter, the time) into one
/// small object and queues it; the text, or the JSON, is made later on the log's writer thread. This replaces
/// Serilog.Extensions.Logging's adapter, which built Serilog's whole event on the calling thread (a property object
/// per argument, the event's dictionary, an EventId structure, the template cache's lock): a pooler logs a line per
/// login and per logout, on the thread that relays, and that cost a tenth of a connect + transaction's CPU.
/// </summary>
internal sealed class ProxyLoggerFactory : ILoggerFactory
{
    private readonly BackgroundWriter _writer;
    private readonly LogEventLevel _minimum;
    private readonly ConcurrentDictionary<string, CategoryLogger> _loggers = new(StringComparer.Ordinal);

    public ProxyLoggerFactory(BackgroundWriter writer, LogEventLevel minimum)
    {
        _writer = writer;
        _minimum = minimum;
    }

    /// <summary>[log] level, raised for the framework's own categories as <see cref="ProxyLog"/> says.</summary>
    internal LogEventLevel MinimumFor(string category) =>
        // Startup failures (port in use) are reported once, in one line, by Program; not again with a stack trace.
        category.StartsWith("Microsoft.Extensions.Hosting", StringComparison.Ordinal) ? LogEventLevel.Fatal
        : category.StartsWith("Microsoft", StringComparison.Ordinal) ? Max(_minimum, LogEventLevel.Warning)
        : _minimum;

    public ILogger CreateLogger(string categoryName) =>
        _loggers.GetOrAdd(categoryName, static (name, factory) => new CategoryLogger(factory._writer, name, factory.MinimumFor(name)), this);

    /// <summary>Other providers are not added: every event goes to the one pipeline (as with Serilog's factory, which ignored them too).</summary>
    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private static LogEventLevel Max(LogEventLevel a, LogEventLevel b) => a > b ? a : b;

    /// <summary>Serilog's level for <paramref name="level"/>; null for <see cref="LogLevel.None"/>.</summary>
    internal static LogEventLevel? ToSerilog(LogLevel level) => level switch
    {
        LogLevel.Trace => LogEventLevel.Verbose,
        LogLevel.Debug => LogEventLevel.Debug,
        LogLevel.Information => LogEventLevel.Information,
        LogLevel.Warning => LogEventLevel.Warning,
        LogLevel.Error => LogEventLevel.Error,
        LogLevel.Critical => LogEventLevel.Fatal,
        _ => null,
    };

    /// <summary>A category's logger: the level check and the capture.</summary>
    private sealed class CategoryLogger(BackgroundWriter writer, string category, LogEventLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null; // the proxy uses no scopes; the framework's (HTTP requests) are not logged

        public bool IsEnabled(LogLevel logLevel) => ToSerilog(logLevel) is { } level && level >= minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (ToSerilog(logLevel) is { } level && level >= minimum)
            {
                writer.Enqueue(new CapturedEvent<TState>(DateTime.UtcNow, level, category, eventId, state, exception, formatter));
            }
        }
    }
}

/// <summary>
/// One <see cref="ILogger"/> call, held as it was made until the writer thread renders it. The arguments of a log
/// call are values (strings, numbers, enums) that do not change afterwards, so rendering later renders what was logged.
/// </summary>
internal sealed class CapturedEvent<TState>(DateTime utc, LogEventLevel level, string category, EventId eventId, TState state,
    Exception? exception, Func<TState, Exception?, string> formatter) : PendingEvent(utc, level, exception)
{
    public override string RenderMessage() => formatter(state, Exception);

    public override void Render(System.Text.StringBuilder to)
    {
        if (!MessageText.TryAppend(to, state))
        {
            to.Append(formatter(state, Exception));
        }
    }

    public override LogEvent ToLogEvent(Serilog.Core.Logger binder) => LogEvents.FromState(this, binder, category, eventId, state);
}
