namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>One PostgreSQL for all integration test classes.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    /// <summary>The collection name.</summary>
    public const string Name = "postgres";
}
