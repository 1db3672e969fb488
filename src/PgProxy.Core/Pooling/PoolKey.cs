namespace PgProxy.Core.Pooling;

/// <summary>A pool is per client-visible database and client user.</summary>
public readonly record struct PoolKey(string Database, string User)
{
    /// <inheritdoc />
    public override string ToString() => $"{Database}/{User}";
}
