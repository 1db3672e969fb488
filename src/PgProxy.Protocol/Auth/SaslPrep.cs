using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// SASLprep (RFC 4013) as PostgreSQL applies it to SCRAM passwords (<c>pg_saslprep</c>): ASCII passes unchanged;
/// otherwise non-ASCII spaces map to space, "mapped to nothing" characters are dropped and the result is NFKC
/// normalised. When the password contains prohibited characters PG falls back to the raw bytes, and so do we.
/// </summary>
public static class SaslPrep
{
    /// <summary>Returns the bytes that PBKDF2 is fed for <paramref name="password"/>.</summary>
    public static byte[] Normalize(string password)
    {
        bool ascii = true;
        foreach (char c in password)
        {
            if (c >= 0x80)
            {
                ascii = false;
                break;
            }
        }

        if (ascii)
        {
            return Encoding.UTF8.GetBytes(password);
        }

        var sb = new StringBuilder(password.Length);
        foreach (char c in password)
        {
            if (IsNonAsciiSpace(c))
            {
                sb.Append(' ');
            }
            else if (!IsMappedToNothing(c))
            {
                sb.Append(c);
            }
        }

        string normalized;
        try
        {
            normalized = sb.ToString().Normalize(NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            return Encoding.UTF8.GetBytes(password);
        }

        foreach (char c in normalized)
        {
            if (char.IsControl(c) || (c >= 0xE000 && c <= 0xF8FF) || c == 0xFFFD || char.IsSurrogate(c))
            {
                return Encoding.UTF8.GetBytes(password);
            }
        }

        return normalized.Length == 0 ? Encoding.UTF8.GetBytes(password) : Encoding.UTF8.GetBytes(normalized);
    }

    private static bool IsNonAsciiSpace(char c) =>
        c is '\u00A0' or '\u1680' or (>= '\u2000' and <= '\u200B') or '\u202F' or '\u205F' or '\u3000';

    private static bool IsMappedToNothing(char c) =>
        c is '\u00AD' or '\u034F' or '\u1806' or (>= '\u180B' and <= '\u180D') or '\u200C' or '\u200D' or '\u2060'
            or (>= '\uFE00' and <= '\uFE0F') or '\uFEFF';
}
