using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Auth;
using PgProxy.Core.Backend;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Pooling;

namespace PgProxy.Hosting;

/// <summary>
/// Composition root: a slim WebApplication whose Kestrel listens on every [proxy] listen address with the
/// PostgreSQL <see cref="ClientConnectionHandler"/>. Used by <c>pgproxy run</c> and, in-process, by the tests.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ProxyHost(WebApplication app, ProxyServices services)
    {
        _app = app;
        Services = services;
    }

    /// <summary>The runtime's switch for running socket completions on the epoll threads (set by <c>pgproxy run</c>).</summary>
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Inline pipe scheduling on client and backend sockets; off only when inline completions are turned off.</summary>
    internal static bool InlineScheduling => Environment.GetEnvironmentVariable(InlineCompletionsVariable) != "0";

    /// <summary>The proxy's runtime services (pools, counts).</summary>
    public ProxyServices Services { get; }

    /// <summary>The endpoints actually bound (port 0 resolved).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints { get; private set; } = [];

    /// <summary>Builds and starts the proxy. <paramref name="configureLogging"/> installs the log provider.</summary>
    public static async Task<ProxyHost> StartAsync(ProxyConfig config, UserList users, Action<ILoggingBuilder> configureLogging, CancellationToken ct = default)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
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
        builder.WebHost.UseSetting(WebHostDefaults.SuppressStatusMessagesKey, "true");
        // Pipe continuations run where the data arrived (no thread-pool hop per read and per flush). Safe because
        // the relay never blocks: it parses, copies and flushes, and every wait is an await.
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = InlineScheduling);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (string listen in config.Proxy.Listen)
            {
                _ = ListenAddress.TryParse(listen, out IPEndPoint? endpoint);
                kestrel.Listen(endpoint!, options => options.UseConnectionHandler<ClientConnectionHandler>());
            }
        });

        WebApplication app = builder.Build();
        var host = new ProxyHost(app, app.Services.GetRequiredService<ProxyServices>());
        app.Services.GetRequiredService<PoolManager>().Start();
        host.Services.StartWatchdog();
        await app.StartAsync(ct).ConfigureAwait(false);

        IServerAddressesFeature? addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>();
        host.Endpoints = addresses?.Addresses.Select(ParseAddress).Where(e => e is not null).Select(e => e!).ToList() ?? [];
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PgProxy");
        foreach (IPEndPoint endpoint in host.Endpoints)
        {
            logger.LogInformation(new EventId(Core.Diagnostics.ProxyEventIds.Listening, "Listening"), "Listening for PostgreSQL clients on {Endpoint}", endpoint);
        }

        return host;
    }

    private static IPEndPoint? ParseAddress(string address)
    {
        // Kestrel reports "http://127.0.0.1:6432" even for connection-handler endpoints.
        return Uri.TryCreate(address, UriKind.Absolute, out Uri? uri) && IPAddress.TryParse(uri.Host.Trim('[', ']'), out IPAddress? ip)
            ? new IPEndPoint(ip, uri.Port)
            : null;
    }

    /// <summary>Waits until the host is asked to stop (SIGTERM, Ctrl+C).</summary>
    public Task WaitForShutdownAsync(CancellationToken ct = default) => _app.WaitForShutdownAsync(ct);

    /// <summary>Stops accepting, lets sessions end within the shutdown timeout, closes pools.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            await _app.Services.GetRequiredService<PoolManager>().DisposeAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
