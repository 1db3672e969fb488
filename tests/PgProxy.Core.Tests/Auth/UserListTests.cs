using PgProxy.Core.Auth;

namespace PgProxy.Core.Tests.Auth;

public sealed class UserListTests
{
    [Fact]
    public void Parses_PgBouncerFormat_AllSecretKinds()
    {
        var errors = new List<string>();
        UserList list = UserList.Parse("""
            ; comment
            # another
            "plain" "pa""ss word"
            "hashed" "md520c46e3762c864548e296b33c3406aa9"
            "scram" "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=" trailing
            """, "users.txt", errors);
        Assert.Empty(errors);
        Assert.Equal(3, list.Count);
        Assert.Equal("pa\"ss word", list.Find("plain")!.Secret);
        Assert.Equal(SecretKind.Plain, list.Find("plain")!.Kind);
        Assert.NotNull(list.Find("plain")!.Verifier);
        Assert.Equal(SecretKind.Md5, list.Find("hashed")!.Kind);
        Assert.Equal(SecretKind.Scram, list.Find("scram")!.Kind);
        Assert.Null(list.Find("scram")!.Md5Hash);
        Assert.Null(list.Find("nobody"));
        Assert.DoesNotContain("pa\"ss", list.Find("plain")!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_Lines_NameFileAndLine()
    {
        var errors = new List<string>();
        UserList.Parse("\"ok\" \"x\"\nbare words\n\"unterminated \"x\"\n\"\" \"x\"\n", "users.txt", errors);
        Assert.Equal(["users.txt:2: expected \"user\" \"secret\"", "users.txt:3: expected \"user\" \"secret\"", "users.txt:4: empty user name"], errors);
    }
}
