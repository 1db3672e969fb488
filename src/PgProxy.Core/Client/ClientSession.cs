using System.Diagnostics;
using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Backend;
using PgProxy.Core.Cancellation;
using PgProxy.Core.Configuration;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Client;

/// <summary>
/// One client connection: handshake and login (<c>ClientSession.Login.cs</c>), then, in session mode, one backend
/// linked for the whole session, relayed by <see cref="SessionRelay"/>, and released clean (or closed) at the end.
/// </summary>
public sealed partial class ClientSession : ICancelTarget, IThreadPoolWorkItem
{
    private readonly ConnectionContext _connection;
    private readonly ProxyServices _services;
    private readonly ILogger _logger;
    private readonly PgMessageBuilder _builder = new();
    private BackendConnection? _linked;
    private SessionRelay? _relay;
    private ErrorResponse? _abort;
    private long _lastActivity = Stopwatch.GetTimestamp();
    private string _database = "";
    private string _user = "";
    private Pool? _pool;
    private bool _loggedIn;

    /// <summary>Creates a session for an accepted connection.</summary>
    public ClientSession(ConnectionContext connection, ProxyServices services)
    {
        _connection = connection;
        _services = services;
        _logger = services.SessionLogger;
    }

    private PipeReader Input => _connection.Transport.Input;

    private PipeWriter Output => _connection.Transport.Output;

    private ProxyConfig Config => _services.Config;

    /// <summary>Started from the thread pool: runs the connection to its end (the task is not needed: it never throws).</summary>
    void IThreadPoolWorkItem.Execute() => _ = RunAsync();

    /// <summary>Runs the connection to its end and disposes it. Never throws.</summary>
    public async Task RunAsync()
    {
        bool counted = _services.TryAddClient();
        int cancelPid = 0;
        DisconnectReason reason = DisconnectReason.ClientClosed;
        try
        {
            LoginResult? login = await LoginWithTimeoutAsync(counted).ConfigureAwait(false);
            if (login is null)
            {
                return;
            }

            (cancelPid, int secret) = _services.CancelKeys.Register(this);
            _services.Sessions.TryAdd(this, 0);
            Task<DisconnectReason> serving = ServeAsync(login, cancelPid, secret);
            login = null; // the startup settings live on in the pool's interned view; an idle client keeps no copy
            reason = await serving.ConfigureAwait(false);
        }
        catch (ProxyException ex)
        {
            reason = ex switch
            {
                BackendUnavailableException => DisconnectReason.BackendUnavailable,
                _ when ex.SqlState is SqlState.InvalidPassword or SqlState.InvalidAuthorizationSpecification => DisconnectReason.AuthFailed,
                _ when ex.SqlState == SqlState.InvalidCatalogName => DisconnectReason.UnknownDatabase,
                _ when ex.SqlState == SqlState.TooManyConnections && !_loggedIn && _pool is null => DisconnectReason.TooManyClients,
                _ when ex.SqlState == SqlState.QueryCanceled => _loggedIn ? DisconnectReason.QueryTimeout : DisconnectReason.LoginTimeout,
                _ when ex.SqlState == "57P05" => DisconnectReason.ClientIdleTimeout,
                _ when ex.SqlState == "25P03" => DisconnectReason.IdleTransactionTimeout,
                _ => DisconnectReason.ProtocolViolation,
            };
            if (!_loggedIn)
            {
                LogRefused(_logger, _connection.ConnectionId, _connection.RemoteEndPoint?.ToString() ?? "?", _database, _user, ex.SqlState, ex.Message);
            }

            await TrySendAsync(ex.ToFatal()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException)
        {
            reason = DisconnectReason.ClientClosed;
        }
        catch (Exception ex)
        {
            reason = DisconnectReason.InternalError;
            LogUnexpected(_logger, ex, _connection.ConnectionId);
            await TrySendAsync(ErrorResponse.Fatal(SqlState.InternalError, "internal error in the pooler; see its log")).ConfigureAwait(false);
        }
        finally
        {
            _services.Sessions.TryRemove(this, out _);
            if (cancelPid != 0)
            {
                _services.CancelKeys.Unregister(cancelPid);
            }

            if (counted)
            {
                _services.RemoveClient();
            }

            if (_loggedIn)
            {
                LogLogout(_logger, _connection.ConnectionId, _database, _user, reason);
            }

            await CompleteAsync().ConfigureAwait(false);
        }
    }

    private async Task<DisconnectReason> ServeAsync(LoginResult login, int cancelPid, int cancelSecret)
    {
        Pool pool = login.Pool;
        PoolSettings settings = pool.Settings;
        CancellationToken closed = _connection.ConnectionClosed;

        // Login completes without a backend, as PgBouncer does: a client that connects and waits (pgbench opening
        // all its connections before the first query) must not hold a server. The client is told the pool's welcome
        // parameters overlaid with its own settings; its first message links a backend.
        if (pool.LoginRefusal is { } refused)
        {
            // The server refuses this pool's logins (password, database, permission): told its error at once, rather
            // than logged in to wait for a server that will not take it. A server that is only down or restarting
            // is waited for instead (up to query_wait_timeout): it may be back in a moment.
            throw new BackendUnavailableException(refused.SqlState, refused.Message, refused.Detail, null, refused.ServerError);
        }

        if (pool.WelcomeParameters is null)
        {
            BackendConnection first = await pool.AcquireAsync(closed).ConfigureAwait(false);
            await pool.ReleaseAsync(first, reusable: true).ConfigureAwait(false);
        }

        // The client's view of every reported parameter: what it was told, then whatever its backends reported.
        ClientSettings view = pool.Intern(ClientSettings.AtLogin(pool.WelcomeParameters!, login.Settings));
        login = null!; // nor here: the view holds the settings
        foreach (KeyValuePair<string, string> p in view.Told)
        {
            BackendMessages.ParameterStatus(_builder, p.Key, p.Value);
        }

        BackendMessages.BackendKeyData(_builder, cancelPid, cancelSecret);
        BackendMessages.ReadyForQuery(_builder, (byte)'I');
        await PgMessageIO.WriteAsync(Output, _builder, closed).ConfigureAwait(false);
        _builder.Shrink();
        _loggedIn = true;
        LogLogin(_logger, _connection.ConnectionId, _connection.RemoteEndPoint?.ToString() ?? "?", _database, _user);

        Dictionary<string, Prepared.PreparedStatement>? statements =
            settings.Mode != PoolMode.Session && settings.Proxy.MaxPreparedStatements > 0 ? new(StringComparer.Ordinal) : null;

        while (true)
        {
            Volatile.Write(ref _lastActivity, Stopwatch.GetTimestamp());
            // Wait until the client sends something, without consuming it. Inline rather than a helper, and without
            // a token (a closed client completes the read): an idle client then holds no extra state machine and no
            // token registration.
            bool ended;
            while (true)
            {
                System.IO.Pipelines.ReadResult read = await Input.ReadAsync().ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                if (!buffer.IsEmpty)
                {
                    ended = buffer.FirstSpan[0] == FrontendCode.Terminate;
                    Input.AdvanceTo(buffer.Start);
                    break;
                }

                Input.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted || (read.IsCanceled && Volatile.Read(ref _abort) is not null))
                {
                    ended = true;
                    break;
                }

                // IsCanceled here is a stale cancellation from the previous link's relay: keep waiting.
            }

            if (ended)
            {
                ThrowIfAborted();
                return DisconnectReason.ClientClosed;
            }

            ThrowIfAborted();

            BackendConnection backend = await AcquireCheckedAsync(pool, closed).ConfigureAwait(false);
            backend.Statements.NextGeneration();
            if (!string.Equals(backend.SyncedSettings, view.Key, StringComparison.Ordinal)) // the same interned string: one reference check
            {
                try
                {
                    await SyncParametersAsync(backend, view, settings.Proxy.ServerConnectTimeout).ConfigureAwait(false);
                }
                catch
                {
                    await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.ParameterSyncFailed).ConfigureAwait(false);
                    throw;
                }

                // Whatever the server reports differently from what the client was told (canonical spellings such as
                // DateStyle "ISO, MDY") reaches the client before its first reply.
                foreach (KeyValuePair<string, string> p in backend.Parameters)
                {
                    if (!view.Told.TryGetValue(p.Key, out string? value) || value != p.Value)
                    {
                        BackendMessages.ParameterStatus(_builder, p.Key, p.Value);
                    }
                }

                view = pool.Intern(view.With(backend.Parameters));
                backend.SyncedSettings = view.Key;
            }

            Volatile.Write(ref _linked, backend);
            LogLinked(_logger, _connection.ConnectionId, backend.Id, backend.ProcessId);
            var relay = new SessionRelay(Input, Output, backend, settings.Mode, statements, settings.Proxy.MaxPreparedStatements);
            Volatile.Write(ref _relay, relay);
            try
            {
                if (!_builder.Written.IsEmpty)
                {
                    await PgMessageIO.WriteAsync(Output, _builder, closed).ConfigureAwait(false);
                }
            }
            catch
            {
                Volatile.Write(ref _linked, null);
                await pool.ReleaseAsync(backend, reusable: true).ConfigureAwait(false);
                throw;
            }

            RelayStop stop = await relay.RunAsync().ConfigureAwait(false);
            Volatile.Write(ref _relay, null);
            Volatile.Write(ref _linked, null);
            Volatile.Write(ref _lastActivity, relay.LastClientActivity);
            LogUnlinked(_logger, _connection.ConnectionId, backend.Id, stop);
            if (backend.SyncedSettings is null)
            {
                // The backend sent ParameterStatus (forwarded to the client): the client's view follows.
                view = pool.Intern(view.With(backend.Parameters));
            }

            if (Volatile.Read(ref _abort) is not null && stop is not (RelayStop.BackendClosed or RelayStop.Released or RelayStop.TransactionInStatementMode))
            {
                await ReleaseAfterClientAsync(backend, relay).ConfigureAwait(false);
                ThrowIfAborted();
            }

            switch (stop)
            {
                case RelayStop.Released:
                    await ReleaseAfterTransactionAsync(backend, relay).ConfigureAwait(false);
                    continue;
                case RelayStop.TransactionInStatementMode:
                    await RefuseTransactionAsync(backend).ConfigureAwait(false);
                    continue;
                case RelayStop.BackendClosed:
                    if (!relay.SawFatal)
                    {
                        await TrySendAsync(ErrorResponse.Fatal(SqlState.ConnectionFailure,
                            "server closed the connection unexpectedly", "the pooler lost its server connection; reconnect to continue")).ConfigureAwait(false);
                    }

                    await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.BackendClosed).ConfigureAwait(false);
                    return DisconnectReason.BackendClosed;
                case RelayStop.ClientProtocolViolation:
                    await TrySendAsync(ErrorResponse.Fatal(SqlState.ProtocolViolation, "invalid message length")).ConfigureAwait(false);
                    await ReleaseAfterClientAsync(backend, relay).ConfigureAwait(false);
                    return DisconnectReason.ProtocolViolation;
                case RelayStop.ClientMessageTooLarge:
                    await TrySendAsync(ErrorResponse.Fatal(SqlState.ProgramLimitExceeded,
                        $"prepared statement text is too large for the pooler (limit {SessionRelay.MaxParseBytes} bytes)")).ConfigureAwait(false);
                    await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.ProtocolViolation).ConfigureAwait(false);
                    return DisconnectReason.ProtocolViolation;
                default:
                    await ReleaseAfterClientAsync(backend, relay).ConfigureAwait(false);
                    return DisconnectReason.ClientClosed;
            }
        }
    }

    private void ThrowIfAborted()
    {
        if (Volatile.Read(ref _abort) is { } abort)
        {
            throw new ProxyException(abort.SqlState, abort.Message);
        }
    }

    /// <summary>
    /// Watchdog tick: client_idle_timeout (no traffic, outside a transaction), idle_transaction_timeout (no traffic
    /// inside one), query_timeout (a request outstanding too long: canceled on the server first). The session is
    /// stopped from outside; its own task then tells the client, cleans or closes the server, and ends.
    /// </summary>
    internal void CheckTimeouts()
    {
        if (Volatile.Read(ref _abort) is not null)
        {
            return;
        }

        ProxySection p = Config.Proxy;
        SessionRelay? relay = Volatile.Read(ref _relay);
        BackendConnection? backend = Volatile.Read(ref _linked);
        if (relay is null || backend is null)
        {
            if (p.ClientIdleTimeout > TimeSpan.Zero && Stopwatch.GetElapsedTime(Volatile.Read(ref _lastActivity)) > p.ClientIdleTimeout)
            {
                Abort(ErrorResponse.Fatal("57P05", $"terminating connection due to idle-session timeout (client_idle_timeout {DurationText.Format(p.ClientIdleTimeout)})"), null);
            }

            return;
        }

        long busy = relay.BusySince;
        if (busy != 0)
        {
            if (p.QueryTimeout > TimeSpan.Zero && Stopwatch.GetElapsedTime(busy) > p.QueryTimeout)
            {
                _ = CancelQuietlyAsync();
                Abort(ErrorResponse.Fatal(SqlState.QueryCanceled, $"canceling statement due to query_timeout ({DurationText.Format(p.QueryTimeout)})"), relay);
            }

            return;
        }

        TimeSpan idle = Stopwatch.GetElapsedTime(relay.LastClientActivity);
        if (backend.TransactionStatus != (byte)'I')
        {
            if (p.IdleTransactionTimeout > TimeSpan.Zero && idle > p.IdleTransactionTimeout)
            {
                Abort(ErrorResponse.Fatal("25P03",
                    $"terminating connection due to idle-in-transaction timeout (idle_transaction_timeout {DurationText.Format(p.IdleTransactionTimeout)})"), relay);
            }
        }
        else if (p.ClientIdleTimeout > TimeSpan.Zero && idle > p.ClientIdleTimeout)
        {
            Abort(ErrorResponse.Fatal("57P05", $"terminating connection due to idle-session timeout (client_idle_timeout {DurationText.Format(p.ClientIdleTimeout)})"), relay);
        }
    }

    private void Abort(ErrorResponse error, SessionRelay? relay)
    {
        Volatile.Write(ref _abort, error);
        if (relay is not null)
        {
            relay.Stop();
        }
        else
        {
            Input.CancelPendingRead();
        }
    }

    private async Task CancelQuietlyAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await CancelAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Sockets.SocketException)
        {
            // The backend is closed right after anyway.
        }
    }

    /// <summary>
    /// Pre-ping (SQLAlchemy's pool_pre_ping): a backend idle longer than server_check_delay runs server_check_query
    /// before the client gets it. One that fails is closed and another taken, so the client never sees it; the loop
    /// ends because each failing idle backend is closed and a newly opened one is not checked.
    /// </summary>
    private static async Task<BackendConnection> AcquireCheckedAsync(Pool pool, CancellationToken ct)
    {
        PoolSettings s = pool.Settings;
        while (true)
        {
            BackendConnection backend = await pool.AcquireAsync(ct).ConfigureAwait(false);
            bool fresh = backend.LastUsedAt == backend.CreatedAt;
            if (string.IsNullOrEmpty(s.Proxy.ServerCheckQuery) || fresh || Stopwatch.GetElapsedTime(backend.LastUsedAt) < s.Proxy.ServerCheckDelay)
            {
                return backend;
            }

            if (await RunControlQueriesAsync(backend, [s.Proxy.ServerCheckQuery], s.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null &&
                backend.TransactionStatus == (byte)'I')
            {
                return backend;
            }

            await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.CheckFailed).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Transaction/statement mode: the transaction is over. The backend goes straight back, unless the client ran
    /// something that leaves session state (SET, LISTEN, temp tables...): then server_reset_query runs first.
    /// </summary>
    private async Task ReleaseAfterTransactionAsync(BackendConnection backend, SessionRelay relay)
    {
        if (!relay.NeedsReset)
        {
            await backend.Pool.ReleaseAsync(backend, reusable: true).ConfigureAwait(false);
            return;
        }

        await ResetAndReleaseAsync(backend, rollback: false).ConfigureAwait(false);
    }

    /// <summary>Statement mode: a statement opened a transaction. Roll it back and tell the client, as PgBouncer does.</summary>
    private async Task RefuseTransactionAsync(BackendConnection backend)
    {
        bool ok = await RunControlQueriesAsync(backend, ["ROLLBACK"], backend.Pool.Settings.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null;
        ErrorResponse.Error(SqlState.FeatureNotSupported, "transaction blocks not allowed in statement pooling mode",
            "the transaction was rolled back; use a transaction- or session-mode pool for multi-statement transactions").Write(_builder);
        BackendMessages.ReadyForQuery(_builder, (byte)'I');
        await backend.Pool.ReleaseAsync(backend, ok && backend.TransactionStatus == (byte)'I', DisconnectReason.ResetFailed).ConfigureAwait(false);
        await PgMessageIO.WriteAsync(Output, _builder, _connection.ConnectionClosed).ConfigureAwait(false);
    }

    /// <summary>
    /// The client is gone. A quiescent backend outside a transaction gets server_reset_query; one inside a
    /// transaction gets ROLLBACK first; anything mid-statement or mid-COPY is closed, so the next client never
    /// inherits a dirty server.
    /// </summary>
    private async Task ReleaseAfterClientAsync(BackendConnection backend, SessionRelay relay)
    {
        Pool pool = backend.Pool;
        if (!relay.IsQuiescent || relay.SawFatal)
        {
            await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.DirtyOnRelease).ConfigureAwait(false);
            return;
        }

        // Session mode always resets; transaction mode only when the client left session state behind.
        bool reset = pool.Settings.Mode == PoolMode.Session || relay.NeedsReset;
        bool rollback = backend.TransactionStatus != (byte)'I';
        if (!reset && !rollback)
        {
            await pool.ReleaseAsync(backend, reusable: true).ConfigureAwait(false);
            return;
        }

        await ResetAndReleaseAsync(backend, rollback, reset).ConfigureAwait(false);
    }

    /// <summary>ROLLBACK if asked, then server_reset_query (and DEALLOCATE ALL, so the statement set is known empty).</summary>
    private static async Task ResetAndReleaseAsync(BackendConnection backend, bool rollback, bool reset = true)
    {
        Pool pool = backend.Pool;
        var queries = new List<string>(3);
        if (rollback)
        {
            queries.Add("ROLLBACK");
        }

        if (reset && !string.IsNullOrWhiteSpace(pool.Settings.Proxy.ServerResetQuery))
        {
            queries.Add(pool.Settings.Proxy.ServerResetQuery);
        }

        if (reset && backend.Statements.Count > 0)
        {
            queries.Add("DEALLOCATE ALL");
        }

        if (queries.Count == 0)
        {
            await pool.ReleaseAsync(backend, reusable: true).ConfigureAwait(false);
            return;
        }

        pool.MarkUsed(backend);
        bool ok = await RunControlQueriesAsync(backend, queries, pool.Settings.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null;
        backend.SyncedSettings = null;
        if (ok && reset)
        {
            backend.AppliedSettings.Clear();
            backend.Statements.Clear();
        }

        await pool.ReleaseAsync(backend, ok && backend.TransactionStatus == (byte)'I', DisconnectReason.ResetFailed).ConfigureAwait(false);
    }

    /// <summary>Applies the client's startup settings on its backend (one round trip; replies are not forwarded).</summary>
    private async Task SyncParametersAsync(BackendConnection backend, ClientSettings view, TimeSpan timeout)
    {
        string? sql = SessionParameters.BuildSync(view.Desired(), backend.Parameters, backend.AppliedSettings);
        if (sql is null)
        {
            return;
        }

        ErrorResponse? error = await RunControlQueriesAsync(backend, [sql], timeout).ConfigureAwait(false);
        if (error is not null)
        {
            throw new ProxyException(error.SqlState, error.Message, error.Detail);
        }

        var wanted = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, string> s in view.Desired())
        {
            wanted.Add(s.Key);
            if (!backend.Parameters.ContainsKey(s.Key))
            {
                backend.AppliedSettings[s.Key] = s.Value;
            }
        }

        foreach (string name in backend.AppliedSettings.Keys.Where(n => !wanted.Contains(n)).ToList())
        {
            backend.AppliedSettings.Remove(name);
        }
    }

    /// <summary>
    /// Sends simple queries the proxy owns and reads to the matching ReadyForQuery messages. Returns the first
    /// error the server sent, or null. Transport failures and timeouts surface as an error too.
    /// </summary>
    private static async Task<ErrorResponse?> RunControlQueriesAsync(BackendConnection backend, List<string> queries, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout > TimeSpan.Zero ? timeout : Timeout.InfiniteTimeSpan);
        var b = new PgMessageBuilder();
        foreach (string q in queries)
        {
            FrontendMessages.Query(b, q);
        }

        ErrorResponse? first = null;
        try
        {
            await PgMessageIO.WriteAsync(backend.Output, b, cts.Token).ConfigureAwait(false);
            int remaining = queries.Count;
            while (remaining > 0)
            {
                PgMessage? m = await PgMessageIO.ReadAsync(backend.Input, SessionRelay.MaxInspectedBodyBytes, cts.Token).ConfigureAwait(false);
                if (m is null)
                {
                    return first ?? ErrorResponse.Fatal(SqlState.ConnectionFailure, "server closed the connection");
                }

                switch (m.Value.Type)
                {
                    case BackendCode.ReadyForQuery:
                        backend.TransactionStatus = m.Value.Body.Length > 0 ? m.Value.Body[0] : (byte)'I';
                        remaining--;
                        break;
                    case BackendCode.ParameterStatus:
                        SessionRelay.ReadParameterStatus(new ReadOnlySequence<byte>(m.Value.Body), backend);
                        break;
                    case BackendCode.ErrorResponse:
                        if (first is null && ErrorResponse.TryParse(m.Value.Body, out ErrorResponse? e))
                        {
                            first = e;
                        }

                        break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException or InvalidOperationException or ProxyException)
        {
            return first ?? ErrorResponse.Fatal(SqlState.ConnectionFailure, "server did not answer: " + ex.Message);
        }

        return first;
    }

    /// <inheritdoc />
    public async ValueTask CancelAsync(CancellationToken ct)
    {
        BackendConnection? backend = Volatile.Read(ref _linked);
        if (backend is null)
        {
            LogCancelIgnored(_logger, _connection.ConnectionId);
            return;
        }

        var b = new PgMessageBuilder(16);
        FrontendMessages.CancelRequest(b, backend.ProcessId, backend.SecretKey);
        await _services.Pools.Connector.Transport.SendCancelAsync(backend.Host, backend.Port, b.WrittenMemory.ToArray(), ct).ConfigureAwait(false);
        LogCancelForwarded(_logger, _connection.ConnectionId, backend.Id, backend.ProcessId);
    }

    private async Task TrySendAsync(ErrorResponse error)
    {
        try
        {
            _builder.Reset();
            error.Write(_builder);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await PgMessageIO.WriteAsync(Output, _builder, cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or InvalidOperationException)
        {
            // The client is gone; nothing to tell.
        }
    }

    private async Task CompleteAsync()
    {
        try
        {
            await Output.CompleteAsync().ConfigureAwait(false);
            await Input.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ConnectionResetException)
        {
            // Already torn down.
        }

        await _connection.DisposeAsync().ConfigureAwait(false);
    }
}
