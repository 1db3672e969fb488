using PgProxy.Protocol.Auth;

namespace PgProxy.Core.Backend;

/// <summary>
/// What the proxy may answer when a backend asks for a password. Any of them may be missing; the connector
/// reports exactly which one the server wanted and was not available.
/// </summary>
public sealed class BackendCredentials
{
    /// <summary>The backend user.</summary>
    public required string User { get; init; }

    /// <summary>A plaintext password (works for every method).</summary>
    public string? Password { get; init; }

    /// <summary>"md5..." stored hash (md5 method only).</summary>
    public string? Md5Hash { get; init; }

    /// <summary>The user's stored SCRAM verifier, for passthrough together with <see cref="ScramClientKey"/>.</summary>
    public ScramVerifier? ScramVerifier { get; init; }

    /// <summary>Returns the ClientKey captured at the latest SCRAM client login of this user, if any.</summary>
    public Func<byte[]?>? ScramClientKey { get; init; }
}
