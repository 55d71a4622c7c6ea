using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using NSec.Cryptography;

namespace Wzp.Protocol.Grants;

/// <summary>Mints grants: compact JWS (RFC 7515) with the claims of <see cref="Grant"/>.</summary>
public static class GrantIssuer
{
    /// <summary>Signs <paramref name="grant"/> with <paramref name="key"/> (an HS256 secret or an Ed25519 private key).</summary>
    public static string Issue(Grant grant, GrantKey key)
    {
        ArgumentNullException.ThrowIfNull(grant);
        ArgumentNullException.ThrowIfNull(key);
        if (!key.CanSign) throw new ArgumentException("This key can only check grants (an Ed25519 public key).", nameof(key));
        if (grant.KeyId != key.KeyId) throw new ArgumentException("The grant names another key id.", nameof(grant));
        if (!Grant.IsValidRoomPattern(grant.Room)) throw new ArgumentException("The room is not a room name or a prefix ending in '*'.", nameof(grant));
        if (grant.Name is { } name && (name.Length == 0 || !HelloLimits.IsValidAlias(name)))
            throw new ArgumentException("The name must be 1 to 64 characters without control characters.", nameof(grant));
        if (grant.Expires <= grant.NotBefore) throw new ArgumentException("The grant expires before it starts.", nameof(grant));
        var payload = Payload(grant);
        if (key.Kind == GrantKeyKind.Hs256)
        {
            // The library writes the header {alg, kid, typ} and signs; its key copy lives as long as this call.
            var credentials = new SigningCredentials(new SymmetricSecurityKey(key.Secret.ToArray()) { KeyId = key.KeyId }, SecurityAlgorithms.HmacSha256);
            return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(payload, credentials);
        }
        // EdDSA (RFC 8037 §3.1): the library cannot sign it, so the JWS is assembled here, as the RFC spells it.
        var header = JsonSerializer.Serialize(new Dictionary<string, string> { ["alg"] = GrantValidator.EdDsa, ["kid"] = key.KeyId, ["typ"] = "JWT" });
        var signingInput = $"{Base64UrlEncoder.Encode(header)}.{Base64UrlEncoder.Encode(payload)}";
        var signature = SignatureAlgorithm.Ed25519.Sign(key.PrivateKey, System.Text.Encoding.ASCII.GetBytes(signingInput));
        return $"{signingInput}.{Base64UrlEncoder.Encode(signature)}";
    }

    private static string Payload(Grant grant)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteString("sub", grant.Subject.ToString());
            json.WriteString("room", grant.Room);
            json.WriteNumber("nbf", grant.NotBefore.ToUnixTimeSeconds());
            json.WriteNumber("exp", grant.Expires.ToUnixTimeSeconds());
            json.WriteNumber("iat", grant.NotBefore.ToUnixTimeSeconds());
            if (grant.Name is { } name) json.WriteString("name", name);
            json.WriteBoolean("publish", grant.Publish);
            json.WriteBoolean("subscribe", grant.Subscribe);
            json.WriteBoolean("admin", grant.Admin);
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
