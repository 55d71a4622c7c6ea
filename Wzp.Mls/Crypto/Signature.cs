using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>Ed25519 through NSec; MLS carries private keys as the 32-byte seed of RFC 8032.</summary>
internal static class Signature
{
    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;

    private static KeyCreationParameters ExportableKey => new() { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };

    public static byte[] Sign(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> message)
    {
        if (privateKey.Length != Ed25519.PrivateKeySize) throw new ArgumentException("Ed25519 private keys are 32 bytes.", nameof(privateKey));
        using var key = Key.Import(Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        return Ed25519.Sign(key, message);
    }

    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != Ed25519.PublicKeySize || signature.Length != Ed25519.SignatureSize) return false;
        if (!PublicKey.TryImport(Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null) return false;
        return Ed25519.Verify(key, message, signature);
    }

    public static byte[] PublicKeyOf(ReadOnlySpan<byte> privateKey)
    {
        using var key = Key.Import(Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    public static (byte[] PrivateKey, byte[] PublicKey) Generate()
    {
        using var key = Key.Create(Ed25519, ExportableKey);
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }
}
