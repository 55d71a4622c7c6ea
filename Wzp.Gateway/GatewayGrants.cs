using Wzp.Protocol.Grants;

namespace Wzp.Gateway;

/// <summary>The <c>Gateway:Grants</c> section: whether members need a signed grant, and the issuer keys accepted.</summary>
public sealed class GatewayGrantOptions
{
    /// <summary>
    /// Every confirm must carry a grant (a JWT) signed by one of the keys below, issued to the identity that signed
    /// the hello and for its room. Defaults to false: the gateway admits anyone (or checks <c>Gateway:Token</c>).
    /// </summary>
    public bool Required { get; set; }

    /// <summary>
    /// HS256 issuer secrets: key id to the path of a key file from <c>wzp grant key new --kind hs256</c> (its
    /// <c>kid</c> must be the same id). Defaults to none. Whoever reads these files can mint grants: mode 0600.
    /// </summary>
    public Dictionary<string, string> Hs256KeyFiles { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Ed25519 issuer public keys: key id to the key (64 hex digits, or the 43 base64url characters of a JWK's
    /// <c>x</c>) as <c>wzp grant key new --kind ed25519</c> prints it. Defaults to none. A gateway holding only these
    /// cannot mint grants.
    /// </summary>
    public Dictionary<string, string> Ed25519PublicKeys { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Clock difference tolerated on a grant's <c>nbf</c> and <c>exp</c>. Defaults to 30 seconds; at most 5 minutes.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest lifetime (<c>exp - nbf</c>) of a grant accepted. Defaults to 1 day.</summary>
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromDays(1);

    internal IEnumerable<string> Validate(string token)
    {
        if (ClockSkew < TimeSpan.Zero || ClockSkew > TimeSpan.FromMinutes(5)) yield return "Gateway:Grants:ClockSkew must be 0 to 5 minutes.";
        if (MaxLifetime <= TimeSpan.Zero) yield return "Gateway:Grants:MaxLifetime must be positive.";
        foreach (var kid in Hs256KeyFiles.Keys.Concat(Ed25519PublicKeys.Keys).Where(k => !GrantKey.IsValidKeyId(k)))
            yield return $"Gateway:Grants key id '{kid}' must be 1 to 64 of letters, digits, '.', '_' and '-'.";
        foreach (var kid in Hs256KeyFiles.Keys.Intersect(Ed25519PublicKeys.Keys, StringComparer.Ordinal))
            yield return $"Gateway:Grants key id '{kid}' names both an HS256 secret and an Ed25519 key; key ids must be unique.";
        foreach (var (kid, file) in Hs256KeyFiles.Where(p => string.IsNullOrWhiteSpace(p.Value)))
            yield return $"Gateway:Grants:Hs256KeyFiles:{kid} is empty; give the path of the key file.";
        foreach (var (kid, key) in Ed25519PublicKeys.Where(p => !GrantKey.TryParsePublicKey(p.Value, out _)))
            yield return $"Gateway:Grants:Ed25519PublicKeys:{kid} is not an Ed25519 public key (64 hex digits or 43 base64url characters).";
        if (!Required) yield break;
        if (Hs256KeyFiles.Count + Ed25519PublicKeys.Count == 0)
            yield return "Gateway:Grants:Required is true but no key is accepted: set Gateway:Grants:Hs256KeyFiles:<kid> or Gateway:Grants:Ed25519PublicKeys:<kid>.";
        if (token.Length > 0)
            yield return "Gateway:Token and Gateway:Grants:Required exclude each other: with grants required the token of every confirm is a grant.";
    }

    /// <summary>The validator for the handshake, or null when grants are not required. Reads the HS256 key files.</summary>
    /// <exception cref="GatewayStartupException">A key file is missing, unreadable, malformed or names another key id.</exception>
    internal GrantValidator? CreateValidator(TimeProvider time)
    {
        if (!Required) return null;
        var keys = new List<GrantKey>();
        foreach (var (kid, path) in Hs256KeyFiles)
        {
            GrantKey key;
            try
            {
                key = GrantKey.Parse(File.ReadAllText(path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new GatewayStartupException($"grant key '{kid}': cannot read '{path}': {e.Message}", e);
            }
            catch (FormatException e)
            {
                throw new GatewayStartupException($"grant key '{kid}' in '{path}': {e.Message}", e);
            }
            if (key.Kind != GrantKeyKind.Hs256 || key.KeyId != kid)
            {
                var what = key.Kind != GrantKeyKind.Hs256 ? "an Ed25519 key, not an HS256 secret (give its public key in Gateway:Grants:Ed25519PublicKeys)" : $"key id '{key.KeyId}'";
                key.Dispose();
                throw new GatewayStartupException($"grant key '{kid}' in '{path}' is {what}");
            }
            keys.Add(key);
        }
        foreach (var (kid, text) in Ed25519PublicKeys)
        {
            GrantKey.TryParsePublicKey(text, out var publicKey);
            keys.Add(GrantKey.FromPublicKey(kid, publicKey));
        }
        return new GrantValidator(keys, new GrantValidationOptions { ClockSkew = ClockSkew, MaxLifetime = MaxLifetime }, time);
    }
}
