using Wzp.Protocol;

namespace Wzp.Gateway;

/// <summary>The gateway's identity and the credential the cluster issued it, loaded and checked at start.</summary>
public sealed class GatewayKeys : IDisposable
{
    private GatewayKeys(Identity identity, GatewayCredential credential)
    {
        Identity = identity;
        Credential = credential;
    }

    public Identity Identity { get; }

    public GatewayCredential Credential { get; }

    public Fingerprint ClusterFingerprint => Credential.ClusterFingerprint;

    /// <summary>
    /// Loads (or on first start creates) the identity, then loads the credential, or self-issues one in
    /// all-in-one mode. Refuses a credential that is missing, expired, not yet valid, issued for another key or
    /// id, or not signed by the cluster key it names.
    /// </summary>
    /// <exception cref="GatewayStartupException">With a message an operator can act on.</exception>
    public static GatewayKeys Load(GatewayOptions options, TimeProvider time)
    {
        Identity identity;
        try
        {
            identity = SeedFile.LoadOrCreate(options.ResolvedIdentityFile, out _);
        }
        catch (SeedFileException e)
        {
            throw new GatewayStartupException($"gateway identity: {e.Message}", e);
        }
        try
        {
            var credential = LoadCredential(options, identity, time);
            return new GatewayKeys(identity, credential);
        }
        catch
        {
            identity.Dispose();
            throw;
        }
    }

    private static GatewayCredential LoadCredential(GatewayOptions options, Identity identity, TimeProvider time)
    {
        var path = options.ResolvedCredentialFile;
        if (!File.Exists(path))
        {
            if (!options.SelfIssueCredential)
                throw new GatewayStartupException(
                    $"no gateway credential at '{path}': issue one with 'wzp cluster issue --gateway-id {options.GatewayId} " +
                    $"--gateway-key {Convert.ToHexStringLower(identity.PublicKey)}' and copy it there");
            return SelfIssue(options, identity, time, path);
        }
        GatewayCredential credential;
        try
        {
            credential = GatewayCredential.FromJson(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new GatewayStartupException($"gateway credential '{path}' is unreadable or malformed: {e.Message}", e);
        }
        if (!credential.GatewayKey.AsSpan().SequenceEqual(identity.PublicKey))
            throw new GatewayStartupException($"gateway credential '{path}' was issued for another gateway key, not this gateway's identity ({identity.Fingerprint})");
        if (credential.GatewayId != options.GatewayId)
            throw new GatewayStartupException($"gateway credential '{path}' names gateway '{credential.GatewayId}', but Gateway:GatewayId is '{options.GatewayId}'");
        var status = credential.Verify(credential.ClusterKey, time.GetUtcNow());
        if (status != CredentialStatus.Valid)
            throw new GatewayStartupException($"gateway credential '{path}' is not usable: {Describe(status)}");
        return credential;
    }

    private static GatewayCredential SelfIssue(GatewayOptions options, Identity identity, TimeProvider time, string path)
    {
        Identity cluster;
        try
        {
            cluster = SeedFile.LoadOrCreate(options.ResolvedClusterKeyFile, out _);
        }
        catch (SeedFileException e)
        {
            throw new GatewayStartupException($"cluster key: {e.Message}", e);
        }
        using (cluster)
        {
            var now = time.GetUtcNow();
            var credential = GatewayCredential.Issue(cluster, options.GatewayId, identity.PublicKey, now.AddMinutes(-5), now + options.SelfIssuedValidity);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.WriteAllText(path, credential.ToJson());
            return credential;
        }
    }

    private static string Describe(CredentialStatus status) => status switch
    {
        CredentialStatus.Expired => "it has expired; issue a new one with 'wzp cluster issue'",
        CredentialStatus.NotYetValid => "it is not valid yet (check this machine's clock)",
        CredentialStatus.BadSignature => "its signature does not verify against the cluster key it names",
        _ => "it is malformed",
    };

    public void Dispose() => Identity.Dispose();
}

/// <summary>The gateway cannot start; the message says why and what to do.</summary>
public sealed class GatewayStartupException(string message, Exception? inner = null) : Exception(message, inner);
