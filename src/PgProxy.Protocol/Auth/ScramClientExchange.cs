using System.Security.Cryptography;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// The client side of SCRAM-SHA-256, used when the proxy logs in to PostgreSQL. It works from a plaintext
/// password, or from the ClientKey/ServerKey pair captured while the client authenticated to us (SCRAM
/// passthrough: the backend's salt and iteration count must then match the stored verifier).
/// </summary>
public sealed class ScramClientExchange
{
    private readonly string? _password;
    private readonly byte[]? _clientKey;
    private readonly ScramVerifier? _verifier;
    private readonly string _clientNonce;
    private readonly string _gs2Header = "n,,";
    private readonly byte[]? _bindingData;
    private string _clientFirstBare = "";
    private byte[]? _expectedServerSignature;

    private ScramClientExchange(string? password, byte[]? clientKey, ScramVerifier? verifier, string? clientNonce)
    {
        _password = password;
        _clientKey = clientKey;
        _verifier = verifier;
        _clientNonce = clientNonce ?? ScramSha256.NewNonce();
    }

    private ScramClientExchange(ScramClientExchange plain, ChannelBinding binding)
        : this(plain._password, plain._clientKey, plain._verifier, plain._clientNonce)
    {
        (_gs2Header, _bindingData) = binding.Data is { } data
            ? ("p=" + ScramSha256.EndPointBinding + ",,", data)
            : (binding.Supported ? "y,," : "n,,", null);
    }

    /// <summary>An exchange driven by a plaintext password.</summary>
    public static ScramClientExchange FromPassword(string password, string? clientNonce = null) => new(password, null, null, clientNonce);

    /// <summary>An exchange driven by keys captured from a client's SCRAM login.</summary>
    public static ScramClientExchange FromKeys(byte[] clientKey, ScramVerifier verifier, string? clientNonce = null) =>
        new(null, clientKey, verifier, clientNonce);

    /// <summary>
    /// This exchange with channel binding: <see cref="ChannelBinding.Data"/> set binds to it (SCRAM-SHA-256-PLUS, "p="
    /// flag); otherwise <see cref="ChannelBinding.Supported"/> says whether the connection could have bound (TLS),
    /// which the "y" flag tells the server, so that a server that did offer -PLUS can detect a downgrade.
    /// </summary>
    public ScramClientExchange With(ChannelBinding binding) => new(this, binding);

    /// <summary>The mechanism this exchange runs: SCRAM-SHA-256-PLUS when it binds to the channel.</summary>
    public string Mechanism => _bindingData is null ? ScramSha256.Mechanism : ScramSha256.PlusMechanism;

    /// <summary>client-first-message, with the empty user name libpq sends (PG uses the startup user).</summary>
    public string ClientFirst()
    {
        _clientFirstBare = "n=,r=" + _clientNonce;
        return _gs2Header + _clientFirstBare;
    }

    /// <summary>Handles server-first-message and returns client-final-message, or null with an error.</summary>
    public string? HandleServerFirst(string serverFirst, out string? error)
    {
        error = null;
        if (!ScramSha256.TryParseAttributes(serverFirst, out List<KeyValuePair<char, string>> attrs) || attrs.Count < 3 ||
            attrs[0].Key != 'r' || attrs[1].Key != 's' || attrs[2].Key != 'i')
        {
            error = "malformed SCRAM server-first-message";
            return null;
        }

        string nonce = attrs[0].Value;
        if (!nonce.StartsWith(_clientNonce, StringComparison.Ordinal) || nonce.Length == _clientNonce.Length)
        {
            error = "SCRAM server nonce does not extend the client nonce";
            return null;
        }

        byte[] salt;
        try
        {
            salt = Convert.FromBase64String(attrs[1].Value);
        }
        catch (FormatException)
        {
            error = "malformed SCRAM salt";
            return null;
        }

        int iterations = ScramSha256.ParseIterations(attrs[2].Value);
        if (iterations <= 0)
        {
            error = "malformed SCRAM iteration count";
            return null;
        }

        byte[] clientKey;
        byte[] serverKey;
        if (_password is not null)
        {
            byte[] salted = ScramSha256.SaltedPassword(_password, salt, iterations);
            clientKey = ScramSha256.Hmac(salted, "Client Key"u8);
            serverKey = ScramSha256.Hmac(salted, "Server Key"u8);
        }
        else
        {
            if (_verifier!.Iterations != iterations || !_verifier.Salt.AsSpan().SequenceEqual(salt))
            {
                error = "the server's SCRAM secret differs from the proxy's stored verifier (salt or iterations)";
                return null;
            }

            clientKey = _clientKey!;
            serverKey = _verifier.ServerKey;
        }

        string withoutProof = "c=" + ScramSha256.BindingAttribute(_gs2Header, _bindingData) + ",r=" + nonce;
        byte[] authMessage = ScramSha256.Utf8(_clientFirstBare + "," + serverFirst + "," + withoutProof);
        byte[] storedKey = ScramSha256.Hash(clientKey);
        byte[] clientSignature = ScramSha256.Hmac(storedKey, authMessage);
        byte[] proof = ScramSha256.Xor(clientKey, clientSignature);
        _expectedServerSignature = ScramSha256.Hmac(serverKey, authMessage);
        return withoutProof + ",p=" + Convert.ToBase64String(proof);
    }

    /// <summary>Checks server-final-message; false when the server could not prove it knows the secret.</summary>
    public bool VerifyServerFinal(string serverFinal, out string? error)
    {
        error = null;
        if (serverFinal.StartsWith("e=", StringComparison.Ordinal))
        {
            error = "SCRAM error from server: " + serverFinal.Substring(2);
            return false;
        }

        if (!serverFinal.StartsWith("v=", StringComparison.Ordinal) || _expectedServerSignature is null)
        {
            error = "malformed SCRAM server-final-message";
            return false;
        }

        byte[] signature;
        try
        {
            int comma = serverFinal.IndexOf(',', StringComparison.Ordinal);
            signature = Convert.FromBase64String(comma < 0 ? serverFinal.Substring(2) : serverFinal.Substring(2, comma - 2));
        }
        catch (FormatException)
        {
            error = "malformed SCRAM server signature";
            return false;
        }

        if (!CryptographicOperations.FixedTimeEquals(signature, _expectedServerSignature))
        {
            error = "invalid SCRAM server signature";
            return false;
        }

        return true;
    }
}

/// <summary>What a SCRAM exchange knows of its connection's channel: the tls-server-end-point data to bind to, if any.</summary>
/// <param name="Supported">The connection is TLS (it could bind, whether or not it does).</param>
/// <param name="Data">The hash of the server's certificate (RFC 5929), when the exchange binds to it.</param>
public readonly record struct ChannelBinding(bool Supported, byte[]? Data)
{
    /// <summary>A plaintext connection: nothing to bind to.</summary>
    public static ChannelBinding None => default;
}
