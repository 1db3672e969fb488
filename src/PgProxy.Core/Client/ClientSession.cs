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
using PgProxy.Core.Prepared;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Client;

/// <summary>
/// One client connection: handshake and login (<c>ClientSession.Login.cs</c>), then its relay for the rest of its life.
/// The session's task is the client side's one loop, the only reader of the client's socket: it forwards what the
/// client sends through its <see cref="MessageRelay"/>, links a backend when a message needs one
/// (<c>ClientSession.Link.cs</c>), and ends the link when the client leaves. Timeouts stop it from outside
/// (<c>ClientSession.Timeouts.cs</c>) by waking that read, which only this loop consumes.
/// </summary>
public sealed partial class ClientSession : DeadlineQueue.Entry, ICancelTarget
{
    private readonly ConnectionContext _connection;
    private readonly ProxyServices _services;
    // Made for the login and the welcome, dropped after them, and made again only when the proxy writes to the client
    // itself (a setting reported on a link, an error): an idle client keeps none.
    private PgMessageBuilder? _builder;
    private MessageRelay? _relay;
    private ErrorResponse? _abort;
    private readonly long _connectedAt;
    private string _database = "";
    private string _user = "";
    private Pool? _pool;
    private int _cancelPid;
    private bool _counted;
    private byte _negotiations; // encryption requests answered 'N' before the login started (LoginAsync counts on)
    private bool _loggedIn;
    private volatile bool _ended;

    /// <summary>Creates a session for an accepted connection.</summary>
    public ClientSession(ConnectionContext connection, ProxyServices services)
    {
        _connection = connection;
        _services = services;
        _connectedAt = services.Time.GetTimestamp();
    }

    private PipeReader Input => _connection.Transport.Input;

    private PipeWriter Output => _connection.Transport.Output;

    private ProxyConfig Config => _services.Config;

    // Through the services rather than a field of its own: 8 bytes less per client.
    private ILogger Logger => _services.SessionLogger;

    private PgMessageBuilder Builder => _builder ??= PgMessageBuilder.Rent();

    /// <summary>Gives the builder back once what it held has gone to <see cref="Output"/>: an idle client keeps none.</summary>
    private void ReleaseBuilder()
    {
        if (_builder is { } builder)
        {
            _builder = null;
            PgMessageBuilder.Return(builder);
        }
    }

    /// <summary>
    /// Sends what the builder holds and gives the builder back. The bytes are copied into <see cref="Output"/> at once,
    /// so the builder is free before the flush completes, and the flush needs no async method of its own.
    /// </summary>
    private ValueTask<System.IO.Pipelines.FlushResult> SendBuilderAsync(CancellationToken ct)
    {
        Builder.FlushTo(Output);
        ReleaseBuilder();
        return Output.FlushAsync(ct);
    }

    /// <summary>Bytes the proxy wrote for the client and has not sent yet.</summary>
    private bool HasPendingOutput => _builder is { Written.IsEmpty: false };

    /// <summary>Runs the connection to its end and disposes it. Never throws.</summary>
    /// <remarks>
    /// A socket's client is logged in once its first bytes are there: until then its read is parked with a callback
    /// (<see cref="IParkableReader"/>), so the login's methods run to the welcome without suspending (with trust) and
    /// no state machine is made for a read that would have waited. The login then starts the client side's loop
    /// (<see cref="ServeAsync"/>), which parks the client's read when the socket has nothing and returns: an idle client
    /// keeps no state machine at all, only its session, relay and socket. The loop starts again, from the session's
    /// fields, when the read completes. The task completes when the session has ended or parked a read.
    /// </remarks>
    public Task RunAsync()
    {
        _counted = _services.TryAddClient(_connectedAt);
        ArmLoginTimeout();
        return LoginAndServeAsync(parked: false);
    }

    /// <summary>The first bytes of a parked client came (or its end, or a wake-up): its login starts.</summary>
    private static readonly Action<object?> s_start = static state => _ = ((ClientSession)state!).LoginAndServeAsync(parked: true);

    /// <summary>
    /// The client's bytes begin with an encryption request (8 bytes: length, code) the proxy answers 'N'
    /// (<see cref="AnsweredInPlaintext"/>), and the login would accept another one (<see cref="MaxEncryptionRequests"/>).
    /// </summary>
    private bool IsPlaintextNegotiation(in ReadOnlySequence<byte> buffer) =>
        _negotiations < MaxEncryptionRequests && StartupPacket.IsEncryptionRequest(buffer, out int code) && AnsweredInPlaintext(code);

    private async Task LoginAndServeAsync(bool parked)
    {
        DisconnectReason reason = DisconnectReason.ClientClosed;
        ErrorResponse? fatal = null;
        bool endLink = false;
        try
        {
            if (Input is IParkableReader parkable)
            {
                while (true)
                {
                    ReadResult first;
                    if (parked)
                    {
                        parked = false;
                        first = parkable.TakeParkedResult();
                    }
                    else if (!parkable.TryReadOrPark(s_start, this, out first))
                    {
                        return; // parked: s_start calls this again when the client's first bytes come
                    }

                    if (!first.IsCanceled && IsPlaintextNegotiation(first.Buffer))
                    {
                        // An SSLRequest without TLS configured (libpq's default sslmode=prefer sends one first), or a
                        // GSSENCRequest: 'N', and the startup packet that follows is parked for too.
                        _negotiations++;
                        Input.AdvanceTo(first.Buffer.GetPosition(8));
                        Output.Write("N"u8);
                        await Output.FlushAsync().ConfigureAwait(false);
                        continue;
                    }

                    Input.AdvanceTo(first.Buffer.Start); // looked at only: the login reads the same bytes
                    break;
                }
            }

            ThrowIfAborted(); // the login's deadline passed while the first bytes were awaited (its wake-up was taken)
            LoginResult? login = await LoginAsync().ConfigureAwait(false);
            EndLoginTimeout();
            if (login is { IsConsole: true })
            {
                await RunConsoleAsync(login.Auth).ConfigureAwait(false);
            }
            else if (login is not null)
            {
                (_cancelPid, int secret) = _services.CancelKeys.Register(this, Config.Proxy.PeerId);
                Task welcome = WelcomeAsync(login, _cancelPid, secret);
                login = null; // the startup settings live on in the pool's interned view; an idle client keeps no copy
                await welcome.ConfigureAwait(false);
                // Ends the session itself when the client leaves; returns at once when it parks the read.
                await ServeAsync(resumed: false).ConfigureAwait(false);
                return;
            }
        }
        catch (Exception ex)
        {
            (reason, fatal) = Failed(ex);
            endLink = true;
        }

        await EndAsync(reason, fatal, endLink).ConfigureAwait(false);
    }

    /// <summary>The client side's loop resumed by a parked read that completed (bytes, the end, or a wake-up).</summary>
    private static readonly Action<object?> s_resume = static state => _ = ((ClientSession)state!).ServeAsync(resumed: true);

    /// <summary>
    /// The client side's loop: read what the client sent, forward it to the attached backend (linking one when a message
    /// needs it), flush once per read batch. When the client's socket has nothing more, the read is parked with
    /// <see cref="IParkableReader"/> and this method returns, keeping nothing; the read's completion calls it again
    /// with <paramref name="resumed"/>. A reader that cannot park (TLS) is awaited instead. Ends the session when the
    /// client leaves or a wake-up aborts it.
    /// </summary>
    private async Task ServeAsync(bool resumed)
    {
        DisconnectReason reason = DisconnectReason.ClientClosed;
        ErrorResponse? fatal = null;
        bool endLink = false;
        try
        {
            MessageRelay relay = _relay!;
            Pool pool = _pool!;
            IParkableReader? parkable = Input as IParkableReader;
            bool timeouts = HasTimeouts;
            while (true)
            {
                ReadResult read;
                if (resumed)
                {
                    resumed = false;
                    read = parkable!.TakeParkedResult();
                }
                else if (parkable is null)
                {
                    read = await Input.ReadAsync().ConfigureAwait(false);
                }
                else if (!parkable.TryReadOrPark(s_resume, this, out read))
                {
                    return; // parked: nothing of this call is kept while the client is idle
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                if (read.IsCanceled)
                {
                    // Only this loop reads the client: a wake-up is always meant for it (a timeout, the backend lost).
                    Input.AdvanceTo(buffer.Start);
                    if (relay.BackendLost)
                    {
                        reason = DisconnectReason.BackendClosed; // its pump told the client already
                        break;
                    }

                    ThrowIfAborted();
                    if (relay.WriteProbeIfWanted() is { } probed)
                    {
                        // The link's transaction left session state, maybe: the pin probe (see MessageRelay.Pinning).
                        await FlushToBackendAsync(probed).ConfigureAwait(false);
                        relay.ClientFlushed()?.WakePump();
                    }

                    continue;
                }

                RelayStop stop = relay.ForwardFromClient(ref buffer, out BackendConnection? target);
                if (stop == RelayStop.NeedBackend)
                {
                    Input.AdvanceTo(buffer.Start); // the message that needs a backend waits, unexamined
                    ThrowIfAborted();
                    await LinkAsync(relay, pool).ConfigureAwait(false);
                    continue;
                }

                Input.AdvanceTo(buffer.Start, read.Buffer.End);
                bool clientDone = stop == RelayStop.ClientTerminated || read.IsCompleted;
                if (timeouts)
                {
                    ArmTimeouts(relay);
                }

                if (target is not null)
                {
                    await FlushToBackendAsync(target).ConfigureAwait(false);
                }

                relay.ClientFlushed()?.WakePump();
                CheckStop(stop);
                if (clientDone)
                {
                    await EndLinkAsync().ConfigureAwait(false);
                    reason = DisconnectReason.ClientClosed;
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            (reason, fatal) = Failed(ex);
            endLink = true;
        }

        await EndAsync(reason, fatal, endLink).ConfigureAwait(false);
    }

    /// <summary>Why the session ends for <paramref name="ex"/>, and the FATAL the client is told, if any.</summary>
    private (DisconnectReason Reason, ErrorResponse? Fatal) Failed(Exception ex)
    {
        if (ex is OperationCanceledException && !_loggedIn && Volatile.Read(ref _abort) is { } abort)
        {
            // A TLS handshake's read woken by the login timeout: the stream fails it as canceled.
            ex = new ProxyException(abort.SqlState, abort.Message);
        }

        switch (ex)
        {
            case ProxyException proxy:
                DisconnectReason reason = proxy switch
                {
                    BackendUnavailableException => DisconnectReason.BackendUnavailable,
                    _ when proxy.SqlState is SqlState.InvalidPassword or SqlState.InvalidAuthorizationSpecification => DisconnectReason.AuthFailed,
                    _ when proxy.SqlState == SqlState.InvalidCatalogName => DisconnectReason.UnknownDatabase,
                    _ when proxy.SqlState == SqlState.TooManyConnections && !_loggedIn && _pool is null => DisconnectReason.TooManyClients,
                    _ when proxy.SqlState == SqlState.QueryCanceled => _loggedIn ? DisconnectReason.QueryTimeout : DisconnectReason.LoginTimeout,
                    _ when proxy.SqlState == SqlState.IdleSessionTimeout => DisconnectReason.ClientIdleTimeout,
                    _ when proxy.SqlState == SqlState.IdleInTransactionSessionTimeout => DisconnectReason.IdleTransactionTimeout,
                    _ when proxy.SqlState == SqlState.ConfigurationLimitExceeded => DisconnectReason.PinTimeout,
                    _ when proxy.SqlState == SqlState.AdminShutdown => DisconnectReason.Shutdown,
                    _ => DisconnectReason.ProtocolViolation,
                };
                if (!_loggedIn)
                {
                    LogRefused(Logger, _connection.ConnectionId, _connection.RemoteEndPoint?.ToString() ?? "?", _database, _user, proxy.SqlState, proxy.Message);
                }

                return (reason, proxy.ToFatal());
            case OperationCanceledException:
            case Exception when TransportErrors.IsTransportGone(ex):
                return (DisconnectReason.ClientClosed, null);
            default:
                LogUnexpected(Logger, ex, _connection.ConnectionId);
                return (DisconnectReason.InternalError, ErrorResponse.Fatal(SqlState.InternalError, "internal error in the pooler; see its log"));
        }
    }

    /// <summary>Ends the session: the link, the client's FATAL if any, the counters and keys, the log line, the socket.</summary>
    private async Task EndAsync(DisconnectReason reason, ErrorResponse? fatal, bool endLink)
    {
        try
        {
            if (endLink)
            {
                await EndLinkAsync().ConfigureAwait(false);
            }

            if (fatal is not null)
            {
                if (_loggedIn && _pool is { } pool)
                {
                    pool.Stats.Error(fatal.SqlState);
                }
                else if (!_loggedIn)
                {
                    _services.LoginRefused(fatal.SqlState);
                }

                await TrySendAsync(fatal).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // Whatever went wrong here, the connection below is still completed and disposed.
            reason = DisconnectReason.InternalError;
            LogUnexpected(Logger, ex, _connection.ConnectionId);
        }
        finally
        {
            _ended = true;
            _services.Deadlines.Cancel(this);
            _relay?.Close();
            if (_cancelPid != 0)
            {
                _services.CancelKeys.Unregister(_cancelPid);
            }

            if (_counted)
            {
                _services.RemoveClient();
            }

            if (_loggedIn)
            {
                LogLogout(Logger, this, _database, _user, reason);
            }
        }

        await CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>The login line's "(method, TLS version/cipher)".</summary>
    private string HowAuthenticated(string auth) => PgProxy.Core.Tls.TlsPipe.WithTls(auth, _connection.Transport);

    /// <summary>The admin console, in place of a relay (<see cref="Admin.AdminConsole"/>).</summary>
    private async Task RunConsoleAsync(string auth)
    {
        var console = new Admin.AdminConsole(_services, Input, Output, _user);
        await console.WelcomeAsync(Builder).ConfigureAwait(false);
        ReleaseBuilder();
        _loggedIn = true;
        LogLogin(Logger, this, (object?)_connection.RemoteEndPoint ?? "?", _database, _user, HowAuthenticated(auth));
        await console.RunAsync().ConfigureAwait(false);
    }

    /// <summary>Tells the client its parameters, cancel key and ReadyForQuery, and builds its relay (<see cref="_relay"/>).</summary>
    private async Task WelcomeAsync(LoginResult login, int cancelPid, int cancelSecret)
    {
        Pool pool = login.Pool!;
        string auth = login.Auth;
        PoolSettings settings = pool.Settings;

        // Login completes without a backend, as PgBouncer does: a client that connects and waits (pgbench opening
        // all its connections before the first query) must not hold a server. The client is told the pool's welcome
        // parameters overlaid with its own settings; its first message links a backend.
        if (pool.LoginRefusal is { } refused)
        {
            // The server refuses this pool's logins (password, database, permission): told its error at once, rather
            // than logged in to wait for a server that will not take it. A server that is only down or restarting
            // is waited for instead (up to query_wait_timeout): it may be back in a moment.
            throw refused.Copy();
        }

        if (pool.WelcomeParameters is null)
        {
            BackendConnection first = await pool.AcquireAsync(_connection.ConnectionClosed).ConfigureAwait(false);
            await pool.ReleaseAsync(first, reusable: true).ConfigureAwait(false);
        }

        // The client's view of every reported parameter: what it was told, then whatever its backends reported.
        ClientSettings view = pool.ViewAtLogin(login.Settings);
        login = null!; // nor here: the view holds the settings
        Builder.Bytes(view.WelcomeMessages);

        BackendMessages.BackendKeyData(Builder, cancelPid, cancelSecret);
        BackendMessages.ReadyForQuery(Builder, TransactionStatus.Idle);
        // Not bound to ConnectionClosed: asking for that token makes the connection's cancellation source, which an
        // idle client would then keep for its whole life. The welcome is a few hundred bytes on a fresh connection,
        // so the socket takes it at once, and a client that has gone fails the write by itself.
        await SendBuilderAsync(CancellationToken.None).ConfigureAwait(false);
        _loggedIn = true;
        pool.Stats.Login();
        LogLogin(Logger, this, (object?)_connection.RemoteEndPoint ?? "?", _database, _user, HowAuthenticated(auth));

        StatementMapper? statements = settings.Mode != PoolMode.Session && settings.Proxy.MaxPreparedStatements > 0
            ? _services.Pools.EmptyStatementMapper(settings.Proxy.MaxPreparedStatements)
            : null;
        var relay = new MessageRelay(Input, Output, pool, statements) { View = view, Owner = this };
        Volatile.Write(ref _relay, relay);
        if (HasTimeouts)
        {
            ArmTimeouts(relay);
        }
    }

    /// <summary>The client's connection id ("c42"), as log lines name it.</summary>
    public override string ToString() => _connection.ConnectionId;

    /// <summary>Sends what the client's read batch wrote to the backend; a server that is gone is not an error here.</summary>
    private static async ValueTask FlushToBackendAsync(BackendConnection target)
    {
        try
        {
            await target.Output.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            // The server is gone: its pump tells the client and wakes the session's loop.
        }
    }

    /// <summary>Ends the session with the client's error when its relay stopped at a bad message.</summary>
    private static void CheckStop(RelayStop stop)
    {
        switch (stop)
        {
            case RelayStop.ClientProtocolViolation:
                throw new ProxyException(SqlState.ProtocolViolation, "invalid message length");
            case RelayStop.ClientMessageTooLarge:
                throw new ProxyException(SqlState.ProgramLimitExceeded,
                    $"prepared statement text is too large for the pooler (limit {MessageRelay.MaxParseBytes} bytes)");
        }
    }

    private void ThrowIfAborted()
    {
        if (Volatile.Read(ref _abort) is { } abort)
        {
            throw new ProxyException(abort.SqlState, abort.Message);
        }
    }

    /// <inheritdoc />
    public async ValueTask CancelAsync(CancellationToken ct)
    {
        BackendConnection? backend = Volatile.Read(ref _relay)?.Backend;
        if (backend is null)
        {
            LogCancelIgnored(Logger, _connection.ConnectionId);
            return;
        }

        backend.Pool.CancelStarted();
        bool tls;
        try
        {
            tls = await _services.Pools.Connector.CancelAsync(backend, ct).ConfigureAwait(false);
        }
        finally
        {
            backend.Pool.CancelEnded();
        }

        LogCancelForwarded(Logger, _connection.ConnectionId, backend.Id, backend.ProcessId, tls ? " over TLS" : "");
    }

    private async Task TrySendAsync(ErrorResponse error)
    {
        try
        {
            Builder.Reset();
            error.Write(Builder);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await SendBuilderAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException || TransportErrors.IsTransportGone(ex))
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
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            // Already torn down.
        }

        await _connection.DisposeAsync().ConfigureAwait(false);
    }
}
