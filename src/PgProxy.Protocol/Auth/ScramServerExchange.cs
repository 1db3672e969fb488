using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// The server side of one SCRAM-SHA-256 exchange, as PostgreSQL runs it (auth-scram.c): the user name in the
/// client-first-message is ignored (the startup user counts), channel binding is not offered, and a
/// failure is reported only after the client proof, so an unknown user looks like a wrong password.
/// </summary>
public sealed class ScramServerExchange
{
    private readonly ScramVerifier _verifier;
    private readonly bool _mockFailure;
    private readonly string _serverNonce;
    private string _gs2Header = "";
    private string _clientFirstBare = "";
    private string _serverFirst = "";
    private string _fullNonce = "";

    /// <summary>Creates an exchange against <paramref name="verifier"/>.</summary>
    /// <param name="verifier">The stored secret.</param>
    /// <param name="mockFailure">When true (unknown user), the exchange runs but always fails.</param>
    /// <param name="serverNonce">A fixed nonce for tests; random when null.</param>
    public ScramServerExchange(ScramVerifier verifier, bool mockFailure = false, string? serverNonce = null)
    {
        _verifier = verifier;
        _mockFailure = mockFailure;
        _serverNonce = serverNonce ?? ScramSha256.NewNonce();
    }

    /// <summary>After a successful exchange: the ClientKey recovered from the proof (used to log in to backends).</summary>
    public byte[]? ClientKey { get; private set; }

    /// <summary>Handles client-first-message; returns server-first-message or null with an error.</summary>
    public string? HandleClientFirst(string message, out string? error)
    {
        error = null;
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","; gs2-cbind-flag = "p=" cb-name / "n" / "y"
        if (message.StartsWith("p=", StringComparison.Ordinal))
        {
            error = "channel binding is not supported by this server";
            return null;
        }

        if (message.Length < 3 || message[1] != ',')
        {
            error = "malformed SCRAM message";
            return null;
        }

        char flag = message[0];

        if (flag is not ('n' or 'y'))
        {
            error = "malformed SCRAM message";
            return null;
        }

        int second = message.IndexOf(',', 2);
        if (second < 0)
        {
            error = "malformed SCRAM message";
            return null;
        }

        if (second != 2)
        {
            error = "client uses authorization identity, but it is not supported";
            return null;
        }

        _gs2Header = message.Substring(0, 3);
        _clientFirstBare = message.Substring(3);
        if (!ScramSha256.TryParseAttributes(_clientFirstBare, out List<KeyValuePair<char, string>> attrs) ||
            attrs.Count < 2 || attrs[0].Key != 'n' || attrs[1].Key != 'r' || attrs[1].Value.Length == 0)
        {
            error = attrs.Count > 0 && attrs[0].Key == 'm' ? "client requires an unsupported SCRAM extension" : "malformed SCRAM message";
            return null;
        }

        foreach (char ch in attrs[1].Value)
        {
            if (ch < 0x21 || ch > 0x7E || ch == ',')
            {
                error = "malformed SCRAM message: invalid nonce";
                return null;
            }
        }

        _fullNonce = attrs[1].Value + _serverNonce;
        _serverFirst = $"r={_fullNonce},s={Convert.ToBase64String(_verifier.Salt)},i={_verifier.Iterations}";
        return _serverFirst;
    }

    /// <summary>Handles client-final-message; returns server-final-message on success, null on failure.</summary>
    public string? HandleClientFinal(string message, out string? error)
    {
        error = null;
        int proofAt = message.LastIndexOf(",p=", StringComparison.Ordinal);
        if (proofAt < 0 || !ScramSha256.TryParseAttributes(message, out List<KeyValuePair<char, string>> attrs) ||
            attrs.Count < 3 || attrs[0].Key != 'c' || attrs[1].Key != 'r' || attrs[^1].Key != 'p')
        {
            error = "malformed SCRAM message";
            return null;
        }

        string expectedBinding = Convert.ToBase64String(Encoding.ASCII.GetBytes(_gs2Header));
        if (attrs[0].Value != expectedBinding)
        {
            error = "SCRAM channel binding check failed";
            return null;
        }

        if (attrs[1].Value != _fullNonce)
        {
            error = "SCRAM nonce mismatch";
            return null;
        }

        byte[] proof;
        try
        {
            proof = Convert.FromBase64String(attrs[^1].Value);
        }
        catch (FormatException)
        {
            error = "malformed SCRAM message: invalid proof";
            return null;
        }

        if (proof.Length != 32)
        {
            error = "malformed SCRAM message: invalid proof";
            return null;
        }

        string withoutProof = message.Substring(0, proofAt);
        byte[] authMessage = ScramSha256.Utf8(_clientFirstBare + "," + _serverFirst + "," + withoutProof);
        byte[] clientSignature = ScramSha256.Hmac(_verifier.StoredKey, authMessage);
        byte[] clientKey = ScramSha256.Xor(proof, clientSignature);
        bool ok = CryptographicOperations.FixedTimeEquals(ScramSha256.Hash(clientKey), _verifier.StoredKey);
        if (!ok || _mockFailure)
        {
            error = "password does not match";
            return null;
        }

        ClientKey = clientKey;
        return "v=" + Convert.ToBase64String(ScramSha256.Hmac(_verifier.ServerKey, authMessage));
    }
}
