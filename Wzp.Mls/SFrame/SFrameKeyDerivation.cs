using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Wzp.Mls.SFrame;

/// <summary>
/// <c>derive_key_salt</c> of RFC 9605 §4.4.2: <c>sframe_secret = HKDF-Extract("", base_key)</c>, then
/// <c>sframe_key = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key " + KID + cipher_suite, Nk)</c> and
/// <c>sframe_salt = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " + KID + cipher_suite, Nn)</c>, the KID as
/// 8 bytes and the suite as 2 bytes, both big-endian, HKDF over the suite's hash.
/// </summary>
public static class SFrameKeyDerivation
{
    /// <summary>The largest label: the salt prefix (23 bytes), the KID (8) and the suite (2).</summary>
    internal const int MaxLabelSize = 33;

    internal static ReadOnlySpan<byte> KeyLabelPrefix => "SFrame 1.0 Secret key "u8;

    internal static ReadOnlySpan<byte> SaltLabelPrefix => "SFrame 1.0 Secret salt "u8;

    /// <summary>Derives the key (Nk bytes) and salt (Nn bytes) of <paramref name="keyId"/> from its base key.</summary>
    public static void DeriveKeyAndSalt(SFrameCipherSuite suite, ulong keyId, ReadOnlySpan<byte> baseKey, Span<byte> key, Span<byte> salt)
    {
        SFrameCipherSuites.ThrowIfUnsupported(suite, nameof(suite));
        if (key.Length != suite.KeySize()) throw new ArgumentException($"A key of {suite} is {suite.KeySize()} bytes.", nameof(key));
        if (salt.Length != SFrameCipherSuites.NonceSize) throw new ArgumentException("A salt is 12 bytes.", nameof(salt));
        Span<byte> secret = stackalloc byte[64];
        secret = secret[..suite.HashSize()];
        try
        {
            ExtractSecret(suite, baseKey, secret);
            ExpandKeyAndSalt(suite, secret, keyId, key, salt);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary><c>sframe_secret = HKDF-Extract("", base_key)</c>, Nh bytes.</summary>
    internal static void ExtractSecret(SFrameCipherSuite suite, ReadOnlySpan<byte> baseKey, Span<byte> secret) =>
        HKDF.Extract(suite.Hash(), baseKey, ReadOnlySpan<byte>.Empty, secret);

    /// <summary>The two expansions from an already extracted secret: what the MLS key management keeps per epoch.</summary>
    internal static void ExpandKeyAndSalt(SFrameCipherSuite suite, ReadOnlySpan<byte> secret, ulong keyId, Span<byte> key, Span<byte> salt)
    {
        Span<byte> label = stackalloc byte[MaxLabelSize];
        var length = WriteLabel(KeyLabelPrefix, keyId, suite, label);
        HKDF.Expand(suite.Hash(), secret, key, label[..length]);
        length = WriteLabel(SaltLabelPrefix, keyId, suite, label);
        HKDF.Expand(suite.Hash(), secret, salt, label[..length]);
    }

    internal static int WriteLabel(ReadOnlySpan<byte> prefix, ulong keyId, SFrameCipherSuite suite, Span<byte> destination)
    {
        prefix.CopyTo(destination);
        BinaryPrimitives.WriteUInt64BigEndian(destination[prefix.Length..], keyId);
        BinaryPrimitives.WriteUInt16BigEndian(destination[(prefix.Length + 8)..], (ushort)suite);
        return prefix.Length + 10;
    }
}
