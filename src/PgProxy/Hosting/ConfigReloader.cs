using Microsoft.Extensions.Logging;
using PgProxy.Core.Auth;
using PgProxy.Core.Configuration;

namespace PgProxy.Hosting;

/// <summary>
/// SIGHUP and the console's RELOAD: re-reads the config file and its auth file. An invalid config is logged with every
/// error (file:line:column) and the running one stays; a valid one is logged as the list of changed keys and applied
/// without dropping a client (<see cref="Core.Pooling.PoolManager.Apply"/>). Keys only a restart applies (listen
/// addresses, [log]) keep their running values and are named in the log. One reload at a time.
/// </summary>
public sealed partial class ConfigReloader
{
    private readonly ProxyHost _host;
    private readonly string _path;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();

    /// <summary>Reloads <paramref name="path"/> into <paramref name="host"/>.</summary>
    public ConfigReloader(ProxyHost host, string path)
    {
        _host = host;
        _path = path;
        _logger = host.Services.LoggerFactory.CreateLogger("PgProxy.Reload");
    }

    /// <summary>Reloads; null when the new config is in force, else why not (the old one stays).</summary>
    public string? Reload()
    {
        lock (_lock)
        {
            (ProxyConfig? loaded, UserList? users, List<string> errors) = Program.Load(_path);
            if (loaded is null)
            {
                foreach (string error in errors)
                {
                    LogInvalid(_logger, error);
                }

                LogRefused(_logger, _path, errors.Count);
                return $"{errors.Count} error(s) in {_path}, the running config stays; first: {errors.FirstOrDefault()}";
            }

            ProxyConfig running = _host.Services.Config;
            UserList runningUsers = _host.Services.Users;
            List<string> restartOnly = ConfigDiff.RestartOnly(running, loaded);
            ProxyConfig next = ConfigDiff.KeepRestartOnly(running, loaded);
            List<string> changes = ConfigDiff.Changes(running, runningUsers, next, users!);
            IReadOnlyList<string> notes = _host.Services.Pools.Apply(next, users!);
            _host.Services.CloseClientsOfRemovedPools();
            LogReloaded(_logger, _path, changes.Count, changes.Count == 0 ? "" : ": " + string.Join("; ", changes));
            foreach (string note in notes)
            {
                LogApplied(_logger, note);
            }

            if (restartOnly.Count > 0)
            {
                LogNeedsRestart(_logger, string.Join(", ", restartOnly));
            }

            return null;
        }
    }

    [LoggerMessage(EventId = Core.Diagnostics.ProxyEventIds.ConfigReloaded, Level = LogLevel.Information, Message = "Reloaded {Path}: {Count} changes{Changes}")]
    private static partial void LogReloaded(ILogger logger, string path, int count, string changes);

    [LoggerMessage(EventId = Core.Diagnostics.ProxyEventIds.ConfigReloaded, Level = LogLevel.Information, Message = "Reload: {Note}")]
    private static partial void LogApplied(ILogger logger, string note);

    [LoggerMessage(EventId = Core.Diagnostics.ProxyEventIds.ConfigReloadRefused, Level = LogLevel.Warning,
        Message = "Reload: changed keys that need a restart keep their running values until then: {Keys}")]
    private static partial void LogNeedsRestart(ILogger logger, string keys);

    [LoggerMessage(EventId = Core.Diagnostics.ProxyEventIds.ConfigReloadRefused, Level = LogLevel.Error, Message = "Reload: {Error}")]
    private static partial void LogInvalid(ILogger logger, string error);

    [LoggerMessage(EventId = Core.Diagnostics.ProxyEventIds.ConfigReloadRefused, Level = LogLevel.Error,
        Message = "Reload of {Path} refused: {Count} error(s); the running config stays")]
    private static partial void LogRefused(ILogger logger, string path, int count);
}
