global using Npgsql;
global using PgProxy.IntegrationTests.Infrastructure;
global using PgProxy.Testing;

[assembly: CollectionBehavior(DisableTestParallelization = true)]
