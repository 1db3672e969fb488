using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Relay;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;

namespace PgProxy.Core.Backend;

/// <summary>
/// The backend's pump: after login, the only reader of the backend's socket, for the backend's whole life. Attached to
/// a client's relay, it forwards replies and ends the link at the boundary the relay names; between links it parks on
/// the socket, and anything the server sends then is its goodbye (a FATAL on terminate or shutdown, or the close),
/// so a server that dies while idle leaves the pool at once. The proxy's own queries on the backend (parameter sync,
/// the pre-ping, ROLLBACK, server_reset_query) run here too, as jobs or after a link ends, so no other code ever reads
/// the socket and every wake-up of the read (<see cref="WakePump"/>) is consumed by the one loop it was meant for: a job,
/// a client's request to end its link, or a reply the relay owes the client.
/// </summary>
public sealed partial class BackendConnection : IValueTaskSource<ErrorResponse?>
{
    /// <summary>Marks a backend that died while no relay was attached: an attach then fails.</summary>
    private static readonly MessageRelay s_dead = MessageRelay.Sentinel();

    private MessageRelay? _relay;
    private Task? _pump;
    private int _reading;
    private int _jobPending;
    private List<string>? _jobQueries;
    private TimeSpan _jobTimeout;
    private ManualResetValueTaskSourceCore<ErrorResponse?> _job;

    /// <summary>Starts the pump once the backend has logged in.</summary>
    internal void StartPump() => _pump = Task.Run(PumpAsync);

    /// <summary>
    /// Attaches <paramref name="relay"/>: the pump forwards what the server sends to it. False when the backend died
    /// meanwhile (its pump saw the server go before any relay was attached).
    /// </summary>
    internal bool TryAttach(MessageRelay relay) => Interlocked.CompareExchange(ref _relay, relay, null) is null && !IsClosed;

    /// <summary>The link ended (the pump's own step after the relay detached; for benchmarks too).</summary>
    internal void ReleaseRelay() => Volatile.Write(ref _relay, null);

    /// <summary>Wakes the pump: a job, a requested detach, or a reply the relay owes the client with nothing from the server to carry it.</summary>
    internal void WakePump() => Input.CancelPendingRead();

    /// <summary>
    /// Runs the proxy's own simple queries on the backend (parameter sync, the pre-ping) through its pump, for whoever
    /// holds the backend and before it attaches a relay; the replies are not forwarded. Returns the first error the
    /// server sent (a transport failure or a timeout is one too), or null.
    /// </summary>
    public ValueTask<ErrorResponse?> RunControlAsync(List<string> queries, TimeSpan timeout)
    {
        _jobQueries = queries;
        _jobTimeout = timeout;
        return PostJob();
    }

    private ValueTask<ErrorResponse?> PostJob()
    {
        _job.Reset();
        var outcome = new ValueTask<ErrorResponse?>(this, _job.Version);
        if (IsClosed || _pump is null || _pump.IsCompleted)
        {
            _job.SetResult(ErrorResponse.Fatal(SqlState.ConnectionFailure, "server connection is closed"));
            return outcome;
        }

        Volatile.Write(ref _jobPending, 1);
        WakePump();
        return outcome;
    }

    private async Task PumpAsync()
    {
        MessageRelay? relay = null;
        try
        {
            while (true)
            {
                if (Interlocked.Exchange(ref _jobPending, 0) != 0)
                {
                    await RunJobAsync().ConfigureAwait(false);
                }

                // Dekker with CloseAsync: it sets _closed then looks at _reading; here the other way round.
                Interlocked.Exchange(ref _reading, 1);
                if (IsClosed)
                {
                    Interlocked.Exchange(ref _reading, 0);
                    return;
                }

                ReadResult read;
                try
                {
                    read = await Input.ReadAsync().ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Exchange(ref _reading, 0);
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                relay = Volatile.Read(ref _relay);
                if (relay is null)
                {
                    if (read.IsCanceled || (buffer.IsEmpty && !read.IsCompleted))
                    {
                        Input.AdvanceTo(buffer.Start);
                        continue; // a job, or nothing
                    }

                    // Bytes (or the close) while no client is attached: the server is saying goodbye. Unless a relay
                    // attached just now, in which case they are its to see.
                    relay = Interlocked.CompareExchange(ref _relay, s_dead, null);
                    if (relay is null)
                    {
                        Input.AdvanceTo(buffer.End);
                        await Pool.OnIdleBackendLostAsync(this).ConfigureAwait(false);
                        return;
                    }
                }

                if (relay == s_dead)
                {
                    Input.AdvanceTo(buffer.End);
                    return;
                }

                RelayStop stop = relay.ForwardFromBackend(this, ref buffer);
                if (stop is RelayStop.Released or RelayStop.TransactionInStatementMode or RelayStop.DetachRequested)
                {
                    Input.AdvanceTo(buffer.Start); // what follows (nothing, normally) is the next link's
                }
                else
                {
                    Input.AdvanceTo(buffer.Start, read.Buffer.End);
                }

                try
                {
                    await relay.ClientOutput.FlushAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
                {
                    // The client is gone: its session notices on its own read and detaches this backend.
                }

                if (stop == RelayStop.None && read.IsCompleted)
                {
                    stop = RelayStop.BackendClosed;
                }

                switch (stop)
                {
                    case RelayStop.None:
                        continue;
                    case RelayStop.Released:
                        ReleaseRelay();
                        relay.CompleteDetach(this);
                        await ReleaseAfterTransactionAsync(Session.NeedsReset).ConfigureAwait(false);
                        continue;
                    case RelayStop.TransactionInStatementMode:
                        Volatile.Write(ref _relay, null);
                        await RefuseTransactionAsync(relay).ConfigureAwait(false);
                        continue;
                    case RelayStop.DetachRequested:
                        // The client left (or a timeout ended it): the client's output is its session's again, and the
                        // cleanup is the backend's own.
                        Volatile.Write(ref _relay, null);
                        relay.CompleteDetach();
                        await ReleaseAfterClientAsync(relay.DetachedAtBoundary, relay.SawFatal).ConfigureAwait(false);
                        continue;
                    case RelayStop.Detached:
                        Volatile.Write(ref _relay, null);
                        continue;
                    default:
                        await LostWhileAttachedAsync(relay).ConfigureAwait(false);
                        return;
                }
            }
        }
        catch (Exception ex)
        {
            if (!TransportErrors.IsTransportGone(ex))
            {
                Pool.ReportPumpFailure(this, ex); // a bug: logged at Error; the backend is given up like a lost one
            }

            relay = Volatile.Read(ref _relay);
            if (relay is not null && relay != s_dead)
            {
                await LostWhileAttachedAsync(relay).ConfigureAwait(false);
            }
            else
            {
                await Pool.OnIdleBackendLostAsync(this).ConfigureAwait(false);
            }
        }
    }

    private async Task RunJobAsync()
    {
        ErrorResponse? result;
        try
        {
            result = await BackendControl.RunAsync(this, _jobQueries!, _jobTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            result = ErrorResponse.Fatal(SqlState.ConnectionFailure, "server connection lost: " + ex.Message);
        }

        _jobQueries = null;
        _job.SetResult(result);
    }

    /// <summary>A transaction-mode link ended: the backend goes back, after server_reset_query when a client left session state.</summary>
    private async Task ReleaseAfterTransactionAsync(bool reset)
    {
        if (!reset)
        {
            await Pool.ReleaseAsync(this, reusable: true).ConfigureAwait(false);
            return;
        }

        await ResetAndReleaseAsync(rollback: false, reset: true).ConfigureAwait(false);
    }

    /// <summary>
    /// The client left (or was ended) while linked. A quiescent backend outside a transaction goes back (after
    /// server_reset_query in session mode, or when the client left session state); one inside a transaction gets
    /// ROLLBACK first; anything mid-statement or mid-COPY, or after a FATAL, is closed, so the next client never
    /// inherits a dirty server.
    /// </summary>
    private async Task ReleaseAfterClientAsync(bool quiescent, bool sawFatal)
    {
        if (!quiescent || sawFatal)
        {
            await Pool.ReleaseAsync(this, reusable: false, DisconnectReason.DirtyOnRelease).ConfigureAwait(false);
            return;
        }

        bool reset = Pool.Settings.Mode == Configuration.PoolMode.Session || Session.NeedsReset;
        bool rollback = TransactionStatus != TransactionStatus.Idle;
        if (!reset && !rollback)
        {
            await Pool.ReleaseAsync(this, reusable: true).ConfigureAwait(false);
            return;
        }

        await ResetAndReleaseAsync(rollback, reset).ConfigureAwait(false);
    }

    /// <summary>ROLLBACK if asked, then server_reset_query (and DEALLOCATE ALL, so the statement set is known empty).</summary>
    private async Task ResetAndReleaseAsync(bool rollback, bool reset)
    {
        var queries = new List<string>(3);
        if (rollback)
        {
            queries.Add("ROLLBACK");
        }

        string resetQuery = Pool.Settings.Proxy.ServerResetQuery;
        if (reset && !string.IsNullOrWhiteSpace(resetQuery))
        {
            queries.Add(resetQuery);
        }

        if (reset && Session.Statements.Count > 0)
        {
            queries.Add("DEALLOCATE ALL");
        }

        if (queries.Count == 0)
        {
            await Pool.ReleaseAsync(this, reusable: true).ConfigureAwait(false);
            return;
        }

        Pool.MarkUsed(this);
        bool ok = await BackendControl.RunAsync(this, queries, Pool.Settings.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null;
        Session.SyncedSettings = null;
        if (ok && reset)
        {
            Session.Cleaned();
        }

        await Pool.ReleaseAsync(this, ok && TransactionStatus == TransactionStatus.Idle, DisconnectReason.ResetFailed).ConfigureAwait(false);
    }

    /// <summary>Statement mode: a statement opened a transaction. It is rolled back and the client told, as PgBouncer does.</summary>
    private async Task RefuseTransactionAsync(MessageRelay relay)
    {
        bool ok = await BackendControl.RunAsync(this, ["ROLLBACK"], Pool.Settings.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null;
        var b = new Protocol.Framing.PgMessageBuilder();
        ErrorResponse.Error(SqlState.FeatureNotSupported, "transaction blocks not allowed in statement pooling mode",
            hint: "the transaction was rolled back; use a transaction- or session-mode pool for multi-statement transactions").Write(b);
        BackendMessages.ReadyForQuery(b, TransactionStatus.Idle);
        Pool.Stats.Error(SqlState.FeatureNotSupported);
        b.FlushTo(relay.ClientOutput);
        try
        {
            await relay.ClientOutput.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (TransportErrors.IsTransportGone(ex))
        {
            // The client is gone.
        }

        relay.CompleteDetach(this);
        await Pool.ReleaseAsync(this, ok && TransactionStatus == TransactionStatus.Idle, DisconnectReason.ResetFailed).ConfigureAwait(false);
    }

    /// <summary>The server went away while a client was linked: that client is told and ended; the backend is closed.</summary>
    private async Task LostWhileAttachedAsync(MessageRelay relay)
    {
        Volatile.Write(ref _relay, s_dead);
        relay.DetachLost(this);
        await relay.OnBackendLostAsync().ConfigureAwait(false);
        relay.CompleteDetach();
        await Pool.ReleaseAsync(this, reusable: false, DisconnectReason.BackendClosed).ConfigureAwait(false);
    }

    ErrorResponse? IValueTaskSource<ErrorResponse?>.GetResult(short token) => _job.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ErrorResponse?>.GetStatus(short token) => _job.GetStatus(token);

    void IValueTaskSource<ErrorResponse?>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _job.OnCompleted(continuation, state, token, flags);
}
