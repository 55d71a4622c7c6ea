using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>HKDF-SHA256 and HMAC-SHA256 (RFC 5869, RFC 2104) over NSec.</summary>
internal static class Kdf
{
    // HKDF-Extract and HMAC go through the platform's HMAC-SHA256: the same function NSec computes, without NSec's
    // import of every key and IKM into a fresh guarded, locked allocation (several mmap/mprotect/mlock calls each),
    // which made one HPKE encryption cost milliseconds on a loaded machine. The inputs are managed byte arrays
    // before and after either way, so the guarded copy protected nothing.
    public static byte[] Extract(ReadOnlySpan<byte> salt, ReadOnlySpan<byte> ikm)
    {
        // RFC 5869 §2.2: an absent salt is HashLen zero bytes; HMAC pads a shorter key with zeros, so empty is the same.
        return HMACSHA256.HashData(salt, ikm);
    }

    public static byte[] Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, int length)
    {
        if (prk.Length != 32) throw new ArgumentException("HKDF-SHA256 PRK must be 32 bytes.", nameof(prk));
        return KeyDerivationAlgorithm.HkdfSha256.Expand(prk, info, length);
    }

    public static byte[] Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data) => HMACSHA256.HashData(key, data);
}
