using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Client;

/// <summary>
/// client_idle_timeout, idle_transaction_timeout and query_timeout: each session is one entry of the process's
/// <see cref="DeadlineQueue"/>, due at the first timeout that could fire. Lazily: a client's messages only move the
/// entry earlier (never later), so ordinary traffic costs a comparison; when it fires, the session checks its real
/// clocks and schedules the next deadline. Idle clients with no timeout configured cost nothing.
/// </summary>
public sealed partial class ClientSession
{
    private static readonly TimeSpan BackendPendingRecheck = TimeSpan.FromSeconds(1);

    /// <summary>True when any client timeout is configured (the session then keeps a deadline).</summary>
    private bool HasTimeouts
    {
        get
        {
            ProxySection p = Config.Proxy;
            return p.ClientIdleTimeout > TimeSpan.Zero || p.IdleTransactionTimeout > TimeSpan.Zero || p.QueryTimeout > TimeSpan.Zero ||
                   p.PinTimeout > TimeSpan.Zero;
        }
    }

    /// <summary>
    /// After client traffic: the entry is due by the earliest timeout this activity could lead to (the idle clock
    /// restarts now; a request may now be outstanding). Only ever moves the deadline earlier.
    /// </summary>
    private void ArmTimeouts(MessageRelay relay)
    {
        ProxySection p = Config.Proxy;
        long last = relay.LastClientActivity;
        long due = long.MaxValue;
        if (p.ClientIdleTimeout > TimeSpan.Zero)
        {
            due = last + Ticks(p.ClientIdleTimeout);
        }

        if (p.IdleTransactionTimeout > TimeSpan.Zero)
        {
            due = Math.Min(due, last + Ticks(p.IdleTransactionTimeout));
        }

        if (p.QueryTimeout > TimeSpan.Zero && relay.BusySince is var busy and not 0)
        {
            due = Math.Min(due, busy + Ticks(p.QueryTimeout));
        }

        if (p.PinTimeout > TimeSpan.Zero)
        {
            // A pin starts after this activity (at its transaction's end), so this is never later than the pin's own deadline.
            due = Math.Min(due, last + Ticks(p.PinTimeout));
        }

        _services.Deadlines.ScheduleBy(this, due);
    }

    /// <inheritdoc />
    protected internal override void OnDue(long now)
    {
        if (!Volatile.Read(ref _loggedIn))
        {
            // Scheduled by the login (client_login_timeout) and not canceled in time by its end.
            if (!_ended)
            {
                LoginTimedOut();
            }

            return;
        }

        CheckTimeouts();
        if (Volatile.Read(ref _abort) is not null || Volatile.Read(ref _relay) is not { } relay || _ended)
        {
            return;
        }

        long due = ExactDue(relay, out bool backendPending);
        if (due != long.MaxValue)
        {
            // Not yet due (activity moved it): its real time, never sooner than a moment from now.
            _services.Deadlines.Schedule(this, Math.Max(due, now + Ticks(TimeSpan.FromMilliseconds(100))));
        }
        else if (backendPending)
        {
            // A request or a wait in progress with no timeout of its own: what applies next depends on the server,
            // which tells no one, so look again in a while (only sessions busy past their first deadline do this).
            _services.Deadlines.Schedule(this, now + Ticks(BackendPendingRecheck));
        }

        // Otherwise nothing can fire until the client acts, and its next message arms the deadline again.
    }

    /// <summary>
    /// The deadline that applies in the session's state now (the conditions of <see cref="CheckTimeouts"/>);
    /// <see cref="long.MaxValue"/> when none does. <paramref name="backendPending"/>: none applies only until the
    /// server answers or the pool hands a backend over.
    /// </summary>
    private long ExactDue(MessageRelay relay, out bool backendPending)
    {
        long due = TimeoutDue(relay, out backendPending);
        TimeSpan pin = Config.Proxy.PinTimeout;
        return pin > TimeSpan.Zero && relay.PinnedSince is var since and not 0 ? Math.Min(due, since + Ticks(pin)) : due;
    }

    /// <summary><see cref="ExactDue"/> of the idle, transaction and query timeouts.</summary>
    private long TimeoutDue(MessageRelay relay, out bool backendPending)
    {
        ProxySection p = Config.Proxy;
        backendPending = false;
        long last = relay.LastClientActivity;
        if (relay.Backend is not { } backend)
        {
            if (relay.State == ClientState.Idle)
            {
                return p.ClientIdleTimeout > TimeSpan.Zero ? last + Ticks(p.ClientIdleTimeout) : long.MaxValue;
            }

            backendPending = true;
            return long.MaxValue;
        }

        if (relay.BusySince is var busy and not 0)
        {
            backendPending = true;
            return p.QueryTimeout > TimeSpan.Zero ? busy + Ticks(p.QueryTimeout) : long.MaxValue;
        }

        TimeSpan limit = backend.TransactionStatus != TransactionStatus.Idle ? p.IdleTransactionTimeout : p.ClientIdleTimeout;
        return limit > TimeSpan.Zero ? last + Ticks(limit) : long.MaxValue;
    }

    private long Ticks(TimeSpan span) => _services.Time.Ticks(span);

    /// <summary>
    /// Checks the clocks: client_idle_timeout (no traffic, outside a transaction), idle_transaction_timeout (no traffic
    /// inside one), query_timeout (a request outstanding too long: canceled on the server first). The session is
    /// woken from outside; its own loop then ends the link, tells the client, and ends.
    /// </summary>
    internal void CheckTimeouts()
    {
        if (Volatile.Read(ref _abort) is not null || Volatile.Read(ref _relay) is not { } relay)
        {
            return;
        }

        ProxySection p = Config.Proxy;
        TimeProvider time = _services.Time;
        BackendConnection? backend = relay.Backend;
        if (backend is null)
        {
            if (relay.State == ClientState.Idle && p.ClientIdleTimeout > TimeSpan.Zero && time.GetElapsedTime(relay.LastClientActivity) > p.ClientIdleTimeout)
            {
                Abort(ErrorResponse.Fatal(SqlState.IdleSessionTimeout,
                    $"terminating connection due to idle-session timeout (client_idle_timeout {DurationText.Format(p.ClientIdleTimeout)})"));
            }

            return;
        }

        long busy = relay.BusySince;
        if (busy == 0 && p.PinTimeout > TimeSpan.Zero && relay.PinnedSince is var pinned and not 0 && time.GetElapsedTime(pinned) > p.PinTimeout)
        {
            // Between statements only: a statement running is not cut short by this.
            Abort(ErrorResponse.Fatal(SqlState.ConfigurationLimitExceeded,
                $"terminating connection pinned to its server for longer than pin_timeout ({DurationText.Format(p.PinTimeout)})",
                detail: $"session state kept the server for this client: {PinKindNames.Describe(relay.Pinned)}",
                hint: "release session state (advisory locks, temp tables, WITH HOLD cursors, LISTEN, prepared statements) sooner, or use a session-mode pool"));
            return;
        }

        if (busy != 0)
        {
            if (p.QueryTimeout > TimeSpan.Zero && time.GetElapsedTime(busy) > p.QueryTimeout)
            {
                _ = CancelQuietlyAsync();
                Abort(ErrorResponse.Fatal(SqlState.QueryCanceled, $"canceling statement due to query_timeout ({DurationText.Format(p.QueryTimeout)})"));
            }

            return;
        }

        TimeSpan idle = time.GetElapsedTime(relay.LastClientActivity);
        if (backend.TransactionStatus != TransactionStatus.Idle)
        {
            if (p.IdleTransactionTimeout > TimeSpan.Zero && idle > p.IdleTransactionTimeout)
            {
                Abort(ErrorResponse.Fatal(SqlState.IdleInTransactionSessionTimeout,
                    $"terminating connection due to idle-in-transaction timeout (idle_transaction_timeout {DurationText.Format(p.IdleTransactionTimeout)})"));
            }
        }
        else if (p.ClientIdleTimeout > TimeSpan.Zero && idle > p.ClientIdleTimeout)
        {
            Abort(ErrorResponse.Fatal(SqlState.IdleSessionTimeout,
                $"terminating connection due to idle-session timeout (client_idle_timeout {DurationText.Format(p.ClientIdleTimeout)})"));
        }
    }

    /// <summary>What a client closed or refused by the shutdown is told (57P01: drivers reconnect, elsewhere).</summary>
    internal const string ShuttingDownMessage = "terminating connection because the pooler is shutting down";

    /// <summary>
    /// The shutdown's drain, or a reload that removed the client's database: a client outside a transaction, with
    /// nothing outstanding, is closed now with FATAL 57P01; one inside a transaction or waiting for a reply is left to
    /// finish (the caller asks again until it has).
    /// </summary>
    internal void CheckDrain()
    {
        bool removed = _pool is { Removed: true };
        if ((!_services.Draining && !removed) || Volatile.Read(ref _abort) is not null || Volatile.Read(ref _relay) is not { } relay || _ended)
        {
            return;
        }

        BackendConnection? backend = relay.Backend;
        bool between = backend is null
            ? relay.State == ClientState.Idle
            : relay.BusySince == 0 && backend.TransactionStatus == TransactionStatus.Idle;
        if (between)
        {
            Abort(ErrorResponse.Fatal(SqlState.AdminShutdown, _services.Draining ? ShuttingDownMessage
                : $"terminating connection because database \"{_database}\" was removed from the pooler's config"));
        }
    }

    /// <summary>Ends the session from outside: its loop, the client socket's one reader, is woken and acts on it.</summary>
    private void Abort(ErrorResponse error)
    {
        Volatile.Write(ref _abort, error);
        Input.CancelPendingRead();
    }

    private async Task CancelQuietlyAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await CancelAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or PgProxy.Core.Tls.ServerTlsException || TransportErrors.IsTransportGone(ex))
        {
            // The backend is closed right after anyway.
        }
    }
}
