using System.Security.Cryptography;
using System.Text;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// The server side of one SCRAM-SHA-256 exchange, as PostgreSQL runs it (auth-scram.c): the user name in the
/// client-first-message is ignored (the startup user counts), SCRAM-SHA-256-PLUS with tls-server-end-point is
/// offered on TLS connections, and a failure is reported only after the client proof, so an unknown user looks like
/// a wrong password.
/// </summary>
public sealed class ScramServerExchange
{
    private readonly ScramVerifier _verifier;
    private readonly bool _mockFailure;
    private readonly string _serverNonce;
    private readonly byte[]? _bindingData;
    private string _gs2Header = "";
    private string _clientFirstBare = "";
    private string _serverFirst = "";
    private string _fullNonce = "";

    /// <summary>Creates an exchange against <paramref name="verifier"/>.</summary>
    /// <param name="verifier">The stored secret.</param>
    /// <param name="mockFailure">When true (unknown user), the exchange runs but always fails.</param>
    /// <param name="serverNonce">A fixed nonce for tests; random when null.</param>
    /// <param name="bindingData">On a TLS connection, the hash of the proxy's certificate: SCRAM-SHA-256-PLUS is offered.</param>
    public ScramServerExchange(ScramVerifier verifier, bool mockFailure = false, string? serverNonce = null, byte[]? bindingData = null)
    {
        _verifier = verifier;
        _mockFailure = mockFailure;
        _serverNonce = serverNonce ?? ScramSha256.NewNonce();
        _bindingData = bindingData;
    }

    /// <summary>The mechanisms to offer, in PostgreSQL's order: -PLUS first when the connection can bind.</summary>
    public string[] Mechanisms => _bindingData is null ? [ScramSha256.Mechanism] : [ScramSha256.PlusMechanism, ScramSha256.Mechanism];

    /// <summary>After a successful exchange: the ClientKey recovered from the proof (used to log in to backends).</summary>
    public byte[]? ClientKey { get; private set; }

    /// <summary>Handles client-first-message under <paramref name="mechanism"/>; returns server-first-message or null with an error.</summary>
    public string? HandleClientFirst(string message, out string? error, string mechanism = ScramSha256.Mechanism)
    {
        error = null;
        bool plus = mechanism == ScramSha256.PlusMechanism;
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","; gs2-cbind-flag = "p=" cb-name / "n" / "y"
        int first = message.IndexOf(',', StringComparison.Ordinal);
        if (message.Length < 3 || first < 1)
        {
            error = "malformed SCRAM message";
            return null;
        }

        string flag = message[..first];
        if (flag.StartsWith("p=", StringComparison.Ordinal))
        {
            if (!plus)
            {
                error = "malformed SCRAM message: the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data";
                return null;
            }

            if (flag[2..] != ScramSha256.EndPointBinding)
            {
                error = $"unsupported SCRAM channel-binding type \"{flag[2..]}\"";
                return null;
            }
        }
        else if (plus)
        {
            error = "malformed SCRAM message: the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data";
            return null;
        }
        else if (flag == "y" && _bindingData is not null)
        {
            error = "SCRAM channel binding negotiation error: the client supports SCRAM channel binding but thinks the server does not; however, this server does support channel binding";
            return null;
        }
        else if (flag is not ("n" or "y"))
        {
            error = "malformed SCRAM message";
            return null;
        }

        if (plus && _bindingData is null)
        {
            error = "malformed SCRAM message: channel binding was selected on a connection that cannot bind (not TLS)";
            return null;
        }

        int second = first + 1 < message.Length ? message.IndexOf(',', first + 1) : -1;
        if (second < 0)
        {
            error = "malformed SCRAM message";
            return null;
        }

        if (second != first + 1)
        {
            error = "client uses authorization identity, but it is not supported";
            return null;
        }

        _gs2Header = message.Substring(0, second + 1);
        _clientFirstBare = message.Substring(second + 1);
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

        string expectedBinding = ScramSha256.BindingAttribute(_gs2Header, _gs2Header.StartsWith("p=", StringComparison.Ordinal) ? _bindingData : null);
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
