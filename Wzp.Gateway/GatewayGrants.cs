using System.Text.Json;
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
        foreach (var failure in ValidateReload()) yield return failure;
        foreach (var kid in Hs256KeyFiles.Keys.Concat(Ed25519PublicKeys.Keys).Where(k => !GrantKey.IsValidKeyId(k)))
            yield return $"Gateway:Grants key id '{kid}' must be 1 to 64 of letters, digits, '.', '_' and '-'.";
        foreach (var kid in Hs256KeyFiles.Keys.Intersect(Ed25519PublicKeys.Keys, StringComparer.Ordinal))
            yield return $"Gateway:Grants key id '{kid}' names both an HS256 secret and an Ed25519 key; key ids must be unique.";
        foreach (var (kid, file) in Hs256KeyFiles.Where(p => string.IsNullOrWhiteSpace(p.Value)))
            yield return $"Gateway:Grants:Hs256KeyFiles:{kid} is empty; give the path of the key file.";
        foreach (var (kid, key) in Ed25519PublicKeys.Where(p => !GrantKey.TryParsePublicKey(p.Value, out _)))
            yield return $"Gateway:Grants:Ed25519PublicKeys:{kid} is not an Ed25519 public key (64 hex digits or 43 base64url characters).";
        if (!Required) yield break;
        if (Hs256KeyFiles.Count + Ed25519PublicKeys.Count == 0 && string.IsNullOrWhiteSpace(KeySetFile))
            yield return "Gateway:Grants:Required is true but no key is accepted: set Gateway:Grants:Hs256KeyFiles:<kid>, Gateway:Grants:Ed25519PublicKeys:<kid> or Gateway:Grants:KeySetFile.";
        if (token.Length > 0)
            yield return "Gateway:Token and Gateway:Grants:Required exclude each other: with grants required the token of every confirm is a grant.";
    }

    /// <summary>
    /// A file of accepted keys as a JWK Set (RFC 7517 §5: <c>{"keys":[...]}</c>), each an HS256 secret or an Ed25519
    /// key as <c>wzp grant key new</c> writes them (a private Ed25519 key is reduced to its public half). Unlike the
    /// settings above it can gain and lose key ids while the gateway runs: it is read again every
    /// <see cref="KeyReloadPeriod"/>, which is how keys rotate without a restart. Defaults to empty (none). Holding
    /// HS256 secrets, it must be private (mode 0600).
    /// </summary>
    public string KeySetFile { get; set; } = "";

    /// <summary>
    /// How often the key files (<see cref="Hs256KeyFiles"/> and <see cref="KeySetFile"/>) are checked for changes; a
    /// changed file is read again and its keys replace the previous ones for new handshakes. A file that fails to
    /// read or parse keeps the previous keys (logged and counted). Defaults to 10 seconds; at least 1 second.
    /// </summary>
    public TimeSpan KeyReloadPeriod { get; set; } = TimeSpan.FromSeconds(10);

    internal IEnumerable<string> ValidateReload()
    {
        if (KeyReloadPeriod < TimeSpan.FromSeconds(1)) yield return "Gateway:Grants:KeyReloadPeriod must be at least 1 second.";
    }

    /// <summary>The validator for the handshake, or null when grants are not required. Reads the key files.</summary>
    /// <exception cref="GatewayStartupException">A key file is missing, unreadable, malformed or names another key id.</exception>
    internal GrantValidator? CreateValidator(TimeProvider time)
    {
        if (!Required) return null;
        try
        {
            return CreateValidator(LoadKeys(), time);
        }
        catch (GrantKeyFileException e)
        {
            throw new GatewayStartupException(e.Message, e.InnerException);
        }
    }

    internal GrantValidator CreateValidator(List<GrantKey> keys, TimeProvider time) =>
        new(keys, new GrantValidationOptions { ClockSkew = ClockSkew, MaxLifetime = MaxLifetime }, time);

    /// <summary>
    /// For the room administration API on silos, which accepts admin grants of the same issuers: a validator of the
    /// configured keys whether or not <see cref="Required"/> is set; null when no key is configured.
    /// </summary>
    /// <exception cref="GatewayStartupException">A key file cannot be read or parsed (the message names it, never key material).</exception>
    public GrantValidator? CreateAdminValidator(TimeProvider time)
    {
        if (Hs256KeyFiles.Count + Ed25519PublicKeys.Count == 0 && string.IsNullOrWhiteSpace(KeySetFile)) return null;
        try
        {
            return CreateValidator(LoadKeys(), time);
        }
        catch (GrantKeyFileException e)
        {
            throw new GatewayStartupException(e.Message, e.InnerException);
        }
    }

    /// <summary>When each key file was last written and how long it is: a change of either means read it again.</summary>
    public string KeyFilesStamp()
    {
        var stamp = new System.Text.StringBuilder();
        foreach (var path in Hs256KeyFiles.Values.Append(KeySetFile).Where(p => p.Length > 0))
        {
            var info = new FileInfo(path);
            stamp.Append(path).Append('|').Append(info.Exists ? $"{info.LastWriteTimeUtc.Ticks}/{info.Length}" : "missing").Append('\n');
        }
        return stamp.ToString();
    }

    /// <summary>Every accepted key: the HS256 files, the Ed25519 settings, then the key set file.</summary>
    /// <exception cref="GrantKeyFileException">A file cannot be read or parsed, a key id repeats, or no key is left; never with key material.</exception>
    internal List<GrantKey> LoadKeys()
    {
        var keys = new List<GrantKey>();
        try
        {
            foreach (var (kid, path) in Hs256KeyFiles)
            {
                var key = ParseKey(ReadFile(path, $"grant key '{kid}'"), $"grant key '{kid}' in '{path}'");
                if (key.Kind != GrantKeyKind.Hs256 || key.KeyId != kid)
                {
                    var what = key.Kind != GrantKeyKind.Hs256 ? "an Ed25519 key, not an HS256 secret (give its public key in Gateway:Grants:Ed25519PublicKeys)" : $"key id '{key.KeyId}'";
                    key.Dispose();
                    throw new GrantKeyFileException($"grant key '{kid}' in '{path}' is {what}");
                }
                keys.Add(key);
            }
            foreach (var (kid, text) in Ed25519PublicKeys)
            {
                GrantKey.TryParsePublicKey(text, out var publicKey);
                keys.Add(GrantKey.FromPublicKey(kid, publicKey));
            }
            if (KeySetFile.Length > 0) keys.AddRange(ReadKeySet(KeySetFile));
            var repeated = keys.GroupBy(k => k.KeyId, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (repeated is not null) throw new GrantKeyFileException($"grant key id '{repeated.Key}' is given twice (settings and '{KeySetFile}')");
            if (keys.Count == 0) throw new GrantKeyFileException($"no grant key is accepted: the key set '{KeySetFile}' is empty and no other key is set");
            return keys;
        }
        catch
        {
            foreach (var key in keys) key.Dispose();
            throw;
        }
    }

    private static List<GrantKey> ReadKeySet(string path)
    {
        var text = ReadFile(path, "grant key set");
        var keys = new List<GrantKey>();
        try
        {
            using var document = ParseSet(text, path);
            var index = 0;
            foreach (var element in document.RootElement.GetProperty("keys").EnumerateArray())
            {
                var key = ParseKey(element.GetRawText(), $"grant key set '{path}', key {index++}");
                if (key.Kind == GrantKeyKind.Ed25519 && key.CanSign)
                {
                    // The gateway only checks: the private half is not kept in memory.
                    var publicHalf = key.ToPublic();
                    key.Dispose();
                    key = publicHalf;
                }
                keys.Add(key);
            }
            return keys;
        }
        catch
        {
            foreach (var key in keys) key.Dispose();
            throw;
        }
    }

    private static JsonDocument ParseSet(string text, string path)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException)
        {
            throw new GrantKeyFileException($"grant key set '{path}' is not JSON (a JWK Set: {{\"keys\":[...]}})");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("keys", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            document.Dispose();
            throw new GrantKeyFileException($"grant key set '{path}' is not a JWK Set (an object with an array 'keys')");
        }
        return document;
    }

    private static string ReadFile(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GrantKeyFileException($"{what}: cannot read '{path}': {e.Message}", e);
        }
    }

    private static GrantKey ParseKey(string json, string where)
    {
        try
        {
            return GrantKey.Parse(json);
        }
        catch (FormatException e)
        {
            // GrantKey.Parse says what is wrong and never quotes key material.
            throw new GrantKeyFileException($"{where}: {e.Message}", e);
        }
    }
}

/// <summary>A grant key file that cannot be used; the message names the file and the problem, never key material.</summary>
internal sealed class GrantKeyFileException(string message, Exception? inner = null) : Exception(message, inner);
