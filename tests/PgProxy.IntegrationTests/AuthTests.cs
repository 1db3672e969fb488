namespace PgProxy.IntegrationTests;

[Collection(PostgresCollection.Name)]
public sealed class AuthTests(PostgresFixture pg)
{
    [Fact(Timeout = 60_000)]
    public async Task Scram_RightPassword_LogsIn_AndReachesServerAsTheUser()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", conn);
        Assert.Equal(PostgresFixture.Alice, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task Scram_WrongPassword_Fails28P01_WordedLikePostgres_AndSecretNotLogged()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(password: "wrong-password-xyz", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", ex.SqlState);
        Assert.Equal("FATAL", ex.Severity);
        Assert.Equal($"password authentication failed for user \"{PostgresFixture.Alice}\"", ex.MessageText);
        Assert.DoesNotContain("wrong-password-xyz", proxy.LogText, StringComparison.Ordinal);
        Assert.DoesNotContain(PostgresFixture.AlicePassword, proxy.LogText, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task UnknownUser_FailsLikeWrongPassword()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg);
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(user: "mallory", password: "x", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", ex.SqlState);
        Assert.Equal("password authentication failed for user \"mallory\"", ex.MessageText);
    }

    [Fact(Timeout = 60_000)]
    public async Task Md5_ClientAndServer_WithMd5HashInUserlist_Works()
    {
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "md5");
        await using NpgsqlConnection conn = await proxy.OpenAsync(PostgresFixture.Bob, PostgresFixture.BobPassword, ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", conn);
        Assert.Equal(PostgresFixture.Bob, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));

        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(PostgresFixture.Bob, "nope", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", ex.SqlState);
    }

    [Fact(Timeout = 60_000)]
    public async Task ScramVerifierInUserlist_ClientScram_ThenPassthroughToServer()
    {
        // The userlist holds only the verifier copied from pg_authid: the proxy never sees the password, yet logs
        // in to PostgreSQL with the ClientKey the client proved.
        string userlist = $"\"{PostgresFixture.Alice}\" \"{pg.AliceVerifier}\"\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "md5", userlist: userlist);
        await using NpgsqlConnection conn = await proxy.OpenAsync(ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", conn);
        Assert.Equal(PostgresFixture.Alice, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));

        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(password: "bad", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", ex.SqlState);
    }

    [Fact(Timeout = 60_000)]
    public async Task Trust_AcceptsAnyPassword_ServerLoginUsesDatabasePassword()
    {
        string databases = $"""
            [databases.{PostgresFixture.Database}]
            host = "{pg.Host}"
            port = {pg.Port}
            user = "{PostgresFixture.Alice}"
            password = "{PostgresFixture.AlicePassword}"
            """;
        await using TestProxy proxy = await TestProxy.StartAsync(pg, authType: "trust", databases: databases);
        await using NpgsqlConnection conn = await proxy.OpenAsync(user: "anyone", password: "whatever", ct: TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_user", conn);
        Assert.Equal(PostgresFixture.Alice, await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task ServerRejectsBackendPassword_ClientGetsServerError()
    {
        string userlist = $"\"{PostgresFixture.Alice}\" \"not-the-server-password\"\n";
        await using TestProxy proxy = await TestProxy.StartAsync(pg, userlist: userlist);
        // The client authenticates to the proxy with the userlist secret; the server then refuses the proxy.
        // Npgsql's Open sends a first statement, which links a server: the server's refusal reaches the client.
        PostgresException ex = await Assert.ThrowsAsync<PostgresException>(() => proxy.OpenAsync(password: "not-the-server-password", ct: TestContext.Current.CancellationToken));
        Assert.Equal("28P01", ex.SqlState);
        Assert.DoesNotContain("not-the-server-password", proxy.LogText, StringComparison.Ordinal);
    }
}
