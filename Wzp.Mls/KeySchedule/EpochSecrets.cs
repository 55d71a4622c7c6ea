using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.KeySchedule;

/// <summary>
/// The secrets of one epoch (RFC 9420 §8): everything derived from the epoch secret, plus the joiner and welcome
/// secrets it came from. Dispose wipes them all; <see cref="InitSecret"/> is the one the next epoch needs, so a
/// caller copies it before disposing.
/// </summary>
public sealed class EpochSecrets : IDisposable
{
    private readonly CipherSuite _suite;
    private readonly List<byte[]> _owned = [];

    private EpochSecrets(CipherSuite suite, byte[] joinerSecret, ReadOnlySpan<byte> pskSecret, ReadOnlySpan<byte> groupContext)
    {
        _suite = suite;
        JoinerSecret = Own(joinerSecret);
        var member = suite.Extract(joinerSecret, pskSecret);
        WelcomeSecret = Own(suite.DeriveSecret(member, "welcome"u8));
        EpochSecret = Own(suite.ExpandWithLabel(member, "epoch"u8, groupContext, suite.HashLength));
        CryptographicOperations.ZeroMemory(member);
        SenderDataSecret = Derive("sender data"u8);
        EncryptionSecret = Derive("encryption"u8);
        ExporterSecret = Derive("exporter"u8);
        ExternalSecret = Derive("external"u8);
        ConfirmationKey = Derive("confirm"u8);
        MembershipKey = Derive("membership"u8);
        ResumptionPsk = Derive("resumption"u8);
        EpochAuthenticator = Derive("authentication"u8);
        InitSecret = Derive("init"u8);
    }

    public byte[] JoinerSecret { get; }

    public byte[] WelcomeSecret { get; }

    public byte[] EpochSecret { get; }

    public byte[] SenderDataSecret { get; }

    public byte[] EncryptionSecret { get; }

    public byte[] ExporterSecret { get; }

    public byte[] ExternalSecret { get; }

    public byte[] ConfirmationKey { get; }

    public byte[] MembershipKey { get; }

    public byte[] ResumptionPsk { get; }

    public byte[] EpochAuthenticator { get; }

    /// <summary>init_secret of the next epoch.</summary>
    public byte[] InitSecret { get; }

    /// <summary>
    /// A member's path: joiner_secret = ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext).
    /// <paramref name="groupContext"/> is the encoded GroupContext of the new epoch.
    /// </summary>
    public static EpochSecrets FromInitSecret(CipherSuite suite, ReadOnlySpan<byte> initSecret, ReadOnlySpan<byte> commitSecret, ReadOnlySpan<byte> pskSecret, ReadOnlySpan<byte> groupContext)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var prk = suite.Extract(initSecret, commitSecret);
        var joiner = suite.ExpandWithLabel(prk, "joiner"u8, groupContext, suite.HashLength);
        CryptographicOperations.ZeroMemory(prk);
        return new EpochSecrets(suite, joiner, pskSecret, groupContext);
    }

    public static EpochSecrets FromInitSecret(CipherSuite suite, ReadOnlySpan<byte> initSecret, ReadOnlySpan<byte> commitSecret, ReadOnlySpan<byte> pskSecret, GroupContext groupContext)
        => FromInitSecret(suite, initSecret, commitSecret, pskSecret, Tls.Encode(groupContext));

    /// <summary>A joiner's path: the joiner secret from a Welcome's GroupSecrets.</summary>
    public static EpochSecrets FromJoinerSecret(CipherSuite suite, ReadOnlySpan<byte> joinerSecret, ReadOnlySpan<byte> pskSecret, ReadOnlySpan<byte> groupContext)
    {
        ArgumentNullException.ThrowIfNull(suite);
        return new EpochSecrets(suite, joinerSecret.ToArray(), pskSecret, groupContext);
    }

    /// <summary>The welcome key and nonce that encrypt the GroupInfo of a Welcome (RFC 9420 §12.4.3.1).</summary>
    public static (byte[] Key, byte[] Nonce) WelcomeKeyAndNonce(CipherSuite suite, ReadOnlySpan<byte> welcomeSecret)
    {
        ArgumentNullException.ThrowIfNull(suite);
        return (suite.ExpandWithLabel(welcomeSecret, "key"u8, [], suite.AeadKeyLength),
                suite.ExpandWithLabel(welcomeSecret, "nonce"u8, [], suite.AeadNonceLength));
    }

    /// <summary>The welcome secret from a joiner secret and PSK secret, before the GroupContext is known.</summary>
    public static byte[] DeriveWelcomeSecret(CipherSuite suite, ReadOnlySpan<byte> joinerSecret, ReadOnlySpan<byte> pskSecret)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var member = suite.Extract(joinerSecret, pskSecret);
        var welcome = suite.DeriveSecret(member, "welcome"u8);
        CryptographicOperations.ZeroMemory(member);
        return welcome;
    }

    /// <summary>MLS-Exporter (RFC 9420 §8.5): ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported", Hash(context), length).</summary>
    public byte[] Export(ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, int length)
    {
        var derived = _suite.DeriveSecret(ExporterSecret, label);
        var exported = _suite.ExpandWithLabel(derived, "exported"u8, _suite.Hash(context), length);
        CryptographicOperations.ZeroMemory(derived);
        return exported;
    }

    public byte[] Export(string label, ReadOnlySpan<byte> context, int length) => Export(System.Text.Encoding.UTF8.GetBytes(label), context, length);

    /// <summary>The external_pub of this epoch: the public half of DeriveKeyPair(external_secret).</summary>
    public byte[] ExternalPublicKey()
    {
        var (privateKey, publicKey) = _suite.DeriveHpkeKeyPair(ExternalSecret);
        CryptographicOperations.ZeroMemory(privateKey);
        return publicKey;
    }

    /// <summary>The external key pair, for the member side of an external commit's ExternalInit.</summary>
    public (byte[] PrivateKey, byte[] PublicKey) ExternalKeyPair() => _suite.DeriveHpkeKeyPair(ExternalSecret);

    /// <summary>The secret tree of this epoch over <paramref name="leafCount"/> leaves.</summary>
    public SecretTree CreateSecretTree(uint leafCount) => new(_suite, EncryptionSecret, leafCount);

    public void Dispose()
    {
        foreach (var secret in _owned) CryptographicOperations.ZeroMemory(secret);
    }

    private byte[] Derive(ReadOnlySpan<byte> label) => Own(_suite.DeriveSecret(EpochSecret, label));

    private byte[] Own(byte[] secret)
    {
        _owned.Add(secret);
        return secret;
    }
}
