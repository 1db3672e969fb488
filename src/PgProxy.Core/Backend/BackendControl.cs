using PgProxy.Core.Infrastructure;
using PgProxy.Protocol;
using PgProxy.Protocol.Backend;
using PgProxy.Protocol.Framing;
using PgProxy.Protocol.Frontend;

namespace PgProxy.Core.Backend;

/// <summary>
/// The proxy's own simple queries on a backend (parameter sync, pre-ping, ROLLBACK, server_reset_query): written, then
/// read up to their ReadyForQuery messages, none forwarded. Runs on the backend's pump only, the socket's one reader.
/// </summary>
internal static class BackendControl
{
    /// <summary>Cap on a reply the proxy reads whole here.</summary>
    private const int MaxReplyBytes = 64 * 1024;

    /// <summary>
    /// Runs <paramref name="queries"/> within <paramref name="timeout"/> (0: none). Returns the first error the server
    /// sent, or null; a transport failure or the timeout is reported as an error too.
    /// </summary>
    public static async Task<ErrorResponse?> RunAsync(BackendConnection backend, List<string> queries, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout > TimeSpan.Zero ? timeout : Timeout.InfiniteTimeSpan, backend.Pool.Time);
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
                PgMessage? m = await PgMessageIO.ReadAsync(backend.Input, MaxReplyBytes, cts.Token).ConfigureAwait(false);
                if (m is null)
                {
                    return first ?? ErrorResponse.Fatal(SqlState.ConnectionFailure, "server closed the connection");
                }

                switch (m.Value.Type)
                {
                    case BackendCode.ReadyForQuery:
                        backend.TransactionStatus = m.Value.Body.Length > 0 ? (TransactionStatus)m.Value.Body[0] : TransactionStatus.Idle;
                        remaining--;
                        break;
                    case BackendCode.ParameterStatus:
                        backend.RecordParameterStatus(new System.Buffers.ReadOnlySequence<byte>(m.Value.Body));
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
        catch (Exception ex) when (ex is OperationCanceledException or ProxyException || TransportErrors.IsTransportGone(ex))
        {
            return first ?? ErrorResponse.Fatal(SqlState.ConnectionFailure, "server did not answer: " + ex.Message);
        }

        return first;
    }
}
