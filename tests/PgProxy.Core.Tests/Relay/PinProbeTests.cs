using System.Buffers.Binary;
using System.Text;
using PgProxy.Core.Relay;

namespace PgProxy.Core.Tests.Relay;

public sealed class PinProbeTests
{
    [Fact]
    public void TheRow_NamesEveryKindWithACountAboveZero()
    {
        Assert.True(PinProbe.TryRead(Row("0", "3", "0", "1", "0", "0"), out PinKinds kinds));
        Assert.Equal(PinKinds.TempTable | PinKinds.Listen, kinds);
        Assert.Equal("temp_table,listen", PinKindNames.Describe(kinds));
        Assert.True(PinProbe.TryRead(Row("0", "0", "0", "0", "0", "0"), out kinds));
        Assert.Equal(PinKinds.None, kinds);
        Assert.Equal("", PinKindNames.Describe(kinds));
        Assert.True(PinProbe.TryRead(Row("12", "0", "0", "0", "2", "1"), out kinds));
        Assert.Equal(PinKinds.AdvisoryLock | PinKinds.PreparedStatement | PinKinds.SessionSetting, kinds);
    }

    [Fact]
    public void AnyOtherRow_IsNotTakenForTheProbes()
    {
        Assert.False(PinProbe.TryRead(Row("0", "0"), out _));
        Assert.False(PinProbe.TryRead([0, 6, 0, 0], out _));
        byte[] withNull = Row("0", "0", "0", "0", "0", "0");
        BinaryPrimitives.WriteInt32BigEndian(withNull.AsSpan(2), -1); // a NULL column
        Assert.False(PinProbe.TryRead(withNull, out _));
    }

    [Fact]
    public void TheQuery_IsOneStatement_NamingTheLoginUserAsALiteral()
    {
        byte[] message = PinProbe.QueryMessage("o'brien");
        Assert.Equal((byte)'Q', message[0]);
        Assert.Equal(message.Length - 1, BinaryPrimitives.ReadInt32BigEndian(message.AsSpan(1)));
        Assert.Equal(0, message[^1]);
        string sql = Encoding.UTF8.GetString(message.AsSpan(5, message.Length - 6));
        Assert.Contains("session_user::text <> E'o''brien'", sql, StringComparison.Ordinal);
        Assert.DoesNotContain(";", sql, StringComparison.Ordinal);
    }

    private static byte[] Row(params string[] values)
    {
        var bytes = new List<byte> { 0, (byte)values.Length };
        foreach (string v in values)
        {
            byte[] length = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(length, v.Length);
            bytes.AddRange(length);
            bytes.AddRange(Encoding.ASCII.GetBytes(v));
        }

        return [.. bytes];
    }
}
