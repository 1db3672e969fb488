using PgProxy.Core.Backend;
using PgProxy.Core.Diagnostics;
using PgProxy.Core.Infrastructure;
using PgProxy.Core.Pooling;
using PgProxy.Core.Relay;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Client;

/// <summary>Linking a backend to the client's relay, and ending the link when the client goes.</summary>
public sealed partial class ClientSession
{
    /// <summary>
    /// Takes a backend (pre-pinged if it sat idle past server_check_delay), brings its settings in line with the
    /// client's (one round trip, skipped when they match), tells the client what the server reports differently, and
    /// attaches it to the relay. The common case (an idle backend, already in line, the last link done) completes
    /// synchronously, with no state machine.
    /// </summary>
    private ValueTask LinkAsync(MessageRelay relay, Pool pool)
    {
        ValueTask detached = relay.WhenDetachedAsync(); // the last link's pump is done with the client's output
        if (!detached.IsCompletedSuccessfully || relay.BackendLost)
        {
            return LinkSlowAsync(relay, pool, detached, null);
        }

        // The connection's ConnectionClosed token (a cancellation source, kept for the client's life) is made only
        // when the client has to wait for a backend: most links find one idle.
        if (!pool.TryAcquireIdle(out BackendConnection? backend))
        {
            ValueTask<BackendConnection> acquire = pool.AcquireSlowAsync(_connection.ConnectionClosed);
            relay.BeginLink();
            return LinkSlowAsync(relay, pool, default, acquire);
        }

        if (NeedsCheck(pool, backend) || !ReferenceEquals(backend.Session.SyncedSettings, relay.View!.Key) || HasPendingOutput)
        {
            relay.BeginLink();
            return LinkSlowAsync(relay, pool, default, new ValueTask<BackendConnection>(backend));
        }

        relay.Attach(backend);
        if (!backend.TryAttach(relay))
        {
            relay.DetachLost(backend);
            relay.CompleteDetach();
            relay.BeginLink();
            return LinkSlowAsync(relay, pool, default, null, lost: backend);
        }

        LogLinked(Logger, _connection.ConnectionId, backend.Id, backend.ProcessId);
        return default;
    }

    /// <summary>A backend taken for this client must run server_check_query first (it sat idle past server_check_delay).</summary>
    private static bool NeedsCheck(Pool pool, BackendConnection backend)
    {
        PoolSettings s = pool.Settings;
        return !string.IsNullOrEmpty(s.Proxy.ServerCheckQuery) && backend.LastUsedAt != backend.CreatedAt &&
               pool.Time.GetElapsedTime(backend.LastUsedAt) >= s.Proxy.ServerCheckDelay;
    }

    /// <param name="relay">The client's relay.</param>
    /// <param name="pool">Its pool.</param>
    /// <param name="detached">The wait for the last link to finish with the client (when not done yet).</param>
    /// <param name="taken">The backend being taken already (acquired or pending), if any.</param>
    /// <param name="lost">A backend taken that turned out dead: given back first.</param>
    private async ValueTask LinkSlowAsync(MessageRelay relay, Pool pool, ValueTask detached, ValueTask<BackendConnection>? taken,
        BackendConnection? lost = null)
    {
        if (taken is null && lost is null)
        {
            await detached.ConfigureAwait(false);
            if (relay.BackendLost)
            {
                throw new OperationCanceledException("the server of the last link is gone"); // its FATAL is sent
            }

            relay.BeginLink();
        }

        try
        {
            if (lost is not null)
            {
                await pool.ReleaseAsync(lost, reusable: false, DisconnectReason.BackendClosed).ConfigureAwait(false);
            }

            while (true)
            {
                BackendConnection backend;
                if (taken is { } first)
                {
                    taken = null;
                    backend = await first.ConfigureAwait(false);
                    if (NeedsCheck(pool, backend) && !await CheckAsync(pool, backend).ConfigureAwait(false))
                    {
                        continue;
                    }
                }
                else
                {
                    backend = await AcquireCheckedAsync(pool).ConfigureAwait(false);
                }

                BackendSessionState session = backend.Session;
                ClientSettings view = relay.View!;
                if (!ReferenceEquals(session.SyncedSettings, view.Key) && !string.Equals(session.SyncedSettings, view.Key, StringComparison.Ordinal))
                {
                    if (!await SyncParametersAsync(backend, view, pool.Settings.Proxy.ServerConnectTimeout).ConfigureAwait(false))
                    {
                        continue; // the server went away: another one
                    }

                    // Whatever the server reports differently from what the client was told (canonical spellings such
                    // as DateStyle "ISO, MDY") reaches the client before its first reply.
                    foreach (KeyValuePair<string, string> p in backend.Parameters)
                    {
                        if (!view.Told.TryGetValue(p.Key, out string? value) || value != p.Value)
                        {
                            BackendMessages.ParameterStatus(Builder, p.Key, p.Value);
                        }
                    }

                    view = pool.Intern(view.With(backend.Parameters));
                    relay.View = view;
                    session.SyncedSettings = view.Key;
                }

                if (HasPendingOutput)
                {
                    await SendBuilderAsync(_connection.ConnectionClosed).ConfigureAwait(false);
                }

                relay.Attach(backend);
                if (!backend.TryAttach(relay))
                {
                    // Its server went away a moment ago (the pump saw it before anyone was linked).
                    relay.DetachLost(backend);
                    relay.CompleteDetach();
                    relay.BeginLink();
                    await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.BackendClosed).ConfigureAwait(false);
                    continue;
                }

                LogLinked(Logger, _connection.ConnectionId, backend.Id, backend.ProcessId);
                return;
            }
        }
        catch
        {
            relay.CancelLink();
            throw;
        }
    }

    /// <summary>
    /// Pre-ping (SQLAlchemy's pool_pre_ping): a backend idle longer than server_check_delay runs server_check_query
    /// before the client gets it. One that fails is closed and another taken, so the client never sees it; the loop
    /// ends because each failing idle backend is closed and a newly opened one is not checked.
    /// </summary>
    private async Task<BackendConnection> AcquireCheckedAsync(Pool pool)
    {
        while (true)
        {
            BackendConnection backend = await pool.AcquireAsync(_connection.ConnectionClosed).ConfigureAwait(false);
            if (!NeedsCheck(pool, backend) || await CheckAsync(pool, backend).ConfigureAwait(false))
            {
                return backend;
            }
        }
    }

    /// <summary>Runs server_check_query; false when it failed (the backend is then closed).</summary>
    private static async Task<bool> CheckAsync(Pool pool, BackendConnection backend)
    {
        PoolSettings s = pool.Settings;
        pool.MarkTesting(backend);
        if (await backend.RunControlAsync([s.Proxy.ServerCheckQuery], s.Proxy.ServerConnectTimeout).ConfigureAwait(false) is null &&
            backend.TransactionStatus == Protocol.TransactionStatus.Idle)
        {
            pool.MarkActive(backend);
            return true;
        }

        await pool.ReleaseAsync(backend, reusable: false, DisconnectReason.CheckFailed).ConfigureAwait(false);
        return false;
    }

    /// <summary>
    /// Applies the client's settings on its backend (one round trip; replies not forwarded). False when the backend
    /// failed (it is then closed); a setting the server refuses is the client's error (for example 42704).
    /// </summary>
    private static async Task<bool> SyncParametersAsync(BackendConnection backend, ClientSettings view, TimeSpan timeout)
    {
        BackendSessionState session = backend.Session;
        string? sql = SessionParameters.BuildSync(view.Desired(), backend.Parameters, session.AppliedSettings);
        if (sql is not null)
        {
            ErrorResponse? error = await backend.RunControlAsync([sql], timeout).ConfigureAwait(false);
            if (error is not null)
            {
                bool serverGone = error.IsFatal || backend.IsClosed;
                await backend.Pool.ReleaseAsync(backend, reusable: !serverGone && backend.TransactionStatus == Protocol.TransactionStatus.Idle,
                    DisconnectReason.ParameterSyncFailed).ConfigureAwait(false);
                if (serverGone)
                {
                    return false;
                }

                throw new ProxyException(error.SqlState, error.Message, error.Detail);
            }
        }

        var wanted = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (KeyValuePair<string, string> s in view.Desired())
        {
            wanted.Add(s.Key);
            if (!backend.Parameters.ContainsKey(s.Key))
            {
                session.AppliedSettings[s.Key] = s.Value;
            }
        }

        foreach (string name in session.AppliedSettings.Keys.Where(n => !wanted.Contains(n)).ToList())
        {
            session.AppliedSettings.Remove(name);
        }

        return true;
    }

    /// <summary>
    /// The client is leaving (or being ended): the attached backend's pump detaches it wherever the link stands, and
    /// rolls back, resets or closes it. Returns once the pump no longer writes to the client, so the session may.
    /// </summary>
    private async Task EndLinkAsync()
    {
        if (Volatile.Read(ref _relay) is not { } relay)
        {
            return;
        }

        if (relay.RequestDetach() is { } backend)
        {
            if (Volatile.Read(ref _abort) is not null)
            {
                relay.ClientOutput.CancelPendingFlush(); // a pump stuck on a client that does not read lets go
            }

            backend.WakePump();
            LogUnlinked(Logger, _connection.ConnectionId, backend.Id, RelayStop.DetachRequested);
        }

        await relay.WhenDetachedAsync().ConfigureAwait(false);
    }
}
