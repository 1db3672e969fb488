using System.IO.Pipelines;
using System.Reflection;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Client;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Admin;

/// <summary>
/// The admin console: the virtual databases <c>pgproxy</c> and <c>pgbouncer</c> (so PgBouncer's scripts and
/// exporters work), simple query protocol only, one command per query. Results have PgBouncer's column names, order and
/// types (its <c>src/admin.c</c>); an unknown command, like PgBouncer's, gets <c>ERROR 08P01 invalid command '…', use
/// SHOW HELP;</c> and the console stays usable; an extended-protocol message gets an error and the connection closes.
/// Runs in the client's session after login; nothing here is on the data path.
/// </summary>
internal sealed partial class AdminConsole
{
    /// <summary>The console's database names.</summary>
    public static bool IsConsoleDatabase(string database) => database is "pgproxy" or "pgbouncer";

    private const int MaxQueryBytes = 64 * 1024;
    private const string ShowTag = "SHOW";
    private const int Text = BackendMessages.TextOid;
    private const int Int4 = BackendMessages.Int4Oid;
    private const int Numeric = 1700;
    private const string KilledMessage = "terminating connection due to administrator command";
    private static readonly TimeSpan PollPeriod = TimeSpan.FromMilliseconds(100);

    private static readonly string s_version = "PgProxy " +
        (typeof(AdminConsole).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0");

    private readonly ProxyServices _services;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly bool _admin;
    private readonly string _user;
    private readonly ILogger _logger;
    private readonly PgMessageBuilder _out = new();
    private Action? _afterReply;

    /// <param name="services">The proxy's services.</param>
    /// <param name="input">From the console's client.</param>
    /// <param name="output">To it.</param>
    /// <param name="user">The console's user.</param>
    public AdminConsole(ProxyServices services, PipeReader input, PipeWriter output, string user)
    {
        _services = services;
        _input = input;
        _output = output;
        _user = user;
        _admin = IsAdmin(services.Config.Admin, user);
        _logger = services.LoggerFactory.CreateLogger<AdminConsole>();
    }

    /// <summary>Whether <paramref name="user"/> may use the console: an admin or a stats user.</summary>
    public static bool MayUse(AdminSection admin, string user) =>
        IsAdmin(admin, user) || admin.StatsUsers.Contains(user, StringComparer.Ordinal);

    /// <summary>Whether <paramref name="user"/> may run every command (not only SHOW).</summary>
    public static bool IsAdmin(AdminSection admin, string user) => admin.AdminUsers.Contains(user, StringComparer.Ordinal);

    /// <summary>The welcome (after AuthenticationOk, which the caller has written into <paramref name="welcome"/>).</summary>
    public async Task WelcomeAsync(PgMessageBuilder welcome)
    {
        foreach ((string name, string value) in new[]
                 {
                     ("server_version", s_version), ("server_encoding", "UTF8"), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                     ("TimeZone", "UTC"), ("integer_datetimes", "on"), ("standard_conforming_strings", "on"), ("application_name", ""),
                 })
        {
            BackendMessages.ParameterStatus(welcome, name, value);
        }

        BackendMessages.BackendKeyData(welcome, 0, 0); // nothing here to cancel
        BackendMessages.ReadyForQuery(welcome, TransactionStatus.Idle);
        await PgMessageIO.WriteAsync(_output, welcome, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Serves queries until the client leaves (or sends what the console does not speak, or the proxy shuts down).</summary>
    public async Task RunAsync()
    {
        CancellationToken drain = _services.DrainToken;
        while (true)
        {
            PgMessage? message;
            try
            {
                message = await PgMessageIO.ReadAsync(_input, MaxQueryBytes, drain).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (drain.IsCancellationRequested)
            {
                throw new ProxyException(SqlState.AdminShutdown, ClientSession.ShuttingDownMessage);
            }

            if (message is not { } m || m.Type == FrontendCode.Terminate)
            {
                return;
            }

            if (m.Type != FrontendCode.Query)
            {
                string what = m.Type is FrontendCode.Parse or FrontendCode.Bind or FrontendCode.Execute or FrontendCode.Describe or FrontendCode.Sync
                    ? "extended query protocol not supported by admin console"
                    : $"unsupported packet type for admin console: '{(char)m.Type}'";
                throw new ProxyException(SqlState.ProtocolViolation, what);
            }

            string query = System.Text.Encoding.UTF8.GetString(m.Body.AsSpan(0, Math.Max(0, m.Body.Length - 1)));
            await ExecuteAsync(query).ConfigureAwait(false);
            BackendMessages.ReadyForQuery(_out, TransactionStatus.Idle);
            await PgMessageIO.WriteAsync(_output, _out, CancellationToken.None).ConfigureAwait(false);
            if (_afterReply is { } after)
            {
                _afterReply = null;
                after();
            }
        }
    }

    /// <summary>
    /// One command: a word, then at most one argument (a word, or a "quoted" name), as PgBouncer's grammar has it; SET
    /// has its own. The command word is case-insensitive, a database name is not.
    /// </summary>
    private async Task ExecuteAsync(string query)
    {
        string text = query.Trim();
        while (text.EndsWith(';'))
        {
            text = text[..^1].TrimEnd();
        }

        int space = text.IndexOfAny([' ', '\t', '\n', '\r']);
        string verb = (space < 0 ? text : text[..space]).ToLowerInvariant();
        string rest = space < 0 ? "" : text[space..].Trim();
        if (verb == "set")
        {
            Set(query, rest);
            return;
        }

        if (!TryParseArgument(rest, out string? arg))
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (verb == "show")
        {
            Show(query, arg);
            return;
        }

        if (verb is not ("pause" or "resume" or "reconnect" or "kill" or "kill_client" or "disable" or "enable" or "wait_close" or "shutdown" or "reload"
            or "suspend"))
        {
            Error($"invalid command '{query}', use SHOW HELP;");
            return;
        }

        if (!_admin)
        {
            Error("admin access needed", SqlState.InsufficientPrivilege);
            return;
        }

        LogCommand(_logger, _user, query);
        switch (verb)
        {
            case "pause": await PauseAsync(arg).ConfigureAwait(false); return;
            case "resume": Resume(arg); return;
            case "reconnect": Reconnect(arg); return;
            case "kill": Kill(arg); return;
            case "kill_client": KillClient(arg); return;
            case "disable": SetDisabled(arg, true, "DISABLE"); return;
            case "enable": SetDisabled(arg, false, "ENABLE"); return;
            case "wait_close": await WaitCloseAsync(arg).ConfigureAwait(false); return;
            case "shutdown": Shutdown(query, arg); return;
            case "reload": Reload(arg, query); return;
            default:
                Error("SUSPEND is not supported: PgProxy has no online restart; SHUTDOWN WAIT_FOR_CLIENTS drains it instead",
                    SqlState.FeatureNotSupported);
                return;
        }
    }

    /// <summary>Empty (no argument), one word, or a double-quoted name ("" inside for a quote).</summary>
    private static bool TryParseArgument(string rest, out string? arg)
    {
        arg = null;
        if (rest.Length == 0)
        {
            return true;
        }

        if (rest[0] == '"')
        {
            if (rest.Length < 2 || rest[^1] != '"')
            {
                return false;
            }

            string inner = rest[1..^1];
            if (inner.Replace("\"\"", "", StringComparison.Ordinal).Contains('"', StringComparison.Ordinal))
            {
                return false;
            }

            arg = inner.Replace("\"\"", "\"", StringComparison.Ordinal);
            return arg.Length > 0;
        }

        if (rest.Any(char.IsWhiteSpace) || rest.Contains('"', StringComparison.Ordinal))
        {
            return false;
        }

        arg = rest;
        return true;
    }

    private void Show(string query, string? what)
    {
        switch (what?.ToLowerInvariant())
        {
            case "help": ShowHelp(); return;
            case "version": Rows([("version", Text)], [[s_version]]); return;
            case "pools": ShowPools(); return;
            case "clients": ShowClients(); return;
            case "servers": ShowServers(); return;
            case "databases": ShowDatabases(); return;
            case "users": ShowUsers(); return;
            case "lists": ShowLists(); return;
            case "state": ShowState(); return;
            case "config": ShowConfig(); return;
            case "stats": ShowStats(); return;
            case "stats_totals": ShowStatsTotals(); return;
            case "stats_averages": ShowStatsAverages(); return;
            case "totals": ShowTotals(); return;
        }

        // PgBouncer's wording and code (admin_error: ERROR 08P01), so its scripts recognise it.
        Error($"invalid command '{query}', use SHOW HELP;");
    }

    private IEnumerable<Pool> SortedPools() =>
        _services.Pools.Pools.OrderBy(p => p.Key.Database, StringComparer.Ordinal).ThenBy(p => p.Key.User, StringComparer.Ordinal);

    private void Rows(IReadOnlyList<(string Name, int TypeOid)> columns, IReadOnlyList<string?[]> rows)
    {
        BackendMessages.RowDescription(_out, columns);
        foreach (string?[] row in rows)
        {
            BackendMessages.DataRow(_out, row);
        }

        BackendMessages.CommandComplete(_out, ShowTag);
    }

    /// <summary>PgBouncer's admin_error: ERROR 08P01 unless another code says it better.</summary>
    private void Error(string message, string sqlState = SqlState.ProtocolViolation) => ErrorResponse.Error(sqlState, message).Write(_out);

    private static string I(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Mode(PoolMode mode) => ConfigPrinter.Mode(mode);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.AdminCommand, Level = LogLevel.Information, Message = "Admin console: {User} ran {Command}")]
    private static partial void LogCommand(ILogger logger, string user, string command);
}
