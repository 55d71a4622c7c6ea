using Wzp.Mls.Messages;

namespace Wzp.Mls.Tree;

/// <summary>Why a leaf node failed validation (RFC 9420 §7.3).</summary>
public enum LeafNodeError
{
    None,
    BadSignature,
    /// <summary>leaf_node_source is not the one the context calls for (key_package in an Add, update, commit).</summary>
    WrongSource,
    /// <summary>A key-package leaf outside its lifetime.</summary>
    Expired,
    /// <summary>The leaf lacks an extension, proposal or credential type the group's required_capabilities lists.</summary>
    MissingRequiredCapability,
    /// <summary>The leaf's credential type is not supported by every member, or it lacks one in use.</summary>
    UnsupportedCredential,
    /// <summary>An extension of the leaf is not listed in its own capabilities.</summary>
    ExtensionNotInCapabilities,
    /// <summary>A group context extension the leaf does not support.</summary>
    UnsupportedGroupExtension,
    DuplicateEncryptionKey,
    DuplicateSignatureKey,
    /// <summary>The encryption or signature key is not the length the suite's KEM and signature scheme use.</summary>
    MalformedKey,
}

/// <summary>
/// Leaf node validation (RFC 9420 §7.3) against a tree and the group's extensions. Registered extension types 1-5
/// and proposal types 1-7 are treated as supported by everyone, as the RFC's "default" types are.
/// </summary>
public static class LeafNodeValidation
{
    public static bool IsDefaultExtension(ushort type) => type is >= 1 and <= 5;

    public static bool IsDefaultProposal(ushort type) => type is >= 1 and <= 7;

    /// <summary>
    /// Validates <paramref name="leaf"/> for position <paramref name="leafIndex"/>. <paramref name="replacing"/> is the
    /// leaf it replaces (an Update or a commit), excluded from the uniqueness and credential checks; null for an Add.
    /// <paramref name="now"/> null skips the lifetime check.
    /// </summary>
    public static LeafNodeError Validate(
        RatchetTreeState tree, LeafNode leaf, LeafNodeSource expectedSource, ReadOnlySpan<byte> groupId, uint leafIndex,
        IReadOnlyList<Extension> groupExtensions, DateTimeOffset? now, uint? replacing)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(leaf);
        ArgumentNullException.ThrowIfNull(groupExtensions);
        if (leaf.Source != expectedSource) return LeafNodeError.WrongSource;
        if (!leaf.VerifySignature(tree.Suite, groupId, leafIndex)) return LeafNodeError.BadSignature;
        var standalone = ValidateStandalone(leaf, groupExtensions, now);
        if (standalone != LeafNodeError.None) return standalone;
        // A new leaf's key must be one later paths can encrypt to; a low-order key would make every commit that
        // encrypts to it fail. (Leaves of a tree being joined were checked by the members who accepted them.)
        if (!tree.Suite.Hpke.IsUsablePublicKey(leaf.EncryptionKey)) return LeafNodeError.MalformedKey;
        foreach (var (index, other) in tree.Members())
        {
            if (index == replacing) continue;
            if (other.EncryptionKey.AsSpan().SequenceEqual(leaf.EncryptionKey)) return LeafNodeError.DuplicateEncryptionKey;
            if (other.SignatureKey.AsSpan().SequenceEqual(leaf.SignatureKey)) return LeafNodeError.DuplicateSignatureKey;
            if (!other.Capabilities.Credentials.Contains(leaf.Credential.CredentialType)
                || !leaf.Capabilities.Credentials.Contains(other.Credential.CredentialType))
                return LeafNodeError.UnsupportedCredential;
        }
        return LeafNodeError.None;
    }

    /// <summary>
    /// Validates every leaf of a tree being joined: signatures, capabilities and key uniqueness, in one pass over
    /// the members plus one per leaf for the credential sets (computed once).
    /// </summary>
    public static LeafNodeError ValidateTree(RatchetTreeState tree, ReadOnlySpan<byte> groupId, IReadOnlyList<Extension> groupExtensions)
    {
        ArgumentNullException.ThrowIfNull(tree);
        var encryptionKeys = new HashSet<string>();
        var signatureKeys = new HashSet<string>();
        var inUse = new HashSet<ushort>();
        HashSet<ushort>? supportedByAll = null;
        foreach (var (_, leaf) in tree.Members())
        {
            inUse.Add(leaf.Credential.CredentialType);
            if (supportedByAll is null) supportedByAll = [.. leaf.Capabilities.Credentials];
            else supportedByAll.IntersectWith(leaf.Capabilities.Credentials);
        }
        foreach (var (index, leaf) in tree.Members())
        {
            if (!leaf.VerifySignature(tree.Suite, groupId, index)) return LeafNodeError.BadSignature;
            var standalone = ValidateStandalone(leaf, groupExtensions, null);
            if (standalone != LeafNodeError.None) return standalone;
            if (!encryptionKeys.Add(Convert.ToHexString(leaf.EncryptionKey))) return LeafNodeError.DuplicateEncryptionKey;
            if (!signatureKeys.Add(Convert.ToHexString(leaf.SignatureKey))) return LeafNodeError.DuplicateSignatureKey;
            if (!supportedByAll!.Contains(leaf.Credential.CredentialType) || !inUse.IsSubsetOf(leaf.Capabilities.Credentials))
                return LeafNodeError.UnsupportedCredential;
        }
        return LeafNodeError.None;
    }

    /// <summary>True if <paramref name="leaf"/> supports every non-default extension in <paramref name="extensions"/>.</summary>
    public static bool SupportsExtensions(LeafNode leaf, IReadOnlyList<Extension> extensions)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        foreach (var extension in extensions)
            if (!IsDefaultExtension(extension.ExtensionType) && !leaf.Capabilities.Extensions.Contains(extension.ExtensionType)) return false;
        return true;
    }

    /// <summary>True if <paramref name="leaf"/> has every capability a required_capabilities extension lists.</summary>
    public static bool MeetsRequiredCapabilities(LeafNode leaf, IReadOnlyList<Extension> groupExtensions)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        if (!groupExtensions.TryGet<RequiredCapabilitiesExtension>(ExtensionTypes.RequiredCapabilities, out var required)) return true;
        var caps = leaf.Capabilities;
        return required.ExtensionTypes.All(t => IsDefaultExtension(t) || caps.Extensions.Contains(t))
            && required.ProposalTypes.All(t => IsDefaultProposal(t) || caps.Proposals.Contains(t))
            && required.CredentialTypes.All(caps.Credentials.Contains);
    }

    private static LeafNodeError ValidateStandalone(LeafNode leaf, IReadOnlyList<Extension> groupExtensions, DateTimeOffset? now)
    {
        // Both suites use X25519 and Ed25519: 32-byte public keys. A key of another length could never be encrypted to.
        if (leaf.EncryptionKey.Length != 32 || leaf.SignatureKey.Length != 32) return LeafNodeError.MalformedKey;
        if (leaf.Source == LeafNodeSource.KeyPackage && now is { } instant && leaf.Lifetime is { } lifetime && !lifetime.Contains(instant))
            return LeafNodeError.Expired;
        if (!MeetsRequiredCapabilities(leaf, groupExtensions)) return LeafNodeError.MissingRequiredCapability;
        if (!leaf.Capabilities.Credentials.Contains(leaf.Credential.CredentialType)) return LeafNodeError.UnsupportedCredential;
        foreach (var extension in leaf.Extensions)
            if (!IsDefaultExtension(extension.ExtensionType) && !leaf.Capabilities.Extensions.Contains(extension.ExtensionType))
                return LeafNodeError.ExtensionNotInCapabilities;
        if (!SupportsExtensions(leaf, groupExtensions)) return LeafNodeError.UnsupportedGroupExtension;
        return LeafNodeError.None;
    }
}
