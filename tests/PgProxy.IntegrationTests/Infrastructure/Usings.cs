global using Npgsql;
global using PgProxy.IntegrationTests.Infrastructure;
global using PgProxy.Testing;

// One PostgreSQL for the whole run: test classes run one after another (xunit.runner.json: parallelizeTestCollections).
