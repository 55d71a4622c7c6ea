using Microsoft.Extensions.Logging;
using Wzp.Protocol;

namespace Wzp.Gateway;

/// <summary>How <see cref="GatewayKeys.ReloadCredential"/> went.</summary>
public enum CredentialReload
{
    /// <summary>The file holds the credential already in use (or a self-issued one is far from expiry).</summary>
    Unchanged,
    /// <summary>A new credential is in use: new handshakes and links present it.</summary>
    Renewed,
    /// <summary>The file holds a credential that cannot be used; the current one stays (the reason was logged).</summary>
    Refused,
}

/// <summary>
/// The gateway's identity and the credential the cluster issued it, loaded and checked at start. The credential
/// can be replaced while the gateway runs (<see cref="ReloadCredential"/>): an operator renews it on disk before
/// it expires, and no restart (which would drop every call) is needed.
/// </summary>
public sealed partial class GatewayKeys : IDisposable
{
    private readonly GatewayOptions _options;
    private volatile GatewayCredential _credential;

    private GatewayKeys(Identity identity, GatewayCredential credential, GatewayOptions options)
    {
        Identity = identity;
        _credential = credential;
        _options = options;
    }

    public Identity Identity { get; }

    /// <summary>The credential new handshakes and link offers present; replaced by <see cref="ReloadCredential"/>.</summary>
    public GatewayCredential Credential => _credential;

    public Fingerprint ClusterFingerprint => Credential.ClusterFingerprint;

    /// <summary>
    /// Loads (or on first start creates) the identity, then loads the credential, or self-issues one in
    /// all-in-one mode. Refuses a credential that is missing, expired, not yet valid, issued for another key or
    /// id, or not signed by the cluster key it names.
    /// </summary>
    /// <exception cref="GatewayStartupException">With a message an operator can act on.</exception>
    /// <param name="options">Where the files are.</param>
    /// <param name="time">The clock the credential is checked against.</param>
    /// <param name="logger">Where warnings go (a seed file others can read); nowhere when null.</param>
    public static GatewayKeys Load(GatewayOptions options, TimeProvider time, ILogger? logger = null)
    {
        Identity identity;
        try
        {
            identity = SeedFile.LoadOrCreate(options.ResolvedIdentityFile, out _);
            WarnIfExposed(logger, options.ResolvedIdentityFile);
        }
        catch (SeedFileException e)
        {
            throw new GatewayStartupException($"gateway identity: {e.Message}", e);
        }
        try
        {
            var credential = LoadCredential(options, identity, time, logger);
            return new GatewayKeys(identity, credential, options);
        }
        catch
        {
            identity.Dispose();
            throw;
        }
    }

    private static GatewayCredential LoadCredential(GatewayOptions options, Identity identity, TimeProvider time, ILogger? logger)
    {
        var path = options.ResolvedCredentialFile;
        if (!File.Exists(path))
        {
            if (!options.SelfIssueCredential)
                throw new GatewayStartupException(
                    $"no gateway credential at '{path}': issue one with 'wzp cluster issue --gateway-id {options.GatewayId} " +
                    $"--gateway-key {Convert.ToHexStringLower(identity.PublicKey)}' and copy it there");
            return SelfIssue(options, identity, time, path, logger);
        }
        return ReadCredential(options, identity, time, path, clusterKey: null, out var credential) is { } problem
            ? throw new GatewayStartupException(problem.Message, problem.Inner)
            : credential!;
    }

    /// <summary>Null when the file at <paramref name="path"/> holds a credential this gateway can present now.</summary>
    private static (string Message, Exception? Inner)? ReadCredential(GatewayOptions options, Identity identity, TimeProvider time, string path,
        byte[]? clusterKey, out GatewayCredential? credential)
    {
        credential = null;
        GatewayCredential read;
        try
        {
            read = GatewayCredential.FromJson(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return ($"gateway credential '{path}' is unreadable or malformed: {e.Message}", e);
        }
        if (!read.GatewayKey.AsSpan().SequenceEqual(identity.PublicKey))
            return ($"gateway credential '{path}' was issued for another gateway key, not this gateway's identity ({identity.Fingerprint})", null);
        if (read.GatewayId != options.GatewayId)
            return ($"gateway credential '{path}' names gateway '{read.GatewayId}', but Gateway:GatewayId is '{options.GatewayId}'", null);
        // A renewal must come from the cluster key clients already pinned: another key would make every client of
        // this gateway refuse it, which is worse than keeping the current credential until it expires.
        if (clusterKey is not null && !read.ClusterKey.AsSpan().SequenceEqual(clusterKey))
            return ($"gateway credential '{path}' is signed by another cluster key ({read.ClusterFingerprint}) than the one in use", null);
        var status = read.Verify(read.ClusterKey, time.GetUtcNow());
        if (status != CredentialStatus.Valid)
            return ($"gateway credential '{path}' is not usable: {Describe(status)}", null);
        credential = read;
        return null;
    }

    /// <summary>Time left until the credential in use expires (negative once it has).</summary>
    public TimeSpan TimeToExpiry(TimeProvider time) =>
        DateTimeOffset.FromUnixTimeSeconds((long)Math.Min(_credential.NotAfter, (ulong)DateTimeOffset.MaxValue.ToUnixTimeSeconds())) - time.GetUtcNow();

    /// <summary>
    /// Reads the credential file again and, when it holds a different credential that this gateway can present
    /// (its key, its id, the same cluster key, valid now), puts it in use. A self-issuing gateway issues itself a
    /// new credential once the current one is within <see cref="GatewayOptions.CredentialExpiryWarning"/> of its end.
    /// A file that is missing, half-written or wrong leaves the current credential in use.
    /// </summary>
    public CredentialReload ReloadCredential(TimeProvider time, ILogger logger)
    {
        var path = _options.ResolvedCredentialFile;
        var current = _credential;
        if (_options.SelfIssueCredential && TimeToExpiry(time) < _options.CredentialExpiryWarning &&
            (!File.Exists(path) || ReadCredential(_options, Identity, time, path, current.ClusterKey, out var onDisk) is not null || onDisk!.Equals(current)))
        {
            try
            {
                _credential = SelfIssue(_options, Identity, time, path, logger);
            }
            catch (Exception e) when (e is GatewayStartupException or IOException or UnauthorizedAccessException)
            {
                Log.CredentialRefused(logger, path, e.Message);
                return CredentialReload.Refused;
            }
            Log.CredentialRenewed(logger, path, DateTimeOffset.FromUnixTimeSeconds((long)_credential.NotAfter));
            return CredentialReload.Renewed;
        }
        if (!File.Exists(path)) return CredentialReload.Unchanged;
        if (ReadCredential(_options, Identity, time, path, current.ClusterKey, out var renewed) is { } problem)
        {
            Log.CredentialRefused(logger, path, problem.Message);
            return CredentialReload.Refused;
        }
        if (renewed!.Equals(current)) return CredentialReload.Unchanged;
        _credential = renewed;
        Log.CredentialRenewed(logger, path, DateTimeOffset.FromUnixTimeSeconds((long)renewed.NotAfter));
        return CredentialReload.Renewed;
    }

    /// <summary>
    /// Logs a warning when the credential in use expires within <see cref="GatewayOptions.CredentialExpiryWarning"/>:
    /// at its end every client refuses this gateway. True when it warned.
    /// </summary>
    public bool WarnIfExpiring(TimeProvider time, ILogger logger)
    {
        var left = TimeToExpiry(time);
        if (left >= _options.CredentialExpiryWarning) return false;
        Log.CredentialExpiring(logger, DateTimeOffset.FromUnixTimeSeconds((long)_credential.NotAfter), left, _options.ResolvedCredentialFile);
        return true;
    }

    /// <summary>Warns when a secret's file can be read or written by others than its owner.</summary>
    internal static void WarnIfExposed(ILogger? logger, string path)
    {
        if (logger is not null && PrivateFile.IsExposed(path)) Log.SeedExposed(logger, path);
    }

    private static GatewayCredential SelfIssue(GatewayOptions options, Identity identity, TimeProvider time, string path, ILogger? logger)
    {
        Identity cluster;
        try
        {
            cluster = SeedFile.LoadOrCreate(options.ResolvedClusterKeyFile, out _);
            WarnIfExposed(logger, options.ResolvedClusterKeyFile);
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
            // Atomically: a renewal must never leave a half-written credential for the next reload or restart.
            PrivateFile.WriteAtomically(path, credential.ToJson(), ownerOnly: false);
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 50, Level = LogLevel.Warning,
            Message = "Seed file '{Path}' can be read or written by users other than its owner; anyone who read it holds this key. Run 'chmod 600' on it (and consider a new key)")]
        public static partial void SeedExposed(ILogger logger, string path);

        [LoggerMessage(EventId = 51, Level = LogLevel.Information, Message = "Gateway credential renewed from '{Path}'; valid until {NotAfter:u}")]
        public static partial void CredentialRenewed(ILogger logger, string path, DateTimeOffset notAfter);

        [LoggerMessage(EventId = 52, Level = LogLevel.Warning, Message = "Gateway credential file '{Path}' not used; keeping the current credential: {Reason}")]
        public static partial void CredentialRefused(ILogger logger, string path, string reason);

        [LoggerMessage(EventId = 53, Level = LogLevel.Warning,
            Message = "Gateway credential expires at {NotAfter:u} (in {Left}); at that moment every client refuses this gateway. Issue a new one with 'wzp cluster issue' and replace '{Path}': it is picked up without a restart")]
        public static partial void CredentialExpiring(ILogger logger, DateTimeOffset notAfter, TimeSpan left, string path);
    }
}

/// <summary>The gateway cannot start; the message says why and what to do.</summary>
public sealed class GatewayStartupException(string message, Exception? inner = null) : Exception(message, inner);
