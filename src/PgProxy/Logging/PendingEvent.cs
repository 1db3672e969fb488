using Microsoft.Extensions.Logging;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Display;
using Serilog.Parsing;

namespace PgProxy.Logging;

/// <summary>An event in the log's queue, rendered on the writer thread: as a line of text, or as Serilog's event for JSON.</summary>
internal abstract class PendingEvent(DateTime utc, LogEventLevel level, Exception? exception)
{
    public DateTime Utc { get; } = utc;

    public LogEventLevel Level { get; } = level;

    public Exception? Exception { get; } = exception;

    /// <summary>The message as the text format shows it (strings as they are, not quoted).</summary>
    public abstract string RenderMessage();

    /// <summary>Appends <see cref="RenderMessage"/> to <paramref name="to"/> (an event may write it there without making the string).</summary>
    public virtual void Render(System.Text.StringBuilder to) => to.Append(RenderMessage());

    /// <summary>Serilog's event, for the JSON (CLEF) formatter.</summary>
    public abstract LogEvent ToLogEvent(Logger binder);
}

/// <summary>An event logged through Serilog's own logger (<see cref="ProxyLog.Logger"/>: the shutdown's few lines) or made by the writer.</summary>
internal sealed class SerilogEvent(LogEvent logEvent) : PendingEvent(logEvent.Timestamp.UtcDateTime, logEvent.Level, logEvent.Exception)
{
    private static readonly MessageTemplateTextFormatter s_message = new("{Message:lj}", System.Globalization.CultureInfo.InvariantCulture);

    public override string RenderMessage()
    {
        using var text = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        s_message.Format(logEvent, text);
        return text.ToString();
    }

    public override LogEvent ToLogEvent(Logger binder) => logEvent;
}

/// <summary>Serilog events made, on the writer thread, from <see cref="ILogger"/> calls: the same properties Serilog's adapter gave them.</summary>
internal static class LogEvents
{
    /// <summary>The event for a logger's state: its "{OriginalFormat}" as the template, its other values as properties, then SourceContext and EventId.</summary>
    public static LogEvent FromState<TState>(PendingEvent e, Logger binder, string category, EventId eventId, TState state)
    {
        var properties = new List<LogEventProperty>();
        MessageTemplate? template = null;
        if (state is IEnumerable<KeyValuePair<string, object?>> values)
        {
            foreach ((string key, object? value) in values)
            {
                if (key == "{OriginalFormat}" && value is string text)
                {
                    template = Parse(text);
                }
                else
                {
                    bool destructure = key.StartsWith('@');
                    if (binder.BindProperty(destructure ? key[1..] : key, value, destructure, out LogEventProperty? property))
                    {
                        properties.Add(property);
                    }
                }
            }
        }

        // Without a template (a plain state), the formatted text is the message, taken literally.
        template ??= new MessageTemplate([new TextToken(e.RenderMessage())]);
        properties.Add(new LogEventProperty("SourceContext", new ScalarValue(category)));
        if (eventId.Id != 0 || eventId.Name is not null)
        {
            var parts = new List<LogEventProperty> { new("Id", new ScalarValue(eventId.Id)) };
            if (eventId.Name is not null)
            {
                parts.Add(new LogEventProperty("Name", new ScalarValue(eventId.Name)));
            }

            properties.Add(new LogEventProperty("EventId", new StructureValue(parts)));
        }

        return new LogEvent(new DateTimeOffset(e.Utc).ToLocalTime(), e.Level, e.Exception, template, properties);
    }

    private static MessageTemplate Parse(string text) =>
        TemplateCache<MessageTemplate>.GetOrAdd(text, static t => new MessageTemplateParser().Parse(t));
}
