using PgProxy.Core.Prepared;

namespace PgProxy.Core.Backend;

/// <summary>
/// What clients left on a backend's session that the next client must not see, or that the proxy must know to
/// reuse it: the one "dirty backend" record. Touched only by whoever holds the backend (its client's relay, its pump).
/// </summary>
public sealed class BackendSessionState
{
    /// <summary>A client ran something that may leave session state (SET of an unreported setting, temp tables, ...): server_reset_query runs before the next client.</summary>
    public bool NeedsReset { get; set; }

    /// <summary>Values of non-reported settings the proxy applied on this backend since its last reset.</summary>
    public Dictionary<string, string> AppliedSettings { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The <see cref="Client.ClientSettings.Key"/> this backend was last brought in line with; null once its settings
    /// may have changed (a ParameterStatus, a reset). A client whose key is equal skips parameter sync: the common
    /// case costs one reference comparison.
    /// </summary>
    public string? SyncedSettings { get; set; }

    /// <summary>Protocol-level statements prepared on this backend by the proxy (transaction mode).</summary>
    public BackendStatements Statements { get; } = new();

    /// <summary>server_reset_query (and DEALLOCATE ALL) ran: nothing of earlier clients is left.</summary>
    public void Cleaned()
    {
        NeedsReset = false;
        AppliedSettings.Clear();
        Statements.Clear();
        SyncedSettings = null;
    }
}
