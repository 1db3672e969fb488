using System.Globalization;
using System.Text.Json;
using PgProxy.Core.Configuration.Toml;
using PgProxy.Testing;

namespace PgProxy.Core.Tests.Configuration;

/// <summary>
/// Runs every TOML 1.0.0 vector of the toml-test suite (MIT) when it is beside the checkout, in ../shared/toml-test
/// (CI has it). The vector names are kept here (toml-test-files-1.0.0.txt, the suite's own list), so a clone without
/// the suite reports each vector as skipped, by name, rather than running nothing silently. The reader is Tomlyn,
/// which follows TOML 1.1 where 1.1 relaxes 1.0: the invalid 1.0 vectors it accepts for that reason are listed in
/// <see cref="AcceptedUnderToml11"/>, each with the 1.1 change, and tested to be accepted and valid in 1.1.
/// </summary>
public sealed class TomlComplianceTests
{
    /// <summary>Invalid in TOML 1.0, accepted by Tomlyn because TOML 1.1 allows them (toml.io/en/v1.1.0).</summary>
    private static readonly Dictionary<string, string> AcceptedUnderToml11 = new(StringComparer.Ordinal)
    {
        ["invalid/inline-table/linebreak-01.toml"] = "1.1 allows newlines inside inline tables",
        ["invalid/inline-table/linebreak-02.toml"] = "1.1 allows newlines inside inline tables",
        ["invalid/inline-table/linebreak-03.toml"] = "1.1 allows newlines inside inline tables",
        ["invalid/inline-table/linebreak-04.toml"] = "1.1 allows newlines inside inline tables",
        ["invalid/inline-table/trailing-comma.toml"] = "1.1 allows a trailing comma in an inline table",
        ["invalid/datetime/no-secs.toml"] = "1.1 makes the seconds of a time optional",
        ["invalid/local-datetime/no-secs.toml"] = "1.1 makes the seconds of a time optional",
        ["invalid/local-time/no-secs.toml"] = "1.1 makes the seconds of a time optional",
        ["invalid/string/basic-byte-escapes.toml"] = "1.1 adds the \\xHH escape to basic strings",
    };

    private static string TestsDir => Path.Combine(RepoPaths.Shared, "toml-test", "tests");

    private static string ListFile => Path.Combine(AppContext.BaseDirectory, "Configuration", "toml-test-files-1.0.0.txt");

    private static bool SuitePresent => Directory.Exists(TestsDir);

    public static TheoryData<string> ValidFiles() => new(Files("valid/"));

    public static TheoryData<string> InvalidFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Files("invalid/"))
        {
            if (!AcceptedUnderToml11.ContainsKey(file))
            {
                data.Add(file);
            }
        }

        return data;
    }

    public static TheoryData<string> Toml11Files() => new(AcceptedUnderToml11.Keys.Order(StringComparer.Ordinal));

    private static void SkipWithoutSuite(string file)
    {
        if (!SuitePresent)
        {
            Assert.Skip($"toml-test vector {file}: the suite is not at {TestsDir} (clone toml-test there to run it)");
        }
    }

    private static IEnumerable<string> Files(string prefix) =>
        File.ReadAllLines(ListFile).Where(l => l.StartsWith(prefix, StringComparison.Ordinal) && l.EndsWith(".toml", StringComparison.Ordinal));

    [Fact]
    public void VectorList_IsLarge_AndTheSuitesOwn()
    {
        Assert.True(ValidFiles().Count > 150, "valid vectors");
        Assert.All(AcceptedUnderToml11.Keys, f => Assert.Contains(f, Files("invalid/")));
        Assert.True(InvalidFiles().Count > 300, "invalid vectors");
        if (SuitePresent)
        {
            Assert.Equal(File.ReadAllLines(Path.Combine(TestsDir, "files-toml-1.0.0")), File.ReadAllLines(ListFile));
        }
    }

    [Theory]
    [MemberData(nameof(ValidFiles))]
    public void Valid_Parses_ToExpectedDocument(string file)
    {
        SkipWithoutSuite(file);
        string path = Path.Combine(TestsDir, file);
        TomlTable table = TomlReader.Parse(File.ReadAllBytes(path));
        using JsonDocument expected = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(path, ".json")));
        AssertEqual(expected.RootElement, table, "$");
    }

    [Theory]
    [MemberData(nameof(InvalidFiles))]
    public void Invalid_IsRejected(string file)
    {
        SkipWithoutSuite(file);
        byte[] bytes = File.ReadAllBytes(Path.Combine(TestsDir, file));
        TomlException ex = Assert.Throws<TomlException>(() => TomlReader.Parse(bytes));
        Assert.True(ex.Position.Line >= 1);
    }

    [Theory]
    [MemberData(nameof(Toml11Files))]
    public void InvalidIn10_ButValidIn11_IsAccepted(string file)
    {
        SkipWithoutSuite(file);
        // Listed only while Tomlyn accepts it and TOML 1.1 no longer calls it invalid.
        Assert.DoesNotContain(file, File.ReadAllLines(Path.Combine(TestsDir, "files-toml-1.1.0")));
        TomlTable table = TomlReader.Parse(File.ReadAllBytes(Path.Combine(TestsDir, file)));
        Assert.NotEqual(0, table.Count);
        Assert.False(string.IsNullOrEmpty(AcceptedUnderToml11[file]));
    }

    private static void AssertEqual(JsonElement expected, object actual, string path)
    {
        if (expected.ValueKind == JsonValueKind.Array)
        {
            var array = Assert.IsType<TomlArray>(actual);
            Assert.True(expected.GetArrayLength() == array.Count, $"{path}: array length");
            int i = 0;
            foreach (JsonElement item in expected.EnumerateArray())
            {
                AssertEqual(item, array[i], $"{path}[{i}]");
                i++;
            }

            return;
        }

        Assert.Equal(JsonValueKind.Object, expected.ValueKind);
        if (expected.TryGetProperty("type", out JsonElement type) && type.ValueKind == JsonValueKind.String &&
            expected.TryGetProperty("value", out JsonElement value) && value.ValueKind == JsonValueKind.String &&
            expected.EnumerateObject().Count() == 2 && actual is not TomlTable)
        {
            AssertScalar(type.GetString()!, value.GetString()!, actual, path);
            return;
        }

        var table = Assert.IsType<TomlTable>(actual);
        var expectedKeys = expected.EnumerateObject().Select(p => p.Name).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var actualKeys = table.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        Assert.True(expectedKeys.SequenceEqual(actualKeys), $"{path}: keys [{string.Join(",", expectedKeys)}] vs [{string.Join(",", actualKeys)}]");
        foreach (JsonProperty p in expected.EnumerateObject())
        {
            AssertEqual(p.Value, table[p.Name], $"{path}.{p.Name}");
        }
    }

    private static void AssertScalar(string type, string value, object actual, string path)
    {
        switch (type)
        {
            case "string":
                Assert.True(value == Assert.IsType<string>(actual), $"{path}: string");
                break;
            case "integer":
                Assert.True(long.Parse(value, CultureInfo.InvariantCulture) == Assert.IsType<long>(actual), $"{path}: integer");
                break;
            case "bool":
                Assert.True(bool.Parse(value) == Assert.IsType<bool>(actual), $"{path}: bool");
                break;
            case "float":
                double d = Assert.IsType<double>(actual);
                double e = value switch
                {
                    "inf" or "+inf" => double.PositiveInfinity,
                    "-inf" => double.NegativeInfinity,
                    "nan" or "+nan" or "-nan" => double.NaN,
                    _ => double.Parse(value, CultureInfo.InvariantCulture),
                };
                Assert.True(e.Equals(d), $"{path}: float {value} vs {d}");
                break;
            default:
                var dt = Assert.IsType<TomlDateTime>(actual);
                string kind = dt.Kind switch
                {
                    TomlDateTimeKind.OffsetDateTime => "datetime",
                    TomlDateTimeKind.LocalDateTime => "datetime-local",
                    TomlDateTimeKind.LocalDate => "date-local",
                    _ => "time-local",
                };
                Assert.True(type == kind, $"{path}: {type} vs {kind}");
                Assert.True(Normalize(value) == Normalize(dt.Text), $"{path}: {value} vs {dt.Text}");
                break;
        }
    }

    private static string Normalize(string text)
    {
        string s = text.ToUpperInvariant().Replace(' ', 'T');
        // Compare fractional seconds numerically: trailing zeros do not matter.
        int dot = s.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            return s;
        }

        int end = dot + 1;
        while (end < s.Length && char.IsAsciiDigit(s[end]))
        {
            end++;
        }

        string frac = s.Substring(dot + 1, end - dot - 1).TrimEnd('0');
        return s.Substring(0, dot) + (frac.Length > 0 ? "." + frac : "") + s.Substring(end);
    }
}
