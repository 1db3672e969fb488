using System.Buffers.Binary;
using System.Text;
using PgProxy.Core.Infrastructure;
using PgProxy.Protocol.Framing;

namespace PgProxy.Core.Relay;

/// <summary>
/// The one round trip that tells what session state a transaction-mode client left on its server: sent after a
/// transaction that may have created or dropped some (the lexer's <see cref="Sql.SqlStatement.PinEffects"/>), its
/// replies never reach the client. One row, one count per <see cref="PinKinds"/> kind, in <see cref="PinKindNames.All"/>'s
/// order. The server is the judge, not the lexer: a lock taken inside a function, a temp table dropped by a
/// procedure, a cursor closed by CLOSE ALL, all count as they really are.
/// </summary>
public static class PinProbe
{
    /// <summary>The probe's SQL for a server logged in as <paramref name="loginUser"/>.</summary>
    public static string Sql(string loginUser) =>
        "SELECT (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()), " +
        "(SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema()), " +
        "(SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable), " +
        "(SELECT count(*) FROM pg_catalog.pg_listening_channels()), " +
        "(SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql AND name NOT LIKE 'pgproxy\\_%'), " +
        "CASE WHEN pg_catalog.current_setting('role') <> 'none' OR session_user::text <> " + SqlQuote.Literal(loginUser) +
        " THEN 1 ELSE 0 END";

    /// <summary>The probe as a Query message.</summary>
    public static byte[] QueryMessage(string loginUser)
    {
        byte[] text = Encoding.UTF8.GetBytes(Sql(loginUser));
        byte[] message = new byte[1 + 4 + text.Length + 1];
        message[0] = FrontendCode.Query;
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), message.Length - 1);
        text.CopyTo(message.AsSpan(5));
        return message;
    }

    /// <summary>Reads the probe's DataRow body (text counts); false when it is not the row the probe returns.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out PinKinds kinds)
    {
        kinds = PinKinds.None;
        if (body.Length < 2 || BinaryPrimitives.ReadInt16BigEndian(body) != PinKindNames.All.Length)
        {
            return false;
        }

        int at = 2;
        foreach ((PinKinds kind, _) in PinKindNames.All)
        {
            if (body.Length < at + 4)
            {
                return false;
            }

            int length = BinaryPrimitives.ReadInt32BigEndian(body[at..]);
            at += 4;
            if (length < 1 || body.Length < at + length)
            {
                return false;
            }

            if (!(length == 1 && body[at] == (byte)'0'))
            {
                kinds |= kind;
            }

            at += length;
        }

        return true;
    }
}
