using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using PgProxy.Core.Auth;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;

namespace PgProxy.Hosting;

/// <summary>
/// Composition root: a generic host (dependency injection, logging, SIGTERM/Ctrl+C) plus a <see cref="ClientListener"/>
/// on every [proxy] listen address. Used by <c>pgproxy run</c> and, in-process, by the tests.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly IHost _app;
    private ClientListener? _listener;
    private Http.OpsEndpoints? _ops;
    private MeterProvider? _otel;
    private volatile bool _draining;
    private TimeSpan _stopGrace = TimeSpan.FromSeconds(30);

    private ProxyHost(IHost app, ProxyServices services)
    {
        _app = app;
        Services = services;
    }

    /// <summary>The proxy's runtime services (pools, counts).</summary>
    public ProxyServices Services { get; }

    /// <summary>The endpoints actually bound (port 0 resolved).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; private set; } = [];

    /// <summary>The operations port ([http] listen), port 0 resolved; null when disabled.</summary>
    public IPEndPoint? OpsEndpoint => _ops?.Endpoint;

    /// <summary>Ready for clients: listening and not shutting down.</summary>
    public bool IsReady => _listener is not null && !_draining;

    /// <summary>
    /// What /readyz reports: null when ready, else why not. Ready is listening and not shutting down; with
    /// <c>[http] readyz_requires_server</c>, also a server reachable: a pool holds a server connection, or a TCP connect
    /// to one of the configured hosts succeeds (within 1 s; the answer is kept for a second, so probes cannot storm them).
    /// </summary>
    public async ValueTask<string?> NotReadyAsync(CancellationToken ct)
    {
        if (!IsReady)
        {
            return "shutting down or not listening";
        }

        if (!Services.Config.Http.ReadyzRequiresServer ||
            Services.Pools.Pools.Any(p => p.Counts is var c && c.Total - c.Connecting > 0))
        {
            return null;
        }

        if (Volatile.Read(ref _serverProbe) is { } last && Environment.TickCount64 - last.At < 1000)
        {
            return last.Result;
        }

        string? result = await ProbeServersAsync(ct).ConfigureAwait(false);
        Volatile.Write(ref _serverProbe, new ServerProbe(Environment.TickCount64, result));
        return result;
    }

    private ServerProbe? _serverProbe;

    /// <summary>The last probe's answer and when (one object, swapped whole).</summary>
    private sealed record ServerProbe(long At, string? Result);

    private async Task<string?> ProbeServersAsync(CancellationToken ct)
    {
        (string Host, int Port)[] targets = [.. Services.Config.Databases.Values.Select(d => (d.Host, d.Port)).Distinct()];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(1));
        string?[] failures = await Task.WhenAll(targets.Select(async t =>
        {
            try
            {
                await using Microsoft.AspNetCore.Connections.ConnectionContext connection =
                    await Services.Pools.Connector.Transport.ConnectAsync(t.Host, t.Port, cts.Token).ConfigureAwait(false);
                return null;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                return $"{t.Host}:{t.Port} ({(ex is OperationCanceledException ? "timed out" : ex.Message)})";
            }
        })).ConfigureAwait(false);
        return failures.Any(f => f is null) ? null : "no server reachable: " + string.Join(", ", failures);
    }

    /// <summary>The console's RELOAD (and the caller's SIGHUP) re-read <paramref name="configPath"/> from now on.</summary>
    public ConfigReloader EnableReload(string configPath)
    {
        var reloader = new ConfigReloader(this, configPath);
        Services.Reload = reloader.Reload;
        return reloader;
    }

    /// <summary>What is left when the host is disposed is closed at once (SHUTDOWN, or after a drain), not given 30 s.</summary>
    public void CloseAtOnce() => _stopGrace = TimeSpan.Zero;

    /// <summary>Shutdown has begun: /readyz fails from now on, while clients are still served.</summary>
    public void BeginDrain() => _draining = true;

    /// <summary>
    /// The drain proper: new logins get FATAL 57P01, clients between transactions are closed with it now and the others
    /// at their transaction boundary (asked again every 100 ms). True when every client has gone within
    /// <paramref name="timeout"/>; otherwise, or when <paramref name="ct"/> fires, the rest is closed at once on dispose.
    /// </summary>
    public async Task<bool> DrainAsync(TimeSpan timeout, CancellationToken ct)
    {
        BeginDrain();
        _stopGrace = TimeSpan.Zero;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            Services.Drain();
            if (Services.ClientCount == 0)
            {
                return true;
            }

            if (Environment.TickCount64 >= deadline || ct.IsCancellationRequested)
            {
                return false;
            }

            try
            {
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }

    /// <summary>Builds and starts the proxy. <paramref name="configureLogging"/> installs the log provider.</summary>
    public static async Task<ProxyHost> StartAsync(ProxyConfig config, UserList users, Action<ILoggingBuilder> configureLogging, CancellationToken ct = default)
    {
        // Before any socket: the loops' number is fixed at the first (a process has one set, shared by its hosts).
        int ioThreads = Transport.PollGroup.Start(config.Proxy.IoThreads);
        HostApplicationBuilder builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        // The provider applies [log] level; the framework's default Information filter would hide debug and trace.
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        configureLogging(builder.Logging);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(users);
        builder.Services.AddSingleton<IBackendTransport, SocketBackendTransport>();
        builder.Services.AddSingleton<BackendConnector>();
        builder.Services.AddSingleton<PoolManager>();
        builder.Services.AddSingleton<ProxyServices>();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<Core.Diagnostics.ProxyMetrics>();
        IHost app = builder.Build();

        var host = new ProxyHost(app, app.Services.GetRequiredService<ProxyServices>());
        // The meter exists from the start (dotnet-counters and OpenTelemetry see it with or without the ops port), and
        // before any pool: each pool's histograms record on its instruments.
        Core.Diagnostics.ProxyMetrics metrics = app.Services.GetRequiredService<Core.Diagnostics.ProxyMetrics>();
        host._otel = StartOtlpExport(config.Otel);
        IHostApplicationLifetime lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        host.Services.StopHost = lifetime.StopApplication; // the console's SHUTDOWN stops the host as SIGTERM does
        await app.StartAsync(ct).ConfigureAwait(false);
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PgProxy");
        Transport.PollLoop.UnhandledError = ex =>
            logger.LogError(new EventId(Core.Diagnostics.ProxyEventIds.PollLoopError, "PollLoopError"), ex, "A socket event handler failed");
        var endpoints = new List<IPEndPoint>();
        foreach (string listen in config.Proxy.Listen)
        {
            _ = ListenAddress.TryParse(listen, out IPEndPoint? endpoint);
            endpoints.Add(endpoint!);
        }

        try
        {
            host._listener = ClientListener.Start(endpoints, host.Services, logger);
        }
        catch (SocketException ex)
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"Failed to bind to {string.Join(", ", config.Proxy.Listen)}: {ex.Message}", ex);
        }

        host.Endpoints = host._listener.Endpoints;
        if (config.Http.Listen.Length > 0)
        {
            _ = ListenAddress.TryParse(config.Http.Listen, out IPEndPoint? opsEndpoint);
            try
            {
                host._ops = await Http.OpsEndpoints.StartAsync(opsEndpoint!, host.NotReadyAsync,
                    metrics, ct).ConfigureAwait(false);
            }
            catch (IOException)
            {
                await host.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            logger.LogInformation(new EventId(Core.Diagnostics.ProxyEventIds.Listening, "OpsListening"),
                "Serving /healthz, /readyz and /metrics on http://{Endpoint}", host._ops.Endpoint);
        }

        foreach (IPEndPoint endpoint in host.Endpoints)
        {
            logger.LogInformation(new EventId(Core.Diagnostics.ProxyEventIds.Listening, "Listening"), "Listening for PostgreSQL clients on {Endpoint} (I/O threads: {IoThreads})", endpoint, ioThreads);
        }

        return host;
    }

    /// <summary>
    /// [otel] endpoint: the <c>PgProxy</c> meter exported over OTLP every interval (null when no endpoint). For
    /// http/protobuf an endpoint without a path gets the collector's /v1/metrics, as the OTLP specification's base URL does.
    /// </summary>
    private static MeterProvider? StartOtlpExport(OtelSection otel)
    {
        if (otel.Endpoint.Length == 0)
        {
            return null;
        }

        bool http = otel.Protocol == "http/protobuf";
        var endpoint = new Uri(otel.Endpoint);
        if (http && endpoint.AbsolutePath == "/")
        {
            endpoint = new Uri(endpoint, "v1/metrics");
        }

        return OpenTelemetry.Sdk.CreateMeterProviderBuilder()
            .AddMeter(Core.Diagnostics.ProxyMetrics.MeterName)
            .AddOtlpExporter((exporter, reader) =>
            {
                exporter.Endpoint = endpoint;
                exporter.Protocol = http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)Math.Min(int.MaxValue, otel.Interval.TotalMilliseconds);
            })
            .Build();
    }

    /// <summary>Waits until the host is asked to stop (SIGTERM, Ctrl+C).</summary>
    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    /// <summary>Stops accepting, lets sessions end within the shutdown timeout, closes pools and the operations port.</summary>
    public async ValueTask DisposeAsync()
    {
        _draining = true;
        try
        {
            // After a drain, what is left is closed at once; otherwise (tests, a failed start) sessions get 30 s.
            using var cts = new CancellationTokenSource(_stopGrace);
            if (_listener is not null)
            {
                await _listener.StopAsync(cts.Token).ConfigureAwait(false);
            }

            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            await _app.Services.GetRequiredService<PoolManager>().DisposeAsync().ConfigureAwait(false);
            _otel?.Dispose(); // exports what is left
            if (_ops is not null)
            {
                await _ops.DisposeAsync().ConfigureAwait(false);
            }

            _app.Dispose();
        }
    }
}
