using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Admin;

/// <summary>The console's commands that change things (admin users only): PAUSE, RESUME, KILL, RECONNECT, SET, RELOAD, ...</summary>
internal sealed partial class AdminConsole
{
    /// <summary>
    /// PAUSE [db]: servers are handed out no more (clients wait, up to query_wait_timeout) and each is closed as its
    /// client gives it back; the command returns once none is left, as PgBouncer's does.
    /// </summary>
    private async Task PauseAsync(string? database)
    {
        PoolManager pools = _services.Pools;
        if (pools.PausedAll)
        {
            Error("already suspended/paused");
            return;
        }

        if (database is not null && !CheckDatabase(database, "pause"))
        {
            return;
        }

        pools.Pause(database);
        await WaitUntilAsync(() => pools.PoolsOf(database).All(p => p.Counts.Total == 0)).ConfigureAwait(false);
        BackendMessages.CommandComplete(_out, "PAUSE");
    }

    /// <summary>RESUME [db]: undoes PAUSE and KILL (for everything, or one database).</summary>
    private void Resume(string? database)
    {
        PoolManager pools = _services.Pools;
        if (database is null)
        {
            if (_services.RefusesLogins)
            {
                Error("pooler is shutting down");
                return;
            }

            if (!pools.PausedAll && !pools.PoolsOf(null).Any(p => p.Paused))
            {
                Error("pooler is not paused/suspended");
                return;
            }
        }
        else if (!DatabaseKnown(database))
        {
            Error($"no such database: {database}");
            return;
        }
        else if (!pools.IsPaused(database))
        {
            Error($"database {database} is not paused");
            return;
        }

        pools.Resume(database);
        BackendMessages.CommandComplete(_out, "RESUME");
    }

    /// <summary>RECONNECT [db]: every server open now is closed when it is next given back; new ones open as needed.</summary>
    private void Reconnect(string? database)
    {
        if (database is not null && !CheckDatabase(database, "reconnect"))
        {
            return;
        }

        foreach (Pool pool in _services.Pools.PoolsOf(database))
        {
            pool.Reconnect();
        }

        BackendMessages.CommandComplete(_out, "RECONNECT");
    }

    /// <summary>WAIT_CLOSE [db]: returns once no server from before the last RECONNECT is left.</summary>
    private async Task WaitCloseAsync(string? database)
    {
        if (database is not null && !CheckDatabase(database, "wait in"))
        {
            return;
        }

        await WaitUntilAsync(() => _services.Pools.PoolsOf(database).All(p => p.CloseNeededCount == 0)).ConfigureAwait(false);
        BackendMessages.CommandComplete(_out, "WAIT_CLOSE");
    }

    /// <summary>KILL [db]: every client of the database (or of all) is closed with FATAL 57P01 now, its servers too; new clients wait for RESUME.</summary>
    private void Kill(string? database)
    {
        if (_services.Pools.PausedAll)
        {
            Error("already suspended/paused");
            return;
        }

        if (database is not null && !CheckDatabase(database, "kill"))
        {
            return;
        }

        _services.Pools.Kill(database, new ProxyException(SqlState.AdminShutdown, KilledMessage));
        foreach (ClientSession session in Sessions())
        {
            if (database is null || session.Database == database)
            {
                session.Kill(KilledMessage);
            }
        }

        BackendMessages.CommandComplete(_out, "KILL");
    }

    /// <summary>KILL_CLIENT id: that client is closed with FATAL 57P01 now (what it runs is canceled first).</summary>
    private void KillClient(string? arg)
    {
        if (!long.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out long id))
        {
            Error("invalid client pointer supplied");
            return;
        }

        if (Sessions().FirstOrDefault(s => s.Id == id) is not { } session)
        {
            Error("client not found");
            return;
        }

        session.Kill(KilledMessage);
        BackendMessages.CommandComplete(_out, "KILL_CLIENT");
    }

    /// <summary>DISABLE db refuses new logins to it (55000, as PostgreSQL refuses a database that does not allow connections); ENABLE undoes it.</summary>
    private void SetDisabled(string? database, bool disabled, string tag)
    {
        if (database is null)
        {
            Error("a database is required");
            return;
        }

        if (!CheckDatabase(database, tag.ToLowerInvariant()))
        {
            return;
        }

        _services.Pools.SetDisabled(database, disabled);
        BackendMessages.CommandComplete(_out, tag);
    }

    /// <summary>
    /// SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]: answered first, then the process stops: at once; once every
    /// server is released (paused, no new clients); or by the SIGTERM drain (readiness fails, shutdown_delay, clients
    /// closed at their transaction boundary, shutdown_timeout).
    /// </summary>
    private void Shutdown(string query, string? arg)
    {
        ShutdownMode? mode = arg?.ToLowerInvariant() switch
        {
            null => ShutdownMode.Immediate,
            "wait_for_servers" => ShutdownMode.WaitForServers,
            "wait_for_clients" => ShutdownMode.WaitForClients,
            _ => null,
        };
        if (mode is not { } how)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (_services.StopHost is null)
        {
            Error("SHUTDOWN is not available: this proxy runs inside another program", SqlState.FeatureNotSupported);
            return;
        }

        _afterReply = () => _services.RequestShutdown(how);
        BackendMessages.CommandComplete(_out, "SHUTDOWN");
    }

    /// <summary>RELOAD: re-reads the config file and the auth file (as SIGHUP does); an invalid config is refused and the old one kept.</summary>
    private void Reload(string? arg, string query)
    {
        if (arg is not null)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (_services.Reload is not { } reload)
        {
            Error("RELOAD is not available: this proxy was not started from a config file", SqlState.FeatureNotSupported);
            return;
        }

        if (reload() is { } failure)
        {
            // PgBouncer's code and words for a failed reload.
            Error($"RELOAD failed, see logs for additional details: {failure}", "F0000");
            return;
        }

        BackendMessages.CommandComplete(_out, "RELOAD");
    }

    /// <summary>
    /// SET key = value (or TO): one [proxy] key changed live, validated as the config file is, applied as a reload
    /// applies (pool sizes and timeouts from now on). The value is a number, true/false, a bare word or a 'quoted'
    /// string (durations with their unit: '30s'). The next RELOAD reads the file again, as PgBouncer's does.
    /// </summary>
    private void Set(string query, string rest)
    {
        Match m = SetPattern().Match(rest);
        if (!m.Success)
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (!_admin)
        {
            Error("admin access needed", SqlState.InsufficientPrivilege);
            return;
        }

        string key = m.Groups["key"].Value.ToLowerInvariant();
        string raw = m.Groups["value"].Value.Trim();
        string value = raw.Length >= 2 && raw[0] == '\'' && raw[^1] == '\''
            ? raw[1..^1].Replace("''", "'", StringComparison.Ordinal)
            : raw;
        bool literal = raw[0] != '\'' && (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _) || value is "true" or "false");
        string toml = literal ? value : "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
        ConfigResult result = ConfigLoader.Set(_services.Config, key, toml);
        if (literal && result.Config is null)
        {
            result = ConfigLoader.Set(_services.Config, key, "\"" + value + "\""); // a number for a duration key: its error names the unit
        }
        if (result.Config is not { } config)
        {
            Error(string.Join("; ", result.Errors), SqlState.InvalidParameterValue);
            return;
        }

        _services.Pools.Apply(config, _services.Users);
        LogCommand(_logger, _user, query);
        BackendMessages.CommandComplete(_out, "SET");
    }

    [GeneratedRegex(@"^(?<key>[A-Za-z_][A-Za-z0-9_]*)\s*(=|\s[Tt][Oo]\s)\s*(?<value>'(?:[^']|'')*'|[^\s']+)\s*$")]
    private static partial Regex SetPattern();

    /// <summary>Waits, applying the pause again each time (a server opened meanwhile closes too), until <paramref name="done"/>.</summary>
    private async Task WaitUntilAsync(Func<bool> done)
    {
        while (!done())
        {
            _services.Pools.ApplyPause();
            try
            {
                await Task.Delay(PollPeriod, _services.DrainToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw new ProxyException(SqlState.AdminShutdown, ClientSession.ShuttingDownMessage);
            }
        }
    }

    /// <summary>A database a command may name: one the config lists, or one a pool serves (a "*" entry's); never the console's.</summary>
    private bool CheckDatabase(string database, string verb)
    {
        if (IsConsoleDatabase(database))
        {
            Error($"cannot {verb} admin db: {database}");
            return false;
        }

        if (!DatabaseKnown(database))
        {
            Error($"no such database: {database}");
            return false;
        }

        return true;
    }

    private bool DatabaseKnown(string database) =>
        (database != "*" && _services.Config.Databases.ContainsKey(database)) || _services.Pools.Pools.Any(p => p.Key.Database == database);
}
