using System.Security.Cryptography;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Group;

/// <summary>
/// A KeyPackage with the private keys behind it (RFC 9420 §10): the init key the Welcome is encrypted to, the leaf's
/// encryption key and the signature key. The init and encryption keys are wiped on dispose; the signature key is the
/// client's long-term key and stays with the caller.
/// </summary>
public sealed class KeyPackageBundle : IDisposable
{
    public KeyPackageBundle(KeyPackage keyPackage, byte[] initPrivateKey, byte[] encryptionPrivateKey, byte[] signaturePrivateKey)
    {
        KeyPackage = keyPackage ?? throw new ArgumentNullException(nameof(keyPackage));
        InitPrivateKey = initPrivateKey ?? throw new ArgumentNullException(nameof(initPrivateKey));
        EncryptionPrivateKey = encryptionPrivateKey ?? throw new ArgumentNullException(nameof(encryptionPrivateKey));
        SignaturePrivateKey = signaturePrivateKey ?? throw new ArgumentNullException(nameof(signaturePrivateKey));
    }

    public KeyPackage KeyPackage { get; }

    public byte[] InitPrivateKey { get; }

    public byte[] EncryptionPrivateKey { get; }

    public byte[] SignaturePrivateKey { get; }

    /// <summary>The capabilities a Wzp client advertises when none are given: MLS 1.0, the suite, basic credentials.</summary>
    public static Capabilities DefaultCapabilities(CipherSuite suite)
    {
        ArgumentNullException.ThrowIfNull(suite);
        return new Capabilities([(ushort)ProtocolVersion.Mls10], [suite.Id], [], [], [CredentialTypes.Basic]);
    }

    /// <summary>
    /// Generates fresh init and encryption keys and a signed KeyPackage for <paramref name="credential"/>.
    /// <paramref name="lifetime"/> defaults to an hour ago until 90 days from now (the hour absorbs clock skew).
    /// </summary>
    public static KeyPackageBundle Create(
        CipherSuite suite, Credential credential, byte[] signaturePrivateKey, Capabilities? capabilities = null, Lifetime? lifetime = null,
        Extension[]? leafExtensions = null, Extension[]? keyPackageExtensions = null)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentNullException.ThrowIfNull(signaturePrivateKey);
        var now = DateTimeOffset.UtcNow;
        lifetime ??= new Lifetime((ulong)now.AddHours(-1).ToUnixTimeSeconds(), (ulong)now.AddDays(90).ToUnixTimeSeconds());
        var (encryptionPrivate, encryptionPublic) = suite.GenerateHpkeKeyPair();
        var (initPrivate, initPublic) = suite.GenerateHpkeKeyPair();
        var leaf = new LeafNode(
            encryptionPublic, suite.SignaturePublicKey(signaturePrivateKey), credential, capabilities ?? DefaultCapabilities(suite),
            LeafNodeSource.KeyPackage, lifetime, null, leafExtensions ?? [], []).Signed(suite, signaturePrivateKey, [], 0);
        var keyPackage = new KeyPackage(ProtocolVersion.Mls10, suite.Id, initPublic, leaf, keyPackageExtensions ?? [], [])
            .Signed(suite, signaturePrivateKey);
        return new KeyPackageBundle(keyPackage, initPrivate, encryptionPrivate, signaturePrivateKey);
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(InitPrivateKey);
        CryptographicOperations.ZeroMemory(EncryptionPrivateKey);
    }
}
