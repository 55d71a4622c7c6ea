using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>AES-128-GCM through the platform's <see cref="AesGcm"/>, ChaCha20-Poly1305 through NSec; tags are 16 bytes, appended.</summary>
internal static class Aeads
{
    public const int TagSize = 16;

    public static byte[] Seal(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        var output = new byte[plaintext.Length + TagSize];
        Seal(aead, key, nonce, aad, plaintext, output);
        return output;
    }

    public static void Seal(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        CheckSizes(aead, key, nonce);
        if (ciphertext.Length != plaintext.Length + TagSize)
            throw new ArgumentException("The ciphertext is the plaintext plus a 16-byte tag.", nameof(ciphertext));
        if (ciphertext.Overlaps(plaintext) && !ciphertext[..plaintext.Length].SequenceEqual(plaintext))
            throw new ArgumentException("In-place sealing needs the ciphertext to start where the plaintext does.", nameof(ciphertext));
        SealCore(aead, key, nonce, aad, plaintext, ciphertext);
    }

    public static bool TryOpen(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, [NotNullWhen(true)] out byte[]? plaintext)
    {
        plaintext = null;
        CheckSizes(aead, key, nonce);
        if (ciphertext.Length < TagSize) return false;
        var output = new byte[ciphertext.Length - TagSize];
        if (!OpenCore(aead, key, nonce, aad, ciphertext, output)) return false;
        plaintext = output;
        return true;
    }

    public static bool TryOpen(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        CheckSizes(aead, key, nonce);
        if (ciphertext.Length < TagSize) return false;
        if (plaintext.Length != ciphertext.Length - TagSize)
            throw new ArgumentException("The plaintext is the ciphertext less its 16-byte tag.", nameof(plaintext));
        return OpenCore(aead, key, nonce, aad, ciphertext, plaintext);
    }

    private static void SealCore(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        Debug.Assert(ciphertext.Length == plaintext.Length + TagSize);
        if (aead == AeadId.Aes128Gcm)
        {
            using var gcm = new AesGcm(key, TagSize);
            gcm.Encrypt(nonce, plaintext, ciphertext[..plaintext.Length], ciphertext[plaintext.Length..], aad);
        }
        else
        {
            using var handle = Key.Import(AeadAlgorithm.ChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
            AeadAlgorithm.ChaCha20Poly1305.Encrypt(handle, nonce, aad, plaintext, ciphertext);
        }
    }

    private static bool OpenCore(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        Debug.Assert(plaintext.Length == ciphertext.Length - TagSize);
        if (aead == AeadId.Aes128Gcm)
        {
            using var gcm = new AesGcm(key, TagSize);
            try
            {
                gcm.Decrypt(nonce, ciphertext[..plaintext.Length], ciphertext[plaintext.Length..], plaintext, aad);
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                // AesGcm has already zeroed the destination; the caller sees only false.
                return false;
            }
        }
        using var handle = Key.Import(AeadAlgorithm.ChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
        return AeadAlgorithm.ChaCha20Poly1305.Decrypt(handle, nonce, aad, ciphertext, plaintext);
    }

    private static void CheckSizes(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce)
    {
        var keySize = aead == AeadId.Aes128Gcm ? 16 : 32;
        if (key.Length != keySize) throw new ArgumentException($"{aead} keys are {keySize} bytes.", nameof(key));
        if (nonce.Length != 12) throw new ArgumentException("AEAD nonces are 12 bytes.", nameof(nonce));
    }
}
