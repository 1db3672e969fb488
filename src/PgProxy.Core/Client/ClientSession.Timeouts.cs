using PgProxy.Core.Backend;
using PgProxy.Core.Configuration;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Client;

/// <summary>client_idle_timeout, idle_transaction_timeout and query_timeout, checked by the watchdog's clock.</summary>
public sealed partial class ClientSession
{
    /// <summary>
    /// Watchdog tick: client_idle_timeout (no traffic, outside a transaction), idle_transaction_timeout (no traffic
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
        catch (Exception ex) when (ex is OperationCanceledException || TransportErrors.IsTransportGone(ex))
        {
            // The backend is closed right after anyway.
        }
    }
}
