using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>HKDF-SHA256 and HMAC-SHA256 (RFC 5869, RFC 2104) over NSec.</summary>
internal static class Kdf
{
    // NSec holds input keying material in a SharedSecret, whose import is capped at 128 bytes. Every IKM MLS and
    // HPKE extract from with these suites fits (32-byte secrets, HPKE's labelled IKM of at most ~60 bytes) except an
    // application's over-long external PSK; those go through the platform's HMAC, which computes the same function.
    private const int MaxSharedSecretImport = 128;

    private static SharedSecretCreationParameters Sealed => new() { ExportPolicy = KeyExportPolicies.None };

    public static byte[] Extract(ReadOnlySpan<byte> salt, ReadOnlySpan<byte> ikm)
    {
        if (ikm.Length > MaxSharedSecretImport) return HMACSHA256.HashData(salt, ikm);
        using var secret = SharedSecret.Import(ikm, SharedSecretBlobFormat.RawSharedSecret, Sealed);
        return KeyDerivationAlgorithm.HkdfSha256.Extract(secret, salt);
    }

    public static byte[] Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, int length)
    {
        if (prk.Length != 32) throw new ArgumentException("HKDF-SHA256 PRK must be 32 bytes.", nameof(prk));
        return KeyDerivationAlgorithm.HkdfSha256.Expand(prk, info, length);
    }

    public static byte[] Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data)
    {
        // MLS MAC keys (confirmation, membership) are always Nh = 32 bytes, NSec's HMAC-SHA256 key size; any other
        // size only comes from a caller outside the protocol and goes through the platform's HMAC.
        if (key.Length != MacAlgorithm.HmacSha256.KeySize) return HMACSHA256.HashData(key, data);
        using var handle = Key.Import(MacAlgorithm.HmacSha256, key, KeyBlobFormat.RawSymmetricKey);
        return MacAlgorithm.HmacSha256.Mac(handle, data);
    }
}
