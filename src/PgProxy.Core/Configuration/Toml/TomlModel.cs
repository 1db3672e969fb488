namespace PgProxy.Core.Configuration.Toml;

/// <summary>Where a key or value stands in the source, 1-based.</summary>
public readonly record struct TomlPosition(int Line, int Column)
{
    /// <inheritdoc />
    public override string ToString() => $"{Line}:{Column}";
}

/// <summary>The four TOML date/time kinds.</summary>
public enum TomlDateTimeKind
{
    /// <summary>Date, time and offset.</summary>
    OffsetDateTime,
    /// <summary>Date and time without offset.</summary>
    LocalDateTime,
    /// <summary>Date only.</summary>
    LocalDate,
    /// <summary>Time only.</summary>
    LocalTime,
}

/// <summary>A TOML date/time value, kept as validated source text (the config model does not use dates).</summary>
public sealed record TomlDateTime(TomlDateTimeKind Kind, string Text)
{
    /// <inheritdoc />
    public override string ToString() => Text;
}

/// <summary>A TOML array (of values, or of tables written with [[header]]).</summary>
public sealed class TomlArray : List<object>;

/// <summary>A TOML table: values in source order and where each key was written.</summary>
public sealed class TomlTable
{
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TomlPosition> _positions = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];

    /// <summary>Position of the header or key that created the table.</summary>
    public TomlPosition Position { get; internal set; }

    /// <summary>Keys in source order.</summary>
    public IReadOnlyList<string> Keys => _order;

    /// <summary>Number of keys.</summary>
    public int Count => _order.Count;

    /// <summary>The value of a key: string, long, double, bool, <see cref="TomlDateTime"/>, <see cref="TomlArray"/> or <see cref="TomlTable"/>.</summary>
    public object this[string key] => _values[key];

    /// <summary>Looks up a key.</summary>
    public bool TryGetValue(string key, out object? value)
    {
        bool found = _values.TryGetValue(key, out object? v);
        value = v;
        return found;
    }

    /// <summary>Where <paramref name="key"/> was written.</summary>
    public TomlPosition PositionOf(string key) => _positions.TryGetValue(key, out TomlPosition p) ? p : Position;

    internal void Add(string key, object value, TomlPosition position)
    {
        _values.Add(key, value);
        _positions[key] = position;
        _order.Add(key);
    }
}

/// <summary>A TOML syntax or semantic error with its position.</summary>
public sealed class TomlException : Exception
{
    /// <summary>Creates an error.</summary>
    public TomlException(string message, TomlPosition position)
        : base($"{position.Line}:{position.Column}: {message}")
    {
        Position = position;
        Reason = message;
    }

    /// <summary>Where it happened.</summary>
    public TomlPosition Position { get; }

    /// <summary>The message without the position.</summary>
    public string Reason { get; }
}
