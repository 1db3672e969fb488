using System.CommandLine;
using System.Runtime.InteropServices;
using PgProxy.Core.Auth;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Hosting;
using PgProxy.Logging;
using Microsoft.Extensions.Logging;

namespace PgProxy;

/// <summary>Command line: <c>pgproxy [run] --config FILE</c> and <c>pgproxy check --config FILE</c>.</summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        var runConfig = ConfigOption();
        var checkConfig = ConfigOption();
        var runIni = new Option<string?>("--pgbouncer-ini")
        {
            Description = "Run from a PgBouncer config instead (converted as `pgproxy convert` does, again at each reload).",
        };
        var run = new Command("run", "Run the proxy (the default command).") { runConfig, runIni };
        run.SetAction((parse, ct) =>
        {
            if (parse.GetValue(runIni) is not { } ini)
            {
                return RunAsync(parse.GetValue(runConfig)!, ct);
            }

            TreatAsPgBouncerIni(ini);
            return RunAsync(Path.GetFullPath(ini), ct);
        });
        var check = new Command("check", "Validate the config and print the effective settings with secrets masked.") { checkConfig };
        check.SetAction(parse => Check(parse.GetValue(checkConfig)!));
        var rootConfig = ConfigOption();
        var root = new RootCommand("PgProxy: a PostgreSQL connection pooler.") { rootConfig, run, check, BudgetCommand(), InitCommand(), ConvertCommand(), HealthCommand() };
        root.SetAction((parse, ct) => RunAsync(parse.GetValue(rootConfig)!, ct));
        // No termination handling by the command line library: its default ends the process 2 s after SIGTERM, which
        // would cut shutdown_delay and the drain short. The host handles SIGTERM and Ctrl+C (RunAsync below).
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }

    private static Command HealthCommand()
    {
        var url = new Option<string>("--url")
        {
            Description = "The ops port's health endpoint.",
            DefaultValueFactory = _ => "http://127.0.0.1:9127/healthz",
        };
        var health = new Command("health", "Exit 0 when the ops port answers 200 (a container HEALTHCHECK with no curl in the image).") { url };
        health.SetAction(async (parse, ct) =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            try
            {
                using HttpResponseMessage response = await http.GetAsync(parse.GetValue(url), ct).ConfigureAwait(false);
                Console.Out.WriteLine($"{(int)response.StatusCode} {response.ReasonPhrase}");
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or InvalidOperationException or UriFormatException)
            {
                Console.Error.WriteLine(ex.Message);
                return 1;
            }
        });
        return health;
    }

    private static Command ConvertCommand()
    {
        var ini = new Argument<string>("pgbouncer.ini") { Description = "The PgBouncer config to convert (its %include files are read too)." };
        var outFile = new Option<string?>("--out") { Description = "Write proxy.toml here (refused if it exists) instead of standard output." };
        var convert = new Command("convert", "Convert a PgBouncer config to proxy.toml; every key not carried over is listed with the reason.") { ini, outFile };
        convert.SetAction(parse =>
        {
            string source = parse.GetValue(ini)!;
            Tools.PgBouncerIni.Result result;
            try
            {
                result = Tools.PgBouncerIni.Convert(source);
            }
            catch (IOException ex)
            {
                Console.Error.WriteLine(ex.Message);
                return 2;
            }

            foreach (string warning in result.Warnings)
            {
                Console.Error.WriteLine("warning: " + warning);
            }

            string? path = parse.GetValue(outFile);
            ConfigResult check = ConfigLoader.Load(System.Text.Encoding.UTF8.GetBytes(result.Toml), path ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(source))!, "proxy.toml"));
            if (path is null)
            {
                Console.Out.Write(result.Toml);
            }
            else if (!TryWriteNew(path, result.Toml))
            {
                return 1;
            }

            foreach (string error in check.Errors)
            {
                Console.Error.WriteLine("error: " + error);
            }

            Console.Error.WriteLine($"{result.Warnings.Count} warning(s); " +
                (check.Errors.Count == 0 ? "the result passes pgproxy check" : $"{check.Errors.Count} error(s) for pgproxy check: fix them before running"));
            return check.Errors.Count == 0 ? 0 : 1;
        });
        return convert;
    }

    /// <summary>Writes a file the command creates (init, convert); false, and said, when it exists: never overwritten.</summary>
    private static bool TryWriteNew(string path, string text)
    {
        if (File.Exists(path))
        {
            Console.Error.WriteLine($"{path} exists: not overwritten");
            return false;
        }

        File.WriteAllText(path, text);
        return true;
    }

    private static Command InitCommand()
    {
        var profile = new Option<string>("--profile")
        {
            Description = "The place PgProxy will run: " + string.Join("; ", Tools.Profiles.All.Select(p => $"{p.Name} ({p.Purpose})")),
            Required = true,
        };
        profile.AcceptOnlyFromAmong([.. Tools.Profiles.All.Select(p => p.Name)]);
        var outFile = new Option<string?>("--out") { Description = "Write the config to this file (refused if it exists) instead of standard output." };
        var init = new Command("init", "Write a commented proxy.toml with a profile's defaults and the reason for each.") { profile, outFile };
        init.SetAction(parse =>
        {
            string text = Tools.Profiles.Render(parse.GetValue(profile)!)!;
            if (parse.GetValue(outFile) is not { } path)
            {
                Console.Out.Write(text);
                return 0;
            }

            if (!TryWriteNew(path, text))
            {
                return 1;
            }

            Console.Error.WriteLine($"wrote {path}; check it with: pgproxy check --config {path}");
            return 0;
        });
        return init;
    }

    private static Command BudgetCommand()
    {
        var config = ConfigOption();
        var replicas = new Option<int>("--replicas") { Description = "PgProxy processes with this config (a sidecar: one per application pod).", DefaultValueFactory = _ => 1 };
        var workers = new Option<int?>("--app-workers") { Description = "Application worker processes per replica: also check the application side of the formula." };
        var poolSize = new Option<int>("--app-pool-size") { Description = "Each worker's pool_size (SQLAlchemy's default: 5).", DefaultValueFactory = _ => 5 };
        var overflow = new Option<int>("--app-max-overflow") { Description = "Each worker's max_overflow (SQLAlchemy's default: 10).", DefaultValueFactory = _ => 10 };
        var user = new Option<string?>("--user") { Description = "The role to read the servers' limits as (password from the auth file or PGPASSWORD)." };
        var budget = new Command("budget", "Check the connection budget against each server's max_connections (exit 1 when exceeded).")
        {
            config, replicas, workers, poolSize, overflow, user,
        };
        budget.SetAction(async (parse, ct) =>
        {
            (ProxyConfig? loaded, UserList? users, List<string> errors) = Load(parse.GetValue(config)!);
            if (loaded is null)
            {
                errors.ForEach(Console.Error.WriteLine);
                return 2;
            }

            int n = parse.GetValue(replicas);
            if (n < 1)
            {
                Console.Error.WriteLine("--replicas: at least 1");
                return 2;
            }

            var options = new Tools.BudgetOptions(n, parse.GetValue(workers), parse.GetValue(poolSize), parse.GetValue(overflow), parse.GetValue(user));
            return await Tools.Budget.RunAsync(loaded, users!, options, Console.Out, ct).ConfigureAwait(false);
        });
        return budget;
    }

    private static Option<string> ConfigOption() => new("--config", "-c")
    {
        Description = "Path to the TOML config file.",
        DefaultValueFactory = _ => "proxy.toml",
    };

    /// <summary>Config paths that are PgBouncer configs (run --pgbouncer-ini): converted at every load, reloads included.</summary>
    private static readonly HashSet<string> s_pgBouncerInis = new(StringComparer.Ordinal);

    /// <summary>From now on <see cref="Load"/> reads <paramref name="path"/> as a PgBouncer config.</summary>
    internal static void TreatAsPgBouncerIni(string path) => s_pgBouncerInis.Add(Path.GetFullPath(path));

    internal static (ProxyConfig? Config, UserList? Users, List<string> Errors) Load(string path)
    {
        ConfigResult result;
        if (s_pgBouncerInis.Contains(Path.GetFullPath(path)))
        {
            Tools.PgBouncerIni.Result converted;
            try
            {
                converted = Tools.PgBouncerIni.Convert(path);
            }
            catch (IOException ex)
            {
                return (null, null, [ex.Message]);
            }

            foreach (string warning in converted.Warnings)
            {
                Console.Error.WriteLine($"{path}: warning: {warning}");
            }

            result = ConfigLoader.Load(System.Text.Encoding.UTF8.GetBytes(converted.Toml), Path.ChangeExtension(Path.GetFullPath(path), ".converted.toml"));
        }
        else
        {
            result = ConfigLoader.LoadFile(path);
        }

        var errors = result.Errors.ToList();
        UserList? users = null;
        if (result.Config is { } config)
        {
            users = config.Auth.File is { } file ? UserList.Load(file, errors) : UserList.Empty;
        }

        return (errors.Count == 0 ? result.Config : null, users, errors);
    }

    private static int Check(string path)
    {
        (ProxyConfig? config, UserList? users, List<string> errors) = Load(path);
        if (config is null)
        {
            foreach (string error in errors)
            {
                Console.Error.WriteLine(error);
            }

            Console.Error.WriteLine($"{path}: {errors.Count} error(s); the proxy would not start.");
            return 1;
        }

        Console.Out.Write(ConfigPrinter.Print(config));
        Console.Out.WriteLine();
        Console.Out.WriteLine($"# {path}: OK ({config.Databases.Count} database entries, {users!.Count} users in the auth file)");
        return 0;
    }

    /// <summary>
    /// SIGTERM or Ctrl+C: /readyz fails at once and clients are served for <c>shutdown_delay</c>, so that Kubernetes
    /// takes the pod out of its Service first; then the drain (new logins refused, clients closed at their transaction
    /// boundary) for up to <c>shutdown_timeout</c>. A second signal skips what is left of either wait.
    /// </summary>
    private static async Task ShutDownAsync(ProxyHost host, ProxySection settings, ProxyLog log)
    {
        host.BeginDrain();
        using var again = new CancellationTokenSource();
        using IDisposable signals = OnSecondSignal(again);
        if (settings.ShutdownDelay > TimeSpan.Zero)
        {
            log.Logger.Information("Shutting down: /readyz fails from now on; clients are served for another {Delay} (shutdown_delay)",
                DurationText.Format(settings.ShutdownDelay));
            try
            {
                await Task.Delay(settings.ShutdownDelay, again.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                log.Logger.Information("Second signal: closing at once");
            }
        }

        int clients = host.Services.ClientCount;
        log.Logger.Information("Draining {Clients} clients: new logins are refused, clients are closed at their transaction boundary, for up to {Timeout} (shutdown_timeout)",
            clients, DurationText.Format(settings.ShutdownTimeout));
        bool drained = await host.DrainAsync(settings.ShutdownTimeout, again.Token).ConfigureAwait(false);
        if (!drained)
        {
            log.Logger.Warning("{Clients} clients still connected after the drain: closing them", host.Services.ClientCount);
        }
    }

    /// <summary>
    /// SHUTDOWN WAIT_FOR_SERVERS: /readyz fails and new logins are refused at once; every pool is paused (clients keep
    /// their connections but get no server) and the process exits once every server has been given back, or after
    /// shutdown_timeout, or at a signal.
    /// </summary>
    private static async Task WaitForServersAsync(ProxyHost host, ProxySection settings, ProxyLog log)
    {
        host.BeginDrain();
        host.Services.StopLogins();
        host.Services.Pools.Pause(null);
        using var again = new CancellationTokenSource(settings.ShutdownTimeout);
        using IDisposable signals = OnSecondSignal(again);
        log.Logger.Information("SHUTDOWN WAIT_FOR_SERVERS: new logins are refused, pools are paused; exiting once every server is released (up to {Timeout}, shutdown_timeout)",
            DurationText.Format(settings.ShutdownTimeout));
        while (host.Services.Pools.Pools.Any(p => p.Counts.Total > 0) && !again.IsCancellationRequested)
        {
            host.Services.Pools.ApplyPause();
            try
            {
                await Task.Delay(100, again.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                log.Logger.Warning("Servers still in use at shutdown: closing them");
            }
        }

        host.CloseAtOnce();
    }

    /// <summary>While shutting down: SIGTERM or SIGINT again cancels <paramref name="again"/> (what is left closes at once).</summary>
    private static IDisposable OnSecondSignal(CancellationTokenSource again)
    {
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            again.Cancel();
        }

        return new Registrations(PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop), PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop));
    }

    private sealed record Registrations(PosixSignalRegistration Term, PosixSignalRegistration Interrupt) : IDisposable
    {
        public void Dispose()
        {
            Term.Dispose();
            Interrupt.Dispose();
        }
    }

    private static async Task<int> RunAsync(string path, CancellationToken ct)
    {
        (ProxyConfig? config, UserList? users, List<string> errors) = Load(path);
        if (config is null)
        {
            foreach (string error in errors)
            {
                Console.Error.WriteLine(error);
            }

            Console.Error.WriteLine($"{path}: {errors.Count} error(s); not starting.");
            return 1;
        }

        ProxyLog log = ProxyLog.Create(config.Log);
        try
        {
            // SIGHUP and the console's RELOAD re-read the config. The handler is in place before the proxy listens (the
            // signal's default action ends the process); a SIGHUP that comes while it starts is applied once it has.
            ConfigReloader? reloader = null;
            int hangUpPending = 0;
            void ReloadIfPending()
            {
                if (Volatile.Read(ref reloader) is { } ready && Interlocked.Exchange(ref hangUpPending, 0) == 1)
                {
                    _ = Task.Run(ready.Reload);
                }
            }

            using PosixSignalRegistration hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                Volatile.Write(ref hangUpPending, 1);
                ReloadIfPending();
            });
            await using ProxyHost host = await ProxyHost.StartAsync(config, users!,
                log.AddTo, ct).ConfigureAwait(false);
            Volatile.Write(ref reloader, host.EnableReload(path));
            ReloadIfPending();
            await host.WaitForShutdownAsync(ct).ConfigureAwait(false);
            switch (host.Services.RequestedShutdown)
            {
                case ShutdownMode.Immediate:
                    log.Logger.Information("SHUTDOWN command: closing every connection now");
                    host.CloseAtOnce();
                    break;
                case ShutdownMode.WaitForServers:
                    await WaitForServersAsync(host, config.Proxy, log).ConfigureAwait(false);
                    break;
                default: // SIGTERM, Ctrl+C, SHUTDOWN WAIT_FOR_CLIENTS
                    await ShutDownAsync(host, config.Proxy, log).ConfigureAwait(false);
                    break;
            }

            return 0;
        }
        catch (IOException ex)
        {
            log.Logger.Fatal("Cannot start: {Reason}", ex.Message);
            return 2;
        }
        finally
        {
            await log.DisposeAsync().ConfigureAwait(false);
        }
    }
}
