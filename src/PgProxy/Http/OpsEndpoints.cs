using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using PgProxy.Core.Diagnostics;
using Prometheus;

namespace PgProxy.Http;

/// <summary>
/// The operations port ([http] listen), on Kestrel: it is off the data path. <c>GET /healthz</c> answers 200 while
/// the process can answer at all (Kubernetes' liveness); <c>GET /readyz</c> 200 while the proxy listens and is not
/// shutting down, 503 otherwise (readiness: a draining pod leaves its Service); <c>GET /metrics</c> the Prometheus
/// text format by prometheus-net: every <see cref="ProxyMetrics"/> figure, observed at the scrape exactly as the
/// <c>PgProxy</c> meter observes it for <c>dotnet-counters</c> and OpenTelemetry, plus the process's CPU, memory and
/// GC figures. (prometheus-net's own meter adapter was tried: on a registry of our own it published no series.)
/// </summary>
public sealed class OpsEndpoints : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OpsEndpoints(WebApplication app, IPEndPoint endpoint)
    {
        _app = app;
        Endpoint = endpoint;
    }

    /// <summary>The bound endpoint (port 0 resolved).</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>Binds <paramref name="endpoint"/> (throws <see cref="IOException"/> when it cannot) and starts serving.</summary>
    public static async Task<OpsEndpoints> StartAsync(IPEndPoint endpoint, Func<CancellationToken, ValueTask<string?>> notReady, ProxyMetrics metrics,
        CancellationToken ct)
    {
        CollectorRegistry registry = CreateRegistry(metrics);

        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(o =>
        {
            o.Listen(endpoint);
            o.AddServerHeader = false;
        });
        WebApplication app = builder.Build();
        app.Run(context => HandleAsync(context, notReady, registry, metrics));
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"Failed to bind the operations port [http] listen = {endpoint}: {ex.Message}", ex);
        }

        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var resolved = new IPEndPoint(endpoint.Address, new Uri(bound).Port);
        return new OpsEndpoints(app, resolved);
    }

    /// <summary>
    /// A registry of its own, not prometheus-net's static default: two proxies in one process (the tests) never
    /// publish each other's pools, and nothing runs in the background (the default one listens to event counters,
    /// which wakes the process every few seconds). The gauges are filled from the observations just before each scrape.
    /// </summary>
    private static CollectorRegistry CreateRegistry(ProxyMetrics metrics)
    {
        CollectorRegistry registry = Metrics.NewCustomRegistry();
        DotNetStats.Register(registry);
        MetricFactory factory = Metrics.WithCustomRegistry(registry);
        // Prometheus names end in _total for counters (prometheus-net checks it); the library's counter only grows,
        // so each observed total is set with IncTo.
        var series = new (ObservedMetric Metric, Action<string[], double> Set)[metrics.Metrics.Count];
        for (int i = 0; i < series.Length; i++)
        {
            ObservedMetric m = metrics.Metrics[i];
            if (m.Counter)
            {
                Counter counter = factory.CreateCounter(m.PrometheusName, m.Description, m.Labels);
                series[i] = (m, (labels, value) => (labels.Length == 0 ? counter : (ICounter)counter.WithLabels(labels)).IncTo(value));
            }
            else
            {
                Gauge gauge = factory.CreateGauge(m.PrometheusName, m.Description, m.Labels);
                series[i] = (m, (labels, value) => (labels.Length == 0 ? gauge : (IGauge)gauge.WithLabels(labels)).Set(value));
            }
        }

        registry.AddBeforeCollectCallback(() =>
        {
            foreach ((ObservedMetric metric, Action<string[], double> set) in series)
            {
                foreach (Measurement<double> measurement in metric.Observe())
                {
                    string[] values = new string[metric.Labels.Length];
                    foreach (KeyValuePair<string, object?> tag in measurement.Tags)
                    {
                        values[Array.IndexOf(metric.Labels, tag.Key)] = tag.Value?.ToString() ?? "";
                    }

                    set(values, measurement.Value);
                }
            }
        });
        return registry;
    }

    private static async Task HandleAsync(HttpContext context, Func<CancellationToken, ValueTask<string?>> notReady, CollectorRegistry registry,
        ProxyMetrics metrics)
    {
        HttpResponse response = context.Response;
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return;
        }

        switch (context.Request.Path.Value)
        {
            case "/healthz":
                await PlainAsync(response, StatusCodes.Status200OK, "ok\n").ConfigureAwait(false);
                break;
            case "/readyz":
                string? why = await notReady(context.RequestAborted).ConfigureAwait(false);
                await PlainAsync(response, why is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable,
                    why is null ? "ready\n" : $"not ready: {why}\n").ConfigureAwait(false);
                break;
            case "/metrics":
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await registry.CollectAndExportAsTextAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
                await response.WriteAsync(HistogramText(metrics), context.RequestAborted).ConfigureAwait(false);
                break;
            default:
                await PlainAsync(response, StatusCodes.Status404NotFound, "not found: try /healthz, /readyz or /metrics\n").ConfigureAwait(false);
                break;
        }
    }

    /// <summary>
    /// The latency histograms in the text format, after prometheus-net's output: its histograms are fed one observation
    /// at a time, while ours are kept by the pools (an interlocked add per observation) and only read here.
    /// </summary>
    internal static string HistogramText(ProxyMetrics metrics)
    {
        var sb = new StringBuilder();
        foreach (ObservedHistogram histogram in metrics.Histograms)
        {
            string name = histogram.PrometheusName;
            sb.Append("# HELP ").Append(name).Append(' ').Append(histogram.Description).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(" histogram\n");
            foreach ((string[] labels, LatencyHistogram h) in metrics.Observe(histogram))
            {
                string pool = $"database=\"{Escape(labels[0])}\",user=\"{Escape(labels[1])}\"";
                (long[] cumulative, double sum) = h.Read();
                for (int i = 0; i < cumulative.Length; i++)
                {
                    string le = i < LatencyHistogram.Bounds.Length ? LatencyHistogram.Bounds[i].ToString("R", CultureInfo.InvariantCulture) : "+Inf";
                    sb.Append(name).Append("_bucket{").Append(pool).Append(",le=\"").Append(le).Append("\"} ")
                        .Append(cumulative[i].ToString(CultureInfo.InvariantCulture)).Append('\n');
                }

                sb.Append(name).Append("_sum{").Append(pool).Append("} ").Append(sum.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                sb.Append(name).Append("_count{").Append(pool).Append("} ").Append(cumulative[^1].ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        return sb.ToString();
    }

    /// <summary>A label value in the text format: backslash, double quote and newline escaped.</summary>
    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static Task PlainAsync(HttpResponse response, int status, string body)
    {
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        return response.WriteAsync(body);
    }

    /// <summary>Stops serving.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
