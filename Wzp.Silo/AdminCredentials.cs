using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Wzp.Gateway;
using Wzp.Protocol;
using Wzp.Protocol.Grants;

namespace Wzp.Silo;

/// <summary>Who made an administration request, or why it is refused.</summary>
/// <param name="Who">For the log: <c>operator</c>, or the grant's key id and subject; never a secret.</param>
/// <param name="Status">200 when admitted; 401 without a valid credential; 403 for a valid grant that does not cover the request.</param>
/// <param name="Problem">What the client is told when refused.</param>
internal readonly record struct AdminCaller(string Who, int Status, string? Problem)
{
    public bool Admitted => Status == StatusCodes.Status200OK;

    public static AdminCaller Refused(int status, string problem) => new("", status, problem);
}

/// <summary>How a request proves that the identity its admin grant names sent it (what <c>wzp admin --grant</c> adds).</summary>
public static class AdminProof
{
    /// <summary>Header with the identity's 32-byte Ed25519 public key (base64).</summary>
    public const string IdentityHeader = "Wzp-Identity";

    /// <summary>Header with the request time, Unix seconds; within <c>Gateway:Grants:ClockSkew</c> of the silo's clock.</summary>
    public const string DateHeader = "Wzp-Date";

    /// <summary>Header with the identity's Ed25519 signature (base64) over <see cref="SigningInput"/>.</summary>
    public const string SignatureHeader = "Wzp-Signature";

    /// <summary>What the identity signs: <c>wzp-admin-v1\n{METHOD}\n{raw target}\n{unix seconds}</c> in UTF-8.</summary>
    public static byte[] SigningInput(string method, string target, long unixSeconds)
    {
        ArgumentNullException.ThrowIfNull(method);
        return Encoding.UTF8.GetBytes($"wzp-admin-v1\n{method.ToUpperInvariant()}\n{target}\n{unixSeconds.ToString(CultureInfo.InvariantCulture)}");
    }
}

/// <summary>
/// The two credentials of the administration API. An operator key: <c>Authorization: Bearer &lt;key&gt;</c>, compared
/// as SHA-256 digests in constant time (only the digest is kept). Or an admin grant (a JWT with <c>admin</c>, from
/// an issuer in <c>Gateway:Grants</c>), bound to its identity as on the wire: the request carries the identity's
/// public key and its signature over the method, the raw target and the time (<see cref="AdminProof.SigningInput"/>), so a
/// copied grant is useless without the identity's private key.
/// </summary>
internal sealed partial class AdminCredentials
{
    private static readonly TimeSpan GrantKeyCheckPeriod = TimeSpan.FromSeconds(10);

    private readonly byte[]? _operatorKeyDigest;
    private readonly GatewayGrantOptions _grants;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _reload = new();
    private volatile GrantValidator? _validator;
    private string _stamp;
    private long _checkedAt;

    public AdminCredentials(byte[]? operatorKeyDigest, GatewayGrantOptions grants, TimeProvider time, ILogger logger)
    {
        _operatorKeyDigest = operatorKeyDigest;
        _grants = grants;
        _time = time;
        _logger = logger;
        _stamp = grants.KeyFilesStamp();
        _validator = grants.CreateAdminValidator(time);
        _checkedAt = time.GetTimestamp();
    }

    /// <summary>True when admin grants can be checked (some issuer key is configured).</summary>
    public bool AcceptsGrants => _validator is not null;

    /// <summary>The digest the operator key file's contents are compared by.</summary>
    public static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key.Trim()));

    /// <summary>Checks the request's credential for <paramref name="room"/> (null: every room, as listing them needs).</summary>
    public AdminCaller Authenticate(HttpContext context, string? room)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, "no credential: send 'Authorization: Bearer <operator key or admin grant>'");
        var token = header["Bearer ".Length..].Trim();
        if (!token.Contains('.', StringComparison.Ordinal))
        {
            // Digests of equal length compared in constant time: neither the key nor its length leaks by timing.
            return _operatorKeyDigest is not null && CryptographicOperations.FixedTimeEquals(Digest(token), _operatorKeyDigest)
                ? new AdminCaller("operator", StatusCodes.Status200OK, null)
                : AdminCaller.Refused(StatusCodes.Status401Unauthorized, "the operator key is not valid");
        }
        return AuthenticateGrant(context, token, room);
    }

    private AdminCaller AuthenticateGrant(HttpContext context, string token, string? room)
    {
        var validator = CurrentValidator();
        if (validator is null) return AdminCaller.Refused(StatusCodes.Status401Unauthorized, "this silo accepts no grants (no key in Gateway:Grants)");
        var headers = context.Request.Headers;
        byte[] identityKey, signature;
        try
        {
            identityKey = Convert.FromBase64String(headers[AdminProof.IdentityHeader].ToString());
            signature = Convert.FromBase64String(headers[AdminProof.SignatureHeader].ToString());
        }
        catch (FormatException)
        {
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"a grant needs the headers {AdminProof.IdentityHeader} and {AdminProof.SignatureHeader} in base64");
        }
        if (identityKey.Length != Identity.PublicKeySize || signature.Length != Identity.SignatureSize)
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"a grant needs {AdminProof.IdentityHeader} (a 32-byte public key) and {AdminProof.SignatureHeader} (a 64-byte signature)");
        if (!long.TryParse(headers[AdminProof.DateHeader].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var date))
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"a grant needs the header {AdminProof.DateHeader} (Unix seconds)");
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        if (Math.Abs(now - date) > (long)_grants.ClockSkew.TotalSeconds + 1)
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"{AdminProof.DateHeader} is {date}, now is {now}: more than {_grants.ClockSkew} apart");
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.ToString();
        if (!Identity.Verify(identityKey, AdminProof.SigningInput(context.Request.Method, target, date), signature))
            return AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"{AdminProof.SignatureHeader} does not verify with {AdminProof.IdentityHeader} for this request");

        var identity = Fingerprint.Of(identityKey);
        // Listing every room needs a grant for every room.
        var check = validator.Validate(token, identity, room ?? "*");
        if (!check.Succeeded)
        {
            Log.GrantRefused(_logger, check.KeyId ?? "(none)", identity.ToString(), check.Reason);
            return check.Reason == GrantFailure.Room
                ? AdminCaller.Refused(StatusCodes.Status403Forbidden, $"grant refused: {check.Failure}")
                : AdminCaller.Refused(StatusCodes.Status401Unauthorized, $"grant refused: {check.Failure}");
        }
        if (!check.Grant!.Admin) return AdminCaller.Refused(StatusCodes.Status403Forbidden, "the grant has no 'admin'");
        return new AdminCaller($"grant of key {check.KeyId} for {identity}", StatusCodes.Status200OK, null);
    }

    // The same key files as the gateways', read again when they change, so a rotation reaches the API too.
    private GrantValidator? CurrentValidator()
    {
        lock (_reload)
        {
            if (_time.GetElapsedTime(_checkedAt) < GrantKeyCheckPeriod) return _validator;
            _checkedAt = _time.GetTimestamp();
            var stamp = _grants.KeyFilesStamp();
            if (stamp == _stamp) return _validator;
            _stamp = stamp;
            try
            {
                _validator = _grants.CreateAdminValidator(_time);
                Log.GrantKeysReloaded(_logger);
            }
            catch (GatewayStartupException e)
            {
                Log.GrantKeysReloadFailed(_logger, e.Message);
            }
            return _validator;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3110, Level = LogLevel.Information, Message = "Admin grant of key {KeyId} presented by {Subject} refused: {Check}")]
        public static partial void GrantRefused(ILogger logger, string keyId, string subject, GrantFailure check);

        [LoggerMessage(EventId = 3111, Level = LogLevel.Information, Message = "Room administration API: grant keys reloaded")]
        public static partial void GrantKeysReloaded(ILogger logger);

        [LoggerMessage(EventId = 3112, Level = LogLevel.Warning, Message = "Room administration API: grant keys changed but cannot be used ({Problem}); the previous keys stay accepted")]
        public static partial void GrantKeysReloadFailed(ILogger logger, string problem);
    }
}
