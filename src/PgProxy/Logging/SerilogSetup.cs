using PgProxy.Core.Configuration;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Json;

namespace PgProxy.Logging;

/// <summary>The only file that imports Serilog: builds the provider from [log].</summary>
public static class SerilogSetup
{
    /// <summary>Creates a logger writing to stderr in text or JSON.</summary>
    public static Serilog.Core.Logger Create(LogSection log)
    {
        LogEventLevel level = log.Level switch
        {
            "trace" => LogEventLevel.Verbose,
            "debug" => LogEventLevel.Debug,
            "warning" => LogEventLevel.Warning,
            "error" => LogEventLevel.Error,
            _ => LogEventLevel.Information,
        };
        LoggerConfiguration configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            // Startup failures (port in use) are reported once, in one line, by Program; not again with a stack trace.
            .MinimumLevel.Override("Microsoft.Extensions.Hosting", LogEventLevel.Fatal)
            .Enrich.FromLogContext();
        configuration = log.Format == LogFormat.Json
            ? configuration.WriteTo.Console(new JsonFormatter(renderMessage: true), standardErrorFromLevel: LogEventLevel.Verbose)
            : configuration.WriteTo.Console(
                outputTemplate: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff} {Level:u3} {Message:lj}{NewLine}{Exception}",
                standardErrorFromLevel: LogEventLevel.Verbose,
                formatProvider: System.Globalization.CultureInfo.InvariantCulture);
        return configuration.CreateLogger();
    }
}
