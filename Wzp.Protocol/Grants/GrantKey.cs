using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.IdentityModel.Tokens;
using NSec.Cryptography;

namespace Wzp.Protocol.Grants;

/// <summary>How a grant is signed.</summary>
public enum GrantKeyKind
{
    /// <summary>HS256 (HMAC-SHA256) with a shared secret: whoever can check a grant can also mint one.</summary>
    Hs256,

    /// <summary>EdDSA with Ed25519 (RFC 8037): gateways hold only the public key and cannot mint grants.</summary>
    Ed25519,
}

/// <summary>
/// An issuer key, named by its key id (<c>kid</c>): an HS256 secret, an Ed25519 private key, or an Ed25519 public
/// key (which can only check grants). Its file form is a small JSON object (<see cref="ToJson"/>,
/// <see cref="Parse"/>); reading and writing files is the caller's business. Secrets are zeroed on dispose.
/// </summary>
public sealed partial class GrantKey : IDisposable
{
    /// <summary>Size of a generated HS256 secret; the minimum accepted, as RFC 7518 §3.2 asks (a key of at least the hash size).</summary>
    public const int SecretSize = 32;

    private static readonly SignatureAlgorithm Ed25519Algorithm = SignatureAlgorithm.Ed25519;

    private readonly byte[]? _secret;
    private readonly Key? _privateKey;

    private GrantKey(string keyId, GrantKeyKind kind, byte[]? secret, Key? privateKey, byte[]? publicKey)
    {
        KeyId = keyId;
        Kind = kind;
        _secret = secret;
        _privateKey = privateKey;
        PublicKey = publicKey;
    }

    public string KeyId { get; }

    public GrantKeyKind Kind { get; }

    /// <summary>The Ed25519 public key (32 bytes); null for HS256.</summary>
    public byte[]? PublicKey { get; }

    /// <summary>True when this key can sign grants (an HS256 secret or an Ed25519 private key).</summary>
    public bool CanSign => _secret is not null || _privateKey is not null;

    internal ReadOnlySpan<byte> Secret => _secret ?? throw new InvalidOperationException("Not an HS256 key.");

    internal Key PrivateKey => _privateKey ?? throw new InvalidOperationException("Not an Ed25519 private key.");

    /// <summary>A key id: 1 to 64 of letters, digits, '.', '_' and '-' (it travels in the JWT header and names settings).</summary>
    public static bool IsValidKeyId(string? keyId) => keyId is not null && KeyIdPattern().IsMatch(keyId);

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex KeyIdPattern();

    public static GrantKey Generate(GrantKeyKind kind, string keyId)
    {
        RequireKeyId(keyId);
        if (kind == GrantKeyKind.Hs256) return new GrantKey(keyId, kind, RandomNumberGenerator.GetBytes(SecretSize), null, null);
        var key = Key.Create(Ed25519Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new GrantKey(keyId, kind, null, key, key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    public static GrantKey FromSecret(string keyId, ReadOnlySpan<byte> secret)
    {
        RequireKeyId(keyId);
        if (secret.Length < SecretSize) throw new ArgumentException($"An HS256 secret is at least {SecretSize} bytes.", nameof(secret));
        return new GrantKey(keyId, GrantKeyKind.Hs256, secret.ToArray(), null, null);
    }

    public static GrantKey FromPublicKey(string keyId, ReadOnlySpan<byte> publicKey)
    {
        RequireKeyId(keyId);
        if (publicKey.Length != Identity.PublicKeySize || !NSec.Cryptography.PublicKey.TryImport(Ed25519Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out _))
            throw new ArgumentException("An Ed25519 public key is 32 bytes of a valid point.", nameof(publicKey));
        return new GrantKey(keyId, GrantKeyKind.Ed25519, null, null, publicKey.ToArray());
    }

    /// <summary>
    /// Parses an Ed25519 public key as a setting gives it: 64 hex digits, or the 43 base64url characters of a JWK
    /// <c>x</c> (RFC 8037 §2). The two lengths differ, so neither can be mistaken for the other.
    /// </summary>
    public static bool TryParsePublicKey(string? text, out byte[] publicKey)
    {
        publicKey = [];
        text = text?.Trim();
        try
        {
            if (text is { Length: 64 }) publicKey = Convert.FromHexString(text);
            else if (text is { Length: 43 }) publicKey = Base64UrlEncoder.DecodeBytes(text);
            else return false;
        }
        catch (FormatException)
        {
            return false;
        }
        return publicKey.Length == Identity.PublicKeySize && NSec.Cryptography.PublicKey.TryImport(Ed25519Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out _);
    }

    /// <summary>The public half of an Ed25519 key, safe to give a gateway; an HS256 key has none.</summary>
    public GrantKey ToPublic() => Kind == GrantKeyKind.Ed25519
        ? FromPublicKey(KeyId, PublicKey)
        : throw new InvalidOperationException("An HS256 key has no public half: the gateway needs the secret itself.");

    /// <summary>
    /// The key file: <c>{"kty":"oct","kid","k"}</c> for HS256, <c>{"kty":"OKP","crv":"Ed25519","kid","x"[,"d"]}</c>
    /// for Ed25519 (JWK members, RFC 7517/8037, so other JOSE tools read it), base64url without padding.
    /// </summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            if (Kind == GrantKeyKind.Hs256)
            {
                json.WriteString("kty", "oct");
                json.WriteString("alg", GrantValidator.Hs256);
                json.WriteString("kid", KeyId);
                json.WriteString("k", Base64UrlEncoder.Encode(_secret!));
            }
            else
            {
                json.WriteString("kty", "OKP");
                json.WriteString("crv", "Ed25519");
                json.WriteString("alg", GrantValidator.EdDsa);
                json.WriteString("kid", KeyId);
                json.WriteString("x", Base64UrlEncoder.Encode(PublicKey!));
                if (_privateKey is not null)
                {
                    var seed = _privateKey.Export(KeyBlobFormat.RawPrivateKey);
                    json.WriteString("d", Base64UrlEncoder.Encode(seed));
                    CryptographicOperations.ZeroMemory(seed);
                }
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Parses a key file written by <see cref="ToJson"/>.</summary>
    /// <exception cref="FormatException">With what is wrong, never with key material.</exception>
    public static GrantKey Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException)
        {
            throw new FormatException("a grant key file is a JSON object (JWK)");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException("a grant key file is a JSON object (JWK)");
            var kid = String(root, "kid") ?? throw new FormatException("the key has no 'kid'");
            if (!IsValidKeyId(kid)) throw new FormatException("'kid' must be 1 to 64 of letters, digits, '.', '_' and '-'");
            switch (String(root, "kty"))
            {
                case "oct":
                    if (String(root, "alg") is { } hsAlg && hsAlg != GrantValidator.Hs256) throw new FormatException($"an 'oct' key must be for {GrantValidator.Hs256}");
                    var secret = Bytes(root, "k") ?? throw new FormatException("the HS256 key has no 'k'");
                    if (secret.Length < SecretSize) throw new FormatException($"the HS256 secret is shorter than {SecretSize} bytes");
                    return new GrantKey(kid, GrantKeyKind.Hs256, secret, null, null);
                case "OKP":
                    if (String(root, "crv") != "Ed25519") throw new FormatException("an 'OKP' key must have 'crv' Ed25519");
                    if (String(root, "alg") is { } edAlg && edAlg != GrantValidator.EdDsa) throw new FormatException($"an Ed25519 key must be for {GrantValidator.EdDsa}");
                    var x = Bytes(root, "x") ?? throw new FormatException("the Ed25519 key has no 'x'");
                    if (Bytes(root, "d") is not { } d) return FromPublicKeyOrThrow(kid, x);
                    try
                    {
                        if (d.Length != 32 || !Key.TryImport(Ed25519Algorithm, d, KeyBlobFormat.RawPrivateKey, out var key,
                                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }) || key is null)
                            throw new FormatException("the Ed25519 private key 'd' is not 32 bytes");
                        if (!key.PublicKey.Export(KeyBlobFormat.RawPublicKey).AsSpan().SequenceEqual(x))
                        {
                            key.Dispose();
                            throw new FormatException("the Ed25519 key's 'x' is not the public key of its 'd'");
                        }
                        return new GrantKey(kid, GrantKeyKind.Ed25519, null, key, x);
                    }
                    finally
                    {
                        CryptographicOperations.ZeroMemory(d);
                    }
                default:
                    throw new FormatException("'kty' must be 'oct' (HS256) or 'OKP' (Ed25519)");
            }
        }
    }

    private static GrantKey FromPublicKeyOrThrow(string kid, byte[] x)
    {
        try
        {
            return FromPublicKey(kid, x);
        }
        catch (ArgumentException)
        {
            throw new FormatException("the Ed25519 public key 'x' is not a valid 32-byte key");
        }
    }

    private static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) ? value.ValueKind == JsonValueKind.String ? value.GetString() : throw new FormatException($"'{name}' must be a string") : null;

    private static byte[]? Bytes(JsonElement root, string name)
    {
        if (String(root, name) is not { } text) return null;
        try
        {
            return Base64UrlEncoder.DecodeBytes(text);
        }
        catch (FormatException)
        {
            throw new FormatException($"'{name}' is not base64url");
        }
    }

    private static void RequireKeyId(string keyId)
    {
        if (!IsValidKeyId(keyId)) throw new ArgumentException("A key id is 1 to 64 of letters, digits, '.', '_' and '-'.", nameof(keyId));
    }

    public void Dispose()
    {
        if (_secret is not null) CryptographicOperations.ZeroMemory(_secret);
        _privateKey?.Dispose();
    }

    public override string ToString() => $"{Kind} grant key '{KeyId}'";
}
