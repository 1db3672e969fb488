using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgProxy.Core.Configuration;
using PgProxy.Logging;

namespace PgProxy.IntegrationTests;

/// <summary>The log pipeline: a blocked output never blocks the relay; drops are counted and reported; JSON is CLEF.</summary>
[Collection(PostgresCollection.Name)]
public sealed class LogOutputTests(PostgresFixture pg)
{
    [Fact(Timeout = 120_000)]
    public async Task BlockedOutput_TransactionsKeepFlowing_DropsCountedAndReported()
    {
        using var output = new GatedWriter();
        // A small queue so that a few hundred logins overflow it; every login and logout logs one line at info.
        await using ProxyLog log = ProxyLog.Create(new LogSection { Level = "info" }, output, queueCapacity: 64);
        await using TestProxy proxy = await TestProxy.StartAsync(pg, logging: log.AddTo);

        const int Logins = 300;
        for (int i = 0; i < Logins; i++)
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
            await using var cmd = new NpgsqlCommand("SELECT @i::int + 1", conn);
            cmd.Parameters.AddWithValue("i", i);
            Assert.Equal(i + 1, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
        }

        // The writer thread is stuck in its first write (one batch); the queue held 64 events and the rest were dropped.
        Assert.Equal(1, output.Writes);
        int firstBatch = output.FirstWriteLines;
        Assert.InRange(firstBatch, 1, Logins);
        Assert.True(log.Dropped >= (2 * Logins) - 64 - firstBatch - 2, $"dropped {log.Dropped}, first batch {firstBatch} lines");

        output.Open();
        long dropped = log.Dropped;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!output.Text.Contains("log events were dropped", StringComparison.Ordinal))
        {
            // The report goes out with the next event once the queue has drained.
            await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
            await Task.Delay(50, cts.Token);
        }

        // The last logouts may still have been dropped after `dropped` was read: the report counts at least as many.
        System.Text.RegularExpressions.Match report = System.Text.RegularExpressions.Regex.Match(output.Text,
            @"\d+ log events were dropped \((\d+) since start\): the log output \(stderr\) was not keeping up");
        Assert.True(report.Success, output.Text);
        Assert.InRange(long.Parse(report.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), dropped, dropped + 4);
        Assert.Contains("logged in to", output.Text, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task JsonFormat_WritesOneClefObjectPerLine()
    {
        using var output = new GatedWriter();
        output.Open();
        ProxyLog log = ProxyLog.Create(new LogSection { Level = "debug", Format = LogFormat.Json }, output);
        await using (TestProxy proxy = await TestProxy.StartAsync(pg, logging: log.AddTo))
        {
            await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        }

        await log.DisposeAsync();
        string[] lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        bool sawLogin = false;
        foreach (string line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            JsonElement e = doc.RootElement;
            Assert.True(DateTimeOffset.TryParse(e.GetProperty("@t").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _), line);
            Assert.False(string.IsNullOrEmpty(e.GetProperty("@m").GetString()), line);
            if (e.GetProperty("@m").GetString()!.Contains("logged in to", StringComparison.Ordinal))
            {
                sawLogin = true;
                Assert.Equal(PostgresFixture.Alice, e.GetProperty("User").GetString());
                Assert.Equal(PostgresFixture.Database, e.GetProperty("Database").GetString());
                Assert.True(e.TryGetProperty("EventId", out _), line);
                Assert.False(e.TryGetProperty("@l", out _), "Information is CLEF's default level and is left out");
            }
        }

        Assert.True(sawLogin, output.Text);
        Assert.DoesNotContain(PostgresFixture.AlicePassword, output.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TextFormat_OneLinePerEvent_WithTimeLevelMessageAndException_AndLevelsFiltered()
    {
        using var output = new GatedWriter();
        output.Open();
        ProxyLog log = ProxyLog.Create(new LogSection { Level = "info" }, output);
        Microsoft.Extensions.Logging.ILogger logger = log.LoggerFactory.CreateLogger("PgProxy.Test");
        Microsoft.Extensions.Logging.ILogger framework = log.LoggerFactory.CreateLogger("Microsoft.AspNetCore.Test");
        logger.LogInformation("Client {ConnectionId} logged out: {Reason}", "c7", DayOfWeek.Friday);
        logger.LogDebug("not written: below [log] level {Level}", "info");
        framework.LogInformation("not written: the framework's categories log from warning up");
        framework.LogWarning("framework warning {Code}", 42);
        logger.LogError(new InvalidOperationException("boom"), "Client {ConnectionId}: unexpected error", "c8");
        log.Logger.Warning("from Serilog's own logger: {Clients} clients", 3);
        await log.DisposeAsync();

        string[] lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var timed = new System.Text.RegularExpressions.Regex(@"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} (INF|WRN|ERR) ");
        Assert.Matches(timed, lines[0]);
        Assert.Equal("INF Client c7 logged out: Friday", lines[0][24..]);
        Assert.Equal("WRN framework warning 42", lines[1][24..]);
        Assert.Equal("ERR Client c8: unexpected error", lines[2][24..]);
        Assert.StartsWith("System.InvalidOperationException: boom", lines[3], StringComparison.Ordinal);
        Assert.Contains("WRN from Serilog's own logger: 3 clients", output.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("not written", output.Text, StringComparison.Ordinal);
        Assert.All(lines.Where(l => !l.StartsWith("System.", StringComparison.Ordinal) && !l.StartsWith("   at ", StringComparison.Ordinal)),
            l => Assert.Matches(timed, l));
    }

    [Fact(Timeout = 60_000)]
    public async Task SustainedLogging_BurstsAboveHalfTheQueue_AreWrittenWithoutDrops()
    {
        // While events keep coming (a line every few ms here) the writer writes less often: its window grows to
        // 100 ms. A burst of 20 every 50 ms on top would overflow a 64-event queue within one such window; the queue
        // reaching half its capacity ends the window instead.
        using var output = new GatedWriter();
        output.Open();
        ProxyLog log = ProxyLog.Create(new LogSection { Level = "info" }, output, queueCapacity: 64);
        Microsoft.Extensions.Logging.ILogger logger = log.LoggerFactory.CreateLogger("PgProxy.Test");
        const int Rounds = 40, Burst = 20, Trickle = 20;
        for (int r = 0; r < Rounds; r++)
        {
            for (int i = 0; i < Burst; i++)
            {
                logger.LogInformation("round {Round} burst {Event}", r, i);
            }

            for (int i = 0; i < Trickle; i++)
            {
                logger.LogInformation("round {Round} trickle {Event}", r, i);
                await Task.Delay(2, TestContext.Current.CancellationToken);
            }
        }

        await log.DisposeAsync();
        Assert.Equal(0, log.Dropped);
        string[] lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Rounds * (Burst + Trickle), lines.Length);
        Assert.EndsWith($"round {Rounds - 1} trickle {Trickle - 1}", lines[^1], StringComparison.Ordinal);
        Assert.True(output.Writes < Rounds * (Burst + Trickle) / 8, $"{output.Writes} writes: the writer should batch");
    }

    /// <summary>A writer whose writes block until <see cref="Open"/> (a full pipe), then collect the text.</summary>
    private sealed class GatedWriter : TextWriter
    {
        private readonly ManualResetEventSlim _gate = new();
        private readonly StringBuilder _text = new();
        private int _writes;
        private int _firstWriteLines;

        public override Encoding Encoding => Encoding.UTF8;

        public int Writes => Volatile.Read(ref _writes);

        /// <summary>Lines handed to the first write (known as soon as it starts, though it blocks).</summary>
        public int FirstWriteLines => Volatile.Read(ref _firstWriteLines);

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public void Open() => _gate.Set();

        public override void Write(char value) => Write(value.ToString());

        public override void Write(string? value)
        {
            Interlocked.CompareExchange(ref _firstWriteLines, value?.Count(c => c == '\n') ?? 0, 0);
            Interlocked.Increment(ref _writes);
            _gate.Wait();
            lock (_text)
            {
                _text.Append(value);
            }
        }

        public override void Write(StringBuilder? value) => Write(value?.ToString());

        protected override void Dispose(bool disposing)
        {
            _gate.Set();
            if (disposing)
            {
                _gate.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
