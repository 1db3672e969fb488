using System.Buffers;
using Microsoft.Extensions.Logging;
using PgProxy.Core.Backend;
using PgProxy.Core.Sql;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// Transaction and statement mode: session state pins a client to its server. A transaction whose statements may have
/// created or dropped session state (the lexer's <see cref="SqlStatement.PinEffects"/>) does not end the link at its
/// ReadyForQuery; the session sends the <see cref="PinProbe"/> instead (the client's output belongs to the pump, the
/// server's input to the session), and the probe's answer decides: state left, and the client stays linked to this
/// server (pinned: its notifications, locks and cursors are where it left them); nothing left, and the link ends as
/// any other. A statement that surely creates such state is counted against max_pinned_clients_per_pool before it
/// runs, and refused with 0A000 at the limit, so pins can never take every server of a pool.
/// </summary>
public sealed partial class MessageRelay
{
    private SessionEffects _touched;  // pin effects seen since the last probe was sent
    private PinKinds _pinned;         // what the last probe found
    private bool _pinCounted;         // counted in the pool's pinned clients
    private bool _probeWanted;        // the link could have ended but for _touched: the session sends the probe
    private bool _probeWake;          // ... and must be woken for it, off the lock (see ForwardFromBackend)
    private bool _probeRowSeen;
    private PinKinds _probeRow;
    private long _pinnedSince;

    /// <summary>What the client is pinned to its server for now (SHOW CLIENTS' pinned column); none when it is not.</summary>
    public PinKinds Pinned => _pinned;

    /// <summary>Timestamp since which the client has been pinned; 0 when it is not (pin_timeout).</summary>
    public long PinnedSince => Volatile.Read(ref _pinnedSince);

    /// <summary>
    /// Names the client in the pin log lines by its <see cref="object.ToString"/> (the session: its connection id),
    /// asked for only when such a line is written, so the relay keeps no string of its own.
    /// </summary>
    public object? Owner { get; init; }

    private string? Name => Owner?.ToString();

    /// <summary>
    /// Before a statement with <paramref name="effects"/> runs: a client not pinned yet that would create state a pin
    /// keeps is counted against the pool's limit now; at the limit, the error to answer instead (0A000).
    /// </summary>
    private ErrorResponse? PinRefusal(SessionEffects effects)
    {
        if (!ReleasesPerTransaction || (effects & SqlStatement.CreatingEffects) == 0 || _pinCounted)
        {
            return null;
        }

        if (_pool.TryCountPin())
        {
            _pinCounted = true;
            return null;
        }

        int limit = _pool.MaxPinnedClients;
        return ErrorResponse.Error(SqlState.FeatureNotSupported,
            $"{What(effects)} would pin this client to its server, and {limit} client{(limit == 1 ? " is" : "s are")} pinned in this pool already (max_pinned_clients_per_pool)",
            hint: "in transaction pooling mode session state keeps a server for one client; release it sooner (pg_advisory_unlock_all(), " +
                "DISCARD TEMP, CLOSE ALL, UNLISTEN *, DEALLOCATE ALL), raise max_pinned_clients_per_pool, or use a session-mode pool");
    }

    /// <summary>
    /// A mapped statement about to run (Bind, or SQL EXECUTE) with the session effects read from its text: the
    /// refusal at the pin limit, else null after noting them as a Parse of it would.
    /// </summary>
    private ErrorResponse? NoteMappedEffects(BackendConnection backend, Prepared.PreparedStatement statement)
    {
        if (statement.Effects == SessionEffects.None)
        {
            return null;
        }

        if (PinRefusal(statement.Effects) is { } refusal)
        {
            return refusal;
        }

        _touched |= statement.Effects & SqlStatement.PinEffects;
        backend.Session.NeedsReset |= (statement.Effects & SqlStatement.StatefulEffects) != 0;
        return null;
    }

    private static string What(SessionEffects effects) =>
        (effects & SessionEffects.AdvisoryLock) != 0 ? "a session advisory lock"
        : (effects & SessionEffects.TempObject) != 0 ? "a temporary table"
        : (effects & SessionEffects.HoldCursor) != 0 ? "a WITH HOLD cursor"
        : "LISTEN";

    /// <summary>
    /// The link could end now but for session state: false while the client is pinned, or while the probe is wanted or
    /// on its way (the session is woken to send it). True: nothing to keep.
    /// </summary>
    private bool KeepsServerForState()
    {
        if (_touched == SessionEffects.None)
        {
            return _pinned != PinKinds.None;
        }

        if (!_probeWanted)
        {
            _probeWanted = true;
            _probeWake = true; // the session's loop is woken and sends it (WriteProbeIfWanted)
        }

        return true;
    }

    /// <summary>
    /// The session's loop was woken: sends the probe if one is wanted. Returns the backend to flush (then
    /// <see cref="ClientFlushed"/>), or null.
    /// </summary>
    public BackendConnection? WriteProbeIfWanted()
    {
        lock (this)
        {
            BackendConnection? backend = _backend;
            if (!WriteProbeLocked())
            {
                return null;
            }

            UpdateBusyLocked();
            return backend;
        }
    }

    /// <summary>Writes the probe to the backend when one is wanted and the client's side is at a boundary.</summary>
    private bool WriteProbeLocked()
    {
        if (!_probeWanted || _backend is not { } backend || _clientRemaining != 0 || _extendedUnsynced || _discardUntilSync)
        {
            return false;
        }

        _probeWanted = false;
        _touched = SessionEffects.None;
        _probeRowSeen = false;
        _probeRow = PinKinds.None;
        backend.Output.Write(_pool.PinProbeQuery);
        _queue.Enqueue(new Expectation(Expect.Query, Swallow: true, Quiet: true, Probe: true));
        _clientFlushPending = true;
        return true;
    }

    /// <summary>The probe's row (the pump, under the lock).</summary>
    private void ReadProbeRow(ReadOnlySpan<byte> body) => _probeRowSeen = PinProbe.TryRead(body, out _probeRow);

    /// <summary>
    /// The probe's ReadyForQuery: what it found becomes the pin. Inside a transaction the client began meanwhile, the
    /// answer is not final: that transaction's end asks again. A probe that failed leaves the server to
    /// server_reset_query, as before pinning (the statements that made it probe marked the server for reset).
    /// </summary>
    private void ApplyProbe(TransactionStatus status)
    {
        if (_queue.Count == 0)
        {
            _transactionSince = 0; // the probe is no transaction of the client's
        }

        if (status != TransactionStatus.Idle)
        {
            _touched |= SessionEffects.Unknown;
            if (_probeRowSeen)
            {
                SetPinnedLocked(_pinned | _probeRow);
            }

            return;
        }

        SetPinnedLocked(_probeRowSeen ? _probeRow : PinKinds.None);
    }

    private void SetPinnedLocked(PinKinds to)
    {
        PinKinds from = _pinned;
        if (to != PinKinds.None && !_pinCounted)
        {
            if (!_pool.TryCountPin())
            {
                // State no statement announced (a SQL PREPARE, SET ROLE, a DO block) at the limit: not kept, so pins
                // never take the pool's last servers. The server is reset before anyone else gets it, as before pinning.
                LogPinRefused(_pool.Logger, Name, PinKindNames.Describe(to), _pool.MaxPinnedClients);
                if (_backend is { } backend)
                {
                    backend.Session.NeedsReset = true;
                }

                to = PinKinds.None;
            }
            else
            {
                _pinCounted = true;
            }
        }
        else if (to == PinKinds.None && _pinCounted)
        {
            _pool.UncountPin();
            _pinCounted = false;
        }

        if (from == to)
        {
            return;
        }

        _pinned = to;
        long now = _pool.Time.GetTimestamp();
        if (from == PinKinds.None)
        {
            Volatile.Write(ref _pinnedSince, now);
        }
        else if (to == PinKinds.None)
        {
            _pool.Stats.Unpinned(now - _pinnedSince);
            Volatile.Write(ref _pinnedSince, 0);
        }

        _pool.Stats.Pinned(to & ~from);
        if (!_pool.Logger.IsEnabled(LogLevel.Debug))
        {
            return; // the client's name is made only for a line that is written
        }

        if (to == PinKinds.None)
        {
            LogUnpinned(_pool.Logger, Name, PinKindNames.Describe(from));
        }
        else
        {
            LogPinned(_pool.Logger, Name, _backend?.Id ?? 0, PinKindNames.Describe(to));
        }
    }

    /// <summary>The client is gone: its pin (and its place under the limit) goes with it.</summary>
    private void ReleasePinLocked()
    {
        SetPinnedLocked(PinKinds.None);
        _touched = SessionEffects.None;
        _probeWanted = false;
    }

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.ClientPinned, Level = LogLevel.Debug,
        Message = "Client {ConnectionId} pinned to backend {BackendId} for session state: {Kinds}")]
    private static partial void LogPinned(ILogger logger, string? connectionId, long backendId, string kinds);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.ClientPinned, Level = LogLevel.Warning,
        Message = "Client {ConnectionId} left session state ({Kinds}) that is not kept: max_pinned_clients_per_pool ({Limit}) clients of its pool are pinned already; its server is reset before reuse")]
    private static partial void LogPinRefused(ILogger logger, string? connectionId, string kinds, int limit);

    [LoggerMessage(EventId = Diagnostics.ProxyEventIds.ClientPinned, Level = LogLevel.Debug,
        Message = "Client {ConnectionId} unpinned: no session state left (was {Kinds}); its server can go back to the pool")]
    private static partial void LogUnpinned(ILogger logger, string? connectionId, string kinds);
}
