using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using NSec.Cryptography;

namespace Wzp.Protocol.Grants;

/// <summary>Which check refused a grant; what a gateway may log (with the key id), unlike the claims themselves.</summary>
public enum GrantFailure
{
    None,
    Missing,
    Malformed,
    Algorithm,
    UnknownKey,
    Signature,
    Claims,
    Lifetime,
    NotYetValid,
    Expired,
    Subject,
    Room,
}

/// <summary>
/// The outcome of checking a grant: the grant, or which check refused it and why (<see cref="Failure"/>, safe to
/// send to the client that presented it). <see cref="KeyId"/> is the header's key id once it named an accepted key.
/// </summary>
public readonly record struct GrantCheck(Grant? Grant, GrantFailure Reason, string? Failure, string? KeyId = null)
{
    public bool Succeeded => Grant is not null;

    internal static GrantCheck Fail(GrantFailure reason, string why, string? keyId = null) => new(null, reason, why, keyId);
}

/// <summary>How strict a <see cref="GrantValidator"/> is about time.</summary>
public sealed class GrantValidationOptions
{
    /// <summary>Clock difference tolerated on <c>nbf</c> and <c>exp</c>. Defaults to 30 seconds.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest <c>exp - nbf</c> accepted, so a leaked long-lived grant cannot be minted by mistake. Defaults to 1 day.</summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromDays(1);
}

/// <summary>
/// Checks grants against the accepted issuer keys, strictly: a compact JWS with three parts; a header naming
/// <c>alg</c> HS256 or EdDSA (never <c>none</c>), a known <c>kid</c> whose key is of that algorithm's kind (so an
/// HS256 token "signed" with an Ed25519 public key as its secret names a key that is not an HS256 secret and is
/// refused), and no <c>crit</c>; the signature; then the claims, typed as <see cref="Grant"/> documents them,
/// with duplicates refused. No I/O; thread-safe.
/// </summary>
public sealed class GrantValidator
{
    public const string Hs256 = "HS256";
    public const string EdDsa = "EdDSA";

    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false, MaxDepth = 4 };

    private readonly Dictionary<string, GrantKey> _keys;
    private readonly Dictionary<string, SymmetricSecurityKey> _hmacKeys;
    private readonly GrantValidationOptions _options;
    private readonly TimeProvider _time;

    public GrantValidator(IEnumerable<GrantKey> keys, GrantValidationOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = new Dictionary<string, GrantKey>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (!_keys.TryAdd(key.KeyId, key)) throw new ArgumentException($"Key id '{key.KeyId}' is given twice.", nameof(keys));
        }
        _hmacKeys = _keys.Values.Where(k => k.Kind == GrantKeyKind.Hs256)
            .ToDictionary(k => k.KeyId, k => new SymmetricSecurityKey(k.Secret.ToArray()) { KeyId = k.KeyId }, StringComparer.Ordinal);
        _options = options ?? new GrantValidationOptions();
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The accepted key ids.</summary>
    public IReadOnlyCollection<string> KeyIds => _keys.Keys;

    /// <summary>
    /// Checks <paramref name="token"/> for the member whose identity key has fingerprint <paramref name="identity"/>
    /// joining <paramref name="room"/>.
    /// </summary>
    public GrantCheck Validate(string token, Fingerprint identity, string room)
    {
        ArgumentNullException.ThrowIfNull(room);
        if (string.IsNullOrEmpty(token)) return GrantCheck.Fail(GrantFailure.Missing, "no grant (this gateway requires one)");
        JsonWebToken jwt;
        try
        {
            // The library parses the compact form; a JWE (five parts) or junk never gets further.
            jwt = new JsonWebToken(token);
        }
        catch (Exception e) when (e is ArgumentException or SecurityTokenMalformedException or FormatException or JsonException)
        {
            return GrantCheck.Fail(GrantFailure.Malformed, "the grant is not a well-formed JWT");
        }
        if (jwt.IsEncrypted || string.IsNullOrEmpty(jwt.EncodedSignature)) return GrantCheck.Fail(GrantFailure.Malformed, "the grant is not a signed JWT");

        if (ReadObject(jwt.EncodedHeader) is not { } header) return GrantCheck.Fail(GrantFailure.Malformed, "the grant's header is not a JSON object without duplicates");
        using (header)
        {
            var alg = StringMember(header.RootElement, "alg");
            if (alg is null) return GrantCheck.Fail(GrantFailure.Algorithm, "the grant's header has no 'alg'");
            if (alg != Hs256 && alg != EdDsa) return GrantCheck.Fail(GrantFailure.Algorithm, $"algorithm '{Printable(alg)}' is not accepted (only {Hs256} and {EdDsa})");
            if (header.RootElement.TryGetProperty("crit", out _)) return GrantCheck.Fail(GrantFailure.Algorithm, "the grant's header has 'crit' extensions, which are not supported");
            var kid = StringMember(header.RootElement, "kid");
            if (kid is null) return GrantCheck.Fail(GrantFailure.UnknownKey, "the grant's header has no 'kid'");
            if (!_keys.TryGetValue(kid, out var key)) return GrantCheck.Fail(GrantFailure.UnknownKey, $"unknown key id '{Printable(kid)}'");
            var expected = alg == Hs256 ? GrantKeyKind.Hs256 : GrantKeyKind.Ed25519;
            if (key.Kind != expected) return GrantCheck.Fail(GrantFailure.Algorithm, $"key '{kid}' is an {key.Kind} key, not one for {alg}", kid);
            if (!VerifySignature(jwt, key)) return GrantCheck.Fail(GrantFailure.Signature, $"the signature does not verify with key '{kid}'", kid);
            return CheckClaims(jwt, kid, identity, room);
        }
    }

    private bool VerifySignature(JsonWebToken jwt, GrantKey key)
    {
        byte[] signature;
        try
        {
            signature = Base64UrlEncoder.DecodeBytes(jwt.EncodedSignature);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            return false;
        }
        var input = Encoding.ASCII.GetBytes($"{jwt.EncodedHeader}.{jwt.EncodedPayload}");
        if (key.Kind == GrantKeyKind.Ed25519)
        {
            // RFC 8037 §3.1: Ed25519 over the JWS signing input, the raw 64-byte signature.
            return signature.Length == Identity.SignatureSize && Identity.Verify(key.PublicKey, input, signature);
        }
        var hmacKey = _hmacKeys[key.KeyId];
        var factory = hmacKey.CryptoProviderFactory;
        var provider = factory.CreateForVerifying(hmacKey, SecurityAlgorithms.HmacSha256);
        try
        {
            return provider.Verify(input, signature); // constant time (the library compares with a fixed-time loop)
        }
        finally
        {
            factory.ReleaseSignatureProvider(provider);
        }
    }

    private GrantCheck CheckClaims(JsonWebToken jwt, string kid, Fingerprint identity, string room)
    {
        if (ReadObject(jwt.EncodedPayload) is not { } payload) return GrantCheck.Fail(GrantFailure.Claims, "the grant's claims are not a JSON object without duplicates", kid);
        using (payload)
        {
            var claims = payload.RootElement;
            try
            {
                var sub = StringMember(claims, "sub") ?? throw new ClaimException("the grant has no 'sub'");
                if (!Fingerprint.TryParse(sub, out var subject)) throw new ClaimException("the grant's 'sub' is not an identity fingerprint");
                var pattern = StringMember(claims, "room") ?? throw new ClaimException("the grant has no 'room'");
                if (!Grant.IsValidRoomPattern(pattern)) throw new ClaimException("the grant's 'room' is not a room name or a prefix ending in '*'");
                var nbf = NumericDate(claims, "nbf") ?? throw new ClaimException("the grant has no 'nbf' (required)");
                var exp = NumericDate(claims, "exp") ?? throw new ClaimException("the grant has no 'exp' (required)");
                var name = StringMember(claims, "name");
                if (name is not null && (name.Length == 0 || !HelloLimits.IsValidAlias(name)))
                    throw new ClaimException("the grant's 'name' must be 1 to 64 characters without control characters");
                var grant = new Grant(subject, pattern, nbf, exp, name,
                    Flag(claims, "publish"), Flag(claims, "subscribe"), Flag(claims, "admin"), kid);

                var now = _time.GetUtcNow();
                if (exp <= nbf) return GrantCheck.Fail(GrantFailure.Lifetime, "the grant expires before it starts", kid);
                if (exp - nbf > _options.MaxLifetime) return GrantCheck.Fail(GrantFailure.Lifetime, $"the grant's lifetime is longer than this gateway accepts ({_options.MaxLifetime})", kid);
                if (now + _options.ClockSkew < nbf) return GrantCheck.Fail(GrantFailure.NotYetValid, $"the grant is not valid before {nbf:u} (now {now:u})", kid);
                if (now - _options.ClockSkew >= exp) return GrantCheck.Fail(GrantFailure.Expired, $"the grant expired at {exp:u} (now {now:u})", kid);
                if (subject != identity) return GrantCheck.Fail(GrantFailure.Subject, $"the grant was issued to identity {subject}, not to this identity {identity}", kid);
                if (!grant.AllowsRoom(room)) return GrantCheck.Fail(GrantFailure.Room, $"the grant is for room '{pattern}', not '{room}'", kid);
                return new GrantCheck(grant, GrantFailure.None, null, kid);
            }
            catch (ClaimException e)
            {
                return GrantCheck.Fail(GrantFailure.Claims, e.Message, kid);
            }
        }
    }

    private static JsonDocument? ReadObject(string encoded)
    {
        try
        {
            var document = JsonDocument.Parse(Base64UrlEncoder.DecodeBytes(encoded), Strict);
            if (document.RootElement.ValueKind == JsonValueKind.Object) return document;
            document.Dispose();
            return null;
        }
        catch (Exception e) when (e is JsonException or FormatException or ArgumentException)
        {
            return null;
        }
    }

    private static string? StringMember(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value)) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new ClaimException($"the grant's '{name}' must be a string");
    }

    private static DateTimeOffset? NumericDate(JsonElement claims, string name)
    {
        if (!claims.TryGetProperty(name, out var value)) return null;
        // RFC 7519 §2: NumericDate is seconds since the epoch and may have a fraction; anything else is refused.
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var seconds) || double.IsNaN(seconds) ||
            seconds < 0 || seconds > 253402300799) // 9999-12-31T23:59:59Z, the end of DateTimeOffset
            throw new ClaimException($"the grant's '{name}' must be a NumericDate (seconds since 1970)");
        return DateTimeOffset.UnixEpoch.AddSeconds(Math.Floor(seconds));
    }

    private static bool Flag(JsonElement claims, string name)
    {
        if (!claims.TryGetProperty(name, out var value)) return false;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ClaimException($"the grant's '{name}' must be true or false"),
        };
    }

    // What an attacker put in a header may be echoed in the refusal, but bounded and without control characters.
    private static string Printable(string text)
    {
        var cut = text.Length > 64 ? text[..64] + "..." : text;
        return new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }

    private sealed class ClaimException(string message) : Exception(message);
}
