using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// The server side of one SCRAM-SHA-256 exchange, as PostgreSQL runs it (auth-scram.c): the user name in the
/// client-first-message is ignored (the startup user counts), SCRAM-SHA-256-PLUS with tls-server-end-point is
/// offered on TLS connections, and a failure is reported only after the client proof, so an unknown user looks like
/// a wrong password.
/// <para>
/// The exchange works on the messages' bytes, as PostgreSQL does: one buffer holds the GS2 header, then the auth
/// message's first part (client-first-message-bare, server-first-message, with their commas), and the proofs are
/// computed into stack memory. A login allocates that buffer, this object and, on success, the ClientKey it keeps.
/// The string methods are the same exchange for callers that hold text.
/// </para>
/// </summary>
public sealed class ScramServerExchange
{
    /// <summary>Length of server-final-message: "v=" and the base64 of a 32-byte signature.</summary>
    public const int ServerFinalLength = 2 + 44;

    private static readonly string[] s_plain = [ScramSha256.Mechanism];
    private static readonly string[] s_withPlus = [ScramSha256.PlusMechanism, ScramSha256.Mechanism];

    private readonly ScramVerifier _verifier;
    private readonly bool _mockFailure;
    private readonly string? _fixedNonce;
    private readonly byte[]? _bindingData;

    // [gs2 header][client-first-message-bare] ',' [server-first-message] ','
    private byte[] _buffer = [];
    private int _gs2Length;
    private int _serverFirstAt;
    private int _serverFirstLength;
    private int _nonceLength; // the full nonce (client's and server's), right after server-first-message's "r="

    /// <summary>Creates an exchange against <paramref name="verifier"/>.</summary>
    /// <param name="verifier">The stored secret.</param>
    /// <param name="mockFailure">When true (unknown user), the exchange runs but always fails.</param>
    /// <param name="serverNonce">A fixed nonce for tests (printable ASCII); random when null.</param>
    /// <param name="bindingData">On a TLS connection, the hash of the proxy's certificate: SCRAM-SHA-256-PLUS is offered.</param>
    public ScramServerExchange(ScramVerifier verifier, bool mockFailure = false, string? serverNonce = null, byte[]? bindingData = null)
    {
        _verifier = verifier;
        _mockFailure = mockFailure;
        _fixedNonce = serverNonce;
        _bindingData = bindingData;
    }

    /// <summary>The mechanisms to offer, in PostgreSQL's order: -PLUS first when the connection can bind.</summary>
    public string[] Mechanisms => _bindingData is null ? s_plain : s_withPlus;

    /// <summary>After a successful exchange: the ClientKey recovered from the proof (used to log in to backends).</summary>
    public byte[]? ClientKey { get; private set; }

    /// <summary>server-first-message, once <see cref="TryHandleClientFirst"/> has succeeded.</summary>
    public ReadOnlySpan<byte> ServerFirstMessage => _buffer.AsSpan(_serverFirstAt, _serverFirstLength);

    /// <summary>The full nonce, inside server-first-message.</summary>
    private ReadOnlySpan<byte> FullNonce => _buffer.AsSpan(_serverFirstAt + 2, _nonceLength);

    /// <summary>The auth message's first part: client-first-message-bare "," server-first-message ",".</summary>
    private ReadOnlySpan<byte> AuthMessagePrefix => _buffer.AsSpan(_gs2Length, _serverFirstAt + _serverFirstLength + 1 - _gs2Length);

    /// <summary>Handles client-first-message under <paramref name="mechanism"/>; returns server-first-message or null with an error.</summary>
    public string? HandleClientFirst(string message, out string? error, string mechanism = ScramSha256.Mechanism) =>
        TryHandleClientFirst(Encoding.UTF8.GetBytes(message), mechanism == ScramSha256.PlusMechanism, out error)
            ? Encoding.UTF8.GetString(ServerFirstMessage)
            : null;

    /// <summary>Handles client-final-message; returns server-final-message on success, null on failure.</summary>
    public string? HandleClientFinal(string message, out string? error)
    {
        Span<byte> serverFinal = stackalloc byte[ServerFinalLength];
        return TryHandleClientFinal(Encoding.UTF8.GetBytes(message), serverFinal, out error) ? Encoding.ASCII.GetString(serverFinal) : null;
    }

    /// <summary>
    /// Handles client-first-message, under SCRAM-SHA-256-PLUS when <paramref name="plus"/>; on success
    /// <see cref="ServerFirstMessage"/> is the answer, else <paramref name="error"/> says why (PostgreSQL's words).
    /// </summary>
    public bool TryHandleClientFirst(ReadOnlySpan<byte> message, bool plus, out string? error)
    {
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","; gs2-cbind-flag = "p=" cb-name / "n" / "y"
        int first = message.IndexOf((byte)',');
        if (message.Length < 3 || first < 1)
        {
            return Fail("malformed SCRAM message", out error);
        }

        ReadOnlySpan<byte> flag = message[..first];
        if (flag.StartsWith("p="u8))
        {
            if (!plus)
            {
                return Fail("malformed SCRAM message: the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data", out error);
            }

            if (!Ascii.Equals(flag[2..], ScramSha256.EndPointBinding))
            {
                return Fail($"unsupported SCRAM channel-binding type \"{Encoding.UTF8.GetString(flag[2..])}\"", out error);
            }
        }
        else if (plus)
        {
            return Fail("malformed SCRAM message: the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data", out error);
        }
        else if (flag.SequenceEqual("y"u8) && _bindingData is not null)
        {
            return Fail("SCRAM channel binding negotiation error: the client supports SCRAM channel binding but thinks the server does not; however, this server does support channel binding", out error);
        }
        else if (!flag.SequenceEqual("n"u8) && !flag.SequenceEqual("y"u8))
        {
            return Fail("malformed SCRAM message", out error);
        }

        if (plus && _bindingData is null)
        {
            return Fail("malformed SCRAM message: channel binding was selected on a connection that cannot bind (not TLS)", out error);
        }

        int second = message[(first + 1)..].IndexOf((byte)',');
        if (second < 0)
        {
            return Fail("malformed SCRAM message", out error);
        }

        if (second != 0)
        {
            return Fail("client uses authorization identity, but it is not supported", out error);
        }

        int gs2Length = first + 2;
        ReadOnlySpan<byte> bare = message[gs2Length..];
        // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]: n= and r= first.
        if (!TryAttributes(bare, out int count, out ReadOnlySpan<byte> user, out ReadOnlySpan<byte> nonce, out _) ||
            count < 2 || user[0] != (byte)'n' || nonce[0] != (byte)'r' || nonce.Length == 2)
        {
            return Fail(bare.StartsWith("m="u8) ? "client requires an unsupported SCRAM extension" : "malformed SCRAM message", out error);
        }

        ReadOnlySpan<byte> clientNonce = nonce[2..];
        foreach (byte ch in clientNonce)
        {
            if (ch < 0x21 || ch > 0x7E)
            {
                return Fail("malformed SCRAM message: invalid nonce", out error);
            }
        }

        // server-first-message = "r=" client-nonce server-nonce ",s=" salt ",i=" iterations
        int bareLength = message.Length - gs2Length;
        int saltLength = Base64.GetMaxEncodedToUtf8Length(_verifier.Salt.Length);
        const int ServerNonceLength = 24; // base64 of 18 random bytes, as PostgreSQL's
        int serverNonceLength = _fixedNonce?.Length ?? ServerNonceLength;
        int serverFirstLength = 2 + clientNonce.Length + serverNonceLength + 3 + saltLength + 3 + 11;
        byte[] buffer = new byte[gs2Length + bareLength + 1 + serverFirstLength + 1];
        message.CopyTo(buffer);
        int at = gs2Length + bareLength;
        buffer[at++] = (byte)',';
        int serverFirstAt = at;
        "r="u8.CopyTo(buffer.AsSpan(at));
        at += 2;
        int nonceAt = at;
        clientNonce.CopyTo(buffer.AsSpan(at));
        at += clientNonce.Length;
        if (_fixedNonce is null)
        {
            Span<byte> random = stackalloc byte[18];
            SecureRandom.Fill(random);
            Base64.EncodeToUtf8(random, buffer.AsSpan(at), out _, out int written);
            at += written;
        }
        else
        {
            at += Encoding.ASCII.GetBytes(_fixedNonce, buffer.AsSpan(at));
        }

        int nonceLength = at - nonceAt;
        ",s="u8.CopyTo(buffer.AsSpan(at));
        at += 3;
        Base64.EncodeToUtf8(_verifier.Salt, buffer.AsSpan(at), out _, out int saltWritten);
        at += saltWritten;
        ",i="u8.CopyTo(buffer.AsSpan(at));
        at += 3;
        _verifier.Iterations.TryFormat(buffer.AsSpan(at), out int digits, default, System.Globalization.CultureInfo.InvariantCulture);
        at += digits;
        int serverFirstEnd = at;
        buffer[at++] = (byte)',';

        _buffer = buffer;
        _gs2Length = gs2Length;
        _serverFirstAt = serverFirstAt;
        _serverFirstLength = serverFirstEnd - serverFirstAt;
        _nonceLength = nonceLength;
        error = null;
        return true;
    }

    /// <summary>
    /// Handles client-final-message. On success writes server-final-message (<see cref="ServerFinalLength"/> bytes)
    /// into <paramref name="serverFinal"/>; on failure <paramref name="error"/> says why, "password does not match" for
    /// a wrong proof (or an unknown user's mock exchange).
    /// </summary>
    public bool TryHandleClientFinal(ReadOnlySpan<byte> message, Span<byte> serverFinal, out string? error)
    {
        // client-final-message = "c=" channel-binding ",r=" nonce ["," extensions] ",p=" proof
        int proofAt = message.LastIndexOf(",p="u8);
        if (proofAt < 0 ||
            !TryAttributes(message, out int count, out ReadOnlySpan<byte> binding, out ReadOnlySpan<byte> nonce, out ReadOnlySpan<byte> proofText) ||
            count < 3 || binding[0] != (byte)'c' || nonce[0] != (byte)'r' || proofText[0] != (byte)'p')
        {
            return Fail("malformed SCRAM message", out error);
        }

        binding = binding[2..];
        nonce = nonce[2..];
        proofText = proofText[2..]; // the last attribute: what follows the last ",p="
        if (!CheckBinding(binding))
        {
            return Fail("SCRAM channel binding check failed", out error);
        }

        if (!nonce.SequenceEqual(FullNonce))
        {
            return Fail("SCRAM nonce mismatch", out error);
        }

        Span<byte> proof = stackalloc byte[32];
        if (!TryDecodeProof(proofText, proof))
        {
            return Fail("malformed SCRAM message: invalid proof", out error);
        }

        // AuthMessage = client-first-message-bare "," server-first-message "," client-final-message-without-proof
        ReadOnlySpan<byte> prefix = AuthMessagePrefix;
        int authLength = prefix.Length + proofAt;
        byte[]? rented = authLength > 1024 ? ArrayPool<byte>.Shared.Rent(authLength) : null;
        Span<byte> authMessage = rented is null ? stackalloc byte[1024] : rented;
        authMessage = authMessage[..authLength];
        prefix.CopyTo(authMessage);
        message[..proofAt].CopyTo(authMessage[prefix.Length..]);

        Span<byte> clientKey = stackalloc byte[32];
        ClientSignature(authMessage, clientKey);
        for (int i = 0; i < 32; i++)
        {
            clientKey[i] ^= proof[i]; // ClientKey = ClientProof XOR ClientSignature
        }

        Span<byte> storedKey = stackalloc byte[32];
        SHA256.HashData(clientKey, storedKey);
        bool ok = CryptographicOperations.FixedTimeEquals(storedKey, _verifier.StoredKey) && !_mockFailure;
        Span<byte> serverSignature = stackalloc byte[32];
        if (ok)
        {
            _verifier.ServerSignature(authMessage, serverSignature); // a stored secret: a mock exchange is never ok
        }

        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        if (!ok)
        {
            return Fail("password does not match", out error);
        }

        "v="u8.CopyTo(serverFinal);
        Base64.EncodeToUtf8(serverSignature, serverFinal[2..], out _, out _);
        ClientKey = clientKey.ToArray();
        error = null;
        return true;
    }

    /// <summary>
    /// HMAC(StoredKey, AuthMessage): through the verifier's reused context for a stored secret; a mock exchange's
    /// verifier is made for this login alone, so it computes in one shot rather than leave a context behind.
    /// </summary>
    private void ClientSignature(ReadOnlySpan<byte> authMessage, Span<byte> destination)
    {
        if (_mockFailure)
        {
            HMACSHA256.HashData(_verifier.StoredKey, authMessage, destination);
        }
        else
        {
            _verifier.ClientSignature(authMessage, destination);
        }
    }

    /// <summary>The c= attribute: base64 of the GS2 header, and with "p=" the channel binding data after it.</summary>
    private bool CheckBinding(ReadOnlySpan<byte> binding)
    {
        ReadOnlySpan<byte> header = _buffer.AsSpan(0, _gs2Length);
        byte[]? data = header.StartsWith("p="u8) ? _bindingData : null;
        int length = header.Length + (data?.Length ?? 0);
        if (length > 256)
        {
            return false; // never: the header is one of three that client-first accepted, the data a certificate hash
        }

        Span<byte> raw = stackalloc byte[length];
        header.CopyTo(raw);
        data?.CopyTo(raw[header.Length..]);
        Span<byte> expected = stackalloc byte[Base64.GetMaxEncodedToUtf8Length(length)];
        Base64.EncodeToUtf8(raw, expected, out _, out int written);
        return binding.SequenceEqual(expected[..written]);
    }

    /// <summary>The proof's base64 into 32 bytes; whitespace is skipped, as PostgreSQL's decoder and .NET's skip it.</summary>
    private static bool TryDecodeProof(ReadOnlySpan<byte> text, Span<byte> proof)
    {
        if (text.Length == 44 && Base64.DecodeFromUtf8(text, proof, out _, out int written) == OperationStatus.Done)
        {
            return written == 32;
        }

        try
        {
            byte[] decoded = Convert.FromBase64String(Encoding.UTF8.GetString(text));
            if (decoded.Length != 32)
            {
                return false;
            }

            decoded.CopyTo(proof);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads "k=value,k=value" as PostgreSQL's read_attr_value does: every comma-separated part must be one letter,
    /// '=' and a value (an empty part, a trailing comma, fails). Gives the number of parts, the first two and the last.
    /// </summary>
    private static bool TryAttributes(ReadOnlySpan<byte> text, out int count, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second,
        out ReadOnlySpan<byte> last)
    {
        count = 0;
        first = second = last = default;
        while (true)
        {
            int end = text.IndexOf((byte)',');
            ReadOnlySpan<byte> part = end < 0 ? text : text[..end];
            if (part.Length < 2 || part[1] != (byte)'=')
            {
                return false;
            }

            if (count == 0)
            {
                first = part;
            }
            else if (count == 1)
            {
                second = part;
            }

            last = part;
            count++;
            if (end < 0)
            {
                return true;
            }

            text = text[(end + 1)..];
        }
    }

    private static bool Fail(string message, out string? error)
    {
        error = message;
        return false;
    }
}
