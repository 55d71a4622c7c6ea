using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Serialization;

namespace Wzp.Protocol;

/// <summary>
/// A gateway's identity key signed by the cluster key for a validity window (PROTOCOL.md §2), so a client
/// pins one cluster fingerprint and can land on any gateway. Serialized as the JSON object of
/// <c>welcome.credential</c> (byte strings in base64) and, for transcripts, as canonical bytes.
/// </summary>
public sealed record GatewayCredential(
    string GatewayId,
    byte[] GatewayKey,
    ulong NotBefore,
    ulong NotAfter,
    byte[] ClusterKey,
    byte[] Signature)
{
    public const int MaxGatewayIdBytes = 255;
    private static ReadOnlySpan<byte> Label => "wzp/1 gateway credential\0"u8;

    /// <summary>Signs a credential for <paramref name="gatewayKey"/> with the cluster key.</summary>
    public static GatewayCredential Issue(Identity cluster, string gatewayId, ReadOnlySpan<byte> gatewayKey, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ValidateGatewayId(gatewayId);
        if (gatewayKey.Length != Identity.PublicKeySize) throw new ArgumentException("A gateway key is 32 bytes.", nameof(gatewayKey));
        if (notAfter < notBefore) throw new ArgumentException("notAfter precedes notBefore.", nameof(notAfter));
        var unsigned = new GatewayCredential(gatewayId, gatewayKey.ToArray(), (ulong)notBefore.ToUnixTimeSeconds(),
            (ulong)notAfter.ToUnixTimeSeconds(), cluster.PublicKey, new byte[Identity.SignatureSize]);
        return unsigned with { Signature = cluster.Sign(unsigned.SignedBytes()) };
    }

    /// <summary><c>label ‖ lp(gatewayId) ‖ gatewayKey ‖ u64 notBefore ‖ u64 notAfter</c>.</summary>
    public byte[] SignedBytes()
    {
        var id = Encoding.UTF8.GetBytes(GatewayId);
        var bytes = new byte[Label.Length + 2 + id.Length + GatewayKey.Length + 16];
        var span = bytes.AsSpan();
        Label.CopyTo(span);
        span = span[Label.Length..];
        Primitives.WriteU16(span, id.Length);
        id.CopyTo(span[2..]);
        span = span[(2 + id.Length)..];
        GatewayKey.CopyTo(span);
        span = span[GatewayKey.Length..];
        BinaryPrimitives.WriteUInt64BigEndian(span, NotBefore);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], NotAfter);
        return bytes;
    }

    /// <summary>Signed bytes ‖ clusterKey ‖ signature: what transcripts hash.</summary>
    public byte[] CanonicalBytes() => [.. SignedBytes(), .. ClusterKey, .. Signature];

    /// <summary>
    /// Checks the credential as a client does: well-formed, issued by <paramref name="clusterKey"/>, correctly
    /// signed, and valid at <paramref name="now"/>.
    /// </summary>
    public CredentialStatus Verify(ReadOnlySpan<byte> clusterKey, DateTimeOffset now)
    {
        if (!IsWellFormed) return CredentialStatus.Malformed;
        if (!clusterKey.SequenceEqual(ClusterKey)) return CredentialStatus.WrongCluster;
        if (!Identity.Verify(ClusterKey, SignedBytes(), Signature)) return CredentialStatus.BadSignature;
        var seconds = now.ToUnixTimeSeconds();
        if (seconds < 0 || (ulong)seconds < NotBefore) return CredentialStatus.NotYetValid;
        if ((ulong)seconds > NotAfter) return CredentialStatus.Expired;
        return CredentialStatus.Valid;
    }

    [JsonIgnore]
    public bool IsWellFormed =>
        GatewayId is { Length: > 0 } && Encoding.UTF8.GetByteCount(GatewayId) <= MaxGatewayIdBytes &&
        GatewayKey is { Length: Identity.PublicKeySize } && ClusterKey is { Length: Identity.PublicKeySize } &&
        Signature is { Length: Identity.SignatureSize } && NotBefore <= NotAfter;

    [JsonIgnore]
    public Fingerprint ClusterFingerprint => Fingerprint.Of(ClusterKey);

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ProtocolJson.Default.GatewayCredential);

    /// <exception cref="FormatException">Not a credential.</exception>
    public static GatewayCredential FromJson(string json)
    {
        try
        {
            var credential = System.Text.Json.JsonSerializer.Deserialize(json, ProtocolJson.Default.GatewayCredential);
            if (credential is { IsWellFormed: true }) return credential;
        }
        catch (System.Text.Json.JsonException)
        {
        }
        throw new FormatException("not a well-formed gateway credential");
    }

    private static void ValidateGatewayId(string gatewayId)
    {
        if (string.IsNullOrEmpty(gatewayId) || Encoding.UTF8.GetByteCount(gatewayId) > MaxGatewayIdBytes || gatewayId.Any(char.IsControl))
            throw new ArgumentException($"A gateway id is 1 to {MaxGatewayIdBytes} UTF-8 bytes without control characters.", nameof(gatewayId));
    }

    public bool Equals(GatewayCredential? other) =>
        other is not null && GatewayId == other.GatewayId && NotBefore == other.NotBefore && NotAfter == other.NotAfter &&
        GatewayKey.AsSpan().SequenceEqual(other.GatewayKey) && ClusterKey.AsSpan().SequenceEqual(other.ClusterKey) &&
        Signature.AsSpan().SequenceEqual(other.Signature);

    public override int GetHashCode() => HashCode.Combine(GatewayId, NotBefore, NotAfter);
}

public enum CredentialStatus
{
    Valid,
    Malformed,
    WrongCluster,
    BadSignature,
    NotYetValid,
    Expired,
}
