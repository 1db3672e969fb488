using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using PgProxy.Logging;

namespace PgProxy.IntegrationTests;

/// <summary>The log writer's own rendering of a logger's message: the same text as the logger's formatter, or none.</summary>
public sealed partial class MessageTextTests
{
    private enum Reason
    {
        ClientClosed,
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Client {ConnectionId} from {Remote} logged in to {Database} as {User} ({Auth})")]
    private static partial void LogFive(ILogger logger, string connectionId, object remote, string database, string? user, string auth);

    [LoggerMessage(Level = LogLevel.Information, Message = "Backend {BackendId} took {PauseMs} ms, {Reason}; {Count} left of {Total} ({Ratio}) for {Name}")]
    private static partial void LogSeven(ILogger logger, long backendId, double pauseMs, Reason reason, int count, int total, decimal ratio, string name);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Second} before {First}")]
    private static partial void LogReordered(ILogger logger, string first, int second);

    [LoggerMessage(Level = LogLevel.Information, Message = "took {PauseMs:F1} ms")]
    private static partial void LogFormatted(ILogger logger, double pauseMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "names {Names}")]
    private static partial void LogList(ILogger logger, string[] names);

    [LoggerMessage(Level = LogLevel.Information, Message = "{{literal}} and {Value}")]
    private static partial void LogEscaped(ILogger logger, int value);

    public static TheoryData<string, bool> Cases => new()
    {
        { "five", true },
        { "five-null", true },
        { "seven", true },
        { "reordered", true },
        { "define", true },
        { "formatted", false },
        { "list", false },
        { "escaped", false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TryAppend_WritesWhatTheFormatterWrites_OrNothing(string name, bool rendered)
    {
        var logger = new CapturingLogger();
        switch (name)
        {
            case "five":
                LogFive(logger, "c42", new IPEndPoint(IPAddress.Parse("10.1.2.3"), 5432), "db", "alice", "trust");
                break;
            case "five-null":
                LogFive(logger, "c42", "?", "db", null, "trust");
                break;
            case "seven":
                LogSeven(logger, 17, 1.25, Reason.ClientClosed, -3, 1_000_000, 0.5m, "x");
                break;
            case "reordered":
                LogReordered(logger, "one", 2);
                break;
            case "define":
                LoggerMessage.Define<int, string>(LogLevel.Information, default, "{Count} clients of {Pool}")(logger, 12_345, "db/alice", null);
                break;
            case "formatted":
                LogFormatted(logger, 1.25);
                break;
            case "list":
                LogList(logger, ["a", "b"]);
                break;
            case "escaped":
                LogEscaped(logger, 7);
                break;
        }

        Assert.NotNull(logger.Render);
        var text = new StringBuilder("before|");
        Assert.Equal(rendered, logger.Render!(text));
        Assert.Equal(rendered ? "before|" + logger.Formatted : "before|", text.ToString());
    }

    private sealed class CapturingLogger : ILogger
    {
        public Func<StringBuilder, bool>? Render { get; private set; }

        public string? Formatted { get; private set; }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Formatted = formatter(state, exception);
            Render = to => MessageText.TryAppend(to, state);
        }
    }
}
