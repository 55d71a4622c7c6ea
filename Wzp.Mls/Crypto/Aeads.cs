using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>AES-128-GCM through the platform's <see cref="AesGcm"/>, ChaCha20-Poly1305 through NSec; tags are 16 bytes, appended.</summary>
internal static class Aeads
{
    private const int TagSize = 16;

    public static byte[] Seal(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        CheckSizes(aead, key, nonce);
        var output = new byte[plaintext.Length + TagSize];
        if (aead == AeadId.Aes128Gcm)
        {
            using var gcm = new AesGcm(key, TagSize);
            gcm.Encrypt(nonce, plaintext, output.AsSpan(0, plaintext.Length), output.AsSpan(plaintext.Length), aad);
        }
        else
        {
            using var handle = Key.Import(AeadAlgorithm.ChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
            AeadAlgorithm.ChaCha20Poly1305.Encrypt(handle, nonce, aad, plaintext, output);
        }
        return output;
    }

    public static bool TryOpen(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? plaintext)
    {
        CheckSizes(aead, key, nonce);
        plaintext = null;
        if (ciphertext.Length < TagSize) return false;
        var output = new byte[ciphertext.Length - TagSize];
        if (aead == AeadId.Aes128Gcm)
        {
            using var gcm = new AesGcm(key, TagSize);
            try
            {
                gcm.Decrypt(nonce, ciphertext[..output.Length], ciphertext[output.Length..], output, aad);
            }
            catch (AuthenticationTagMismatchException)
            {
                return false;
            }
        }
        else
        {
            using var handle = Key.Import(AeadAlgorithm.ChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
            if (!AeadAlgorithm.ChaCha20Poly1305.Decrypt(handle, nonce, aad, ciphertext, output)) return false;
        }
        plaintext = output;
        return true;
    }

    private static void CheckSizes(AeadId aead, ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce)
    {
        var keySize = aead == AeadId.Aes128Gcm ? 16 : 32;
        if (key.Length != keySize) throw new ArgumentException($"{aead} keys are {keySize} bytes.", nameof(key));
        if (nonce.Length != 12) throw new ArgumentException("AEAD nonces are 12 bytes.", nameof(nonce));
    }
}
