using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;

namespace Wzp.Mls.SFrame;

/// <summary>
/// The AEAD of one sframe_key, created once per key so that the frame path allocates nothing: the native
/// cipher and MAC contexts live as long as the key. The AAD comes in two parts, header and metadata, because
/// that is how SFrame holds it; the HMAC suites never join them. Not thread-safe: its owner serialises calls.
/// </summary>
internal abstract class SFrameAead : IDisposable
{
    protected SFrameAead(int tagSize) => TagSize = tagSize;

    /// <summary>Nt.</summary>
    public int TagSize { get; }

    public static SFrameAead Create(SFrameCipherSuite suite, ReadOnlySpan<byte> key) => suite.IsCtrHmac()
        ? new AesCtrHmacAead(key, 16, suite.Hash(), suite.TagSize())
        : new AesGcmAead(key);

    /// <summary>Writes <c>ciphertext ‖ tag</c>, <paramref name="plaintext"/>.Length + Nt bytes, which must not overlap the plaintext.</summary>
    public abstract void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> plaintext, Span<byte> sealedOutput);

    /// <summary>Verifies and decrypts <c>ciphertext ‖ tag</c> into <paramref name="plaintext"/> (length − Nt bytes); false on a bad tag.</summary>
    public abstract bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> sealedInput, Span<byte> plaintext);

    public abstract void Dispose();
}

/// <summary>AES-GCM with a 16-byte tag, AES-128 or AES-256 by the key's length.</summary>
internal sealed class AesGcmAead : SFrameAead
{
    // Header (at most 17 bytes) and metadata are joined here when metadata is present; larger metadata rents.
    private const int StackAad = 256;
    private readonly AesGcm _gcm;

    public AesGcmAead(ReadOnlySpan<byte> key) : base(16) => _gcm = new AesGcm(key, 16);

    public override void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> plaintext, Span<byte> sealedOutput)
    {
        Debug.Assert(sealedOutput.Length == plaintext.Length + TagSize);
        if (aad2.IsEmpty)
        {
            _gcm.Encrypt(nonce, plaintext, sealedOutput[..plaintext.Length], sealedOutput[plaintext.Length..], aad1);
            return;
        }
        var total = aad1.Length + aad2.Length;
        byte[]? rented = null;
        var aad = total <= StackAad ? stackalloc byte[StackAad] : (rented = ArrayPool<byte>.Shared.Rent(total));
        try
        {
            aad1.CopyTo(aad);
            aad2.CopyTo(aad[aad1.Length..]);
            _gcm.Encrypt(nonce, plaintext, sealedOutput[..plaintext.Length], sealedOutput[plaintext.Length..], aad[..total]);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public override bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> sealedInput, Span<byte> plaintext)
    {
        var length = sealedInput.Length - TagSize;
        Debug.Assert(length >= 0 && plaintext.Length == length);
        byte[]? rented = null;
        var total = aad1.Length + aad2.Length;
        Span<byte> aad = total <= StackAad ? stackalloc byte[StackAad] : (rented = ArrayPool<byte>.Shared.Rent(total));
        try
        {
            scoped ReadOnlySpan<byte> joined = aad1;
            if (!aad2.IsEmpty)
            {
                aad1.CopyTo(aad);
                aad2.CopyTo(aad[aad1.Length..]);
                joined = aad[..total];
            }
            _gcm.Decrypt(nonce, sealedInput[..length], sealedInput[length..], plaintext, joined);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            // AesGcm has no bool-returning Decrypt; it has already zeroed the plaintext.
            return false;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public override void Dispose() => _gcm.Dispose();
}

/// <summary>
/// The compound AEAD of RFC 9605 §4.5.1: AES-CTR from <c>nonce ‖ 0x00000000</c>, then
/// <c>HMAC(auth_key, u64(len aad) ‖ u64(len ct) ‖ u64(Nt) ‖ nonce ‖ aad ‖ ct)</c> truncated to Nt bytes.
/// The key is <c>enc_key (Nka) ‖ auth_key (Nh)</c>.
/// </summary>
internal sealed class AesCtrHmacAead : SFrameAead
{
    // Keystream in chunks of this many bytes: counter blocks in the first half of _blocks, keystream in the second.
    private const int Chunk = 512;
    private readonly Aes _aes;
    private readonly ICryptoTransform _ecb;
    private readonly IncrementalHash _hmac;
    private readonly int _hashSize;
    private readonly byte[] _blocks = new byte[2 * Chunk];

    /// <summary>Also builds the AES-256/SHA-512 variants of draft-barnes-sframe-iana-256 (only its vectors use them).</summary>
    public AesCtrHmacAead(ReadOnlySpan<byte> key, int encryptionKeySize, HashAlgorithmName hash, int tagSize) : base(tagSize)
    {
        _hashSize = hash == HashAlgorithmName.SHA512 ? 64 : 32;
        if (key.Length != encryptionKeySize + _hashSize) throw new ArgumentException("Key is not enc_key ‖ auth_key.", nameof(key));
        _aes = Aes.Create();
        var encryptionKey = key[..encryptionKeySize].ToArray();
        try
        {
            _aes.Key = encryptionKey; // copied by the setter
        }
        finally
        {
            CryptographicOperations.ZeroMemory(encryptionKey);
        }
        _aes.Mode = CipherMode.ECB;
        _aes.Padding = PaddingMode.None;
        // A reused ECB transform: SymmetricAlgorithm.EncryptEcb creates a native context per call (64 bytes of
        // garbage each), TransformBlock on a kept transform allocates nothing.
        _ecb = _aes.CreateEncryptor();
        _hmac = IncrementalHash.CreateHMAC(hash, key[encryptionKeySize..]);
    }

    public override void Seal(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> plaintext, Span<byte> sealedOutput)
    {
        Debug.Assert(sealedOutput.Length == plaintext.Length + TagSize);
        var ciphertext = sealedOutput[..plaintext.Length];
        Ctr(nonce, plaintext, ciphertext);
        Span<byte> tag = stackalloc byte[64];
        ComputeTag(nonce, aad1, aad2, ciphertext, tag);
        tag[..TagSize].CopyTo(sealedOutput[plaintext.Length..]);
    }

    public override bool Open(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> sealedInput, Span<byte> plaintext)
    {
        var length = sealedInput.Length - TagSize;
        Debug.Assert(length >= 0 && plaintext.Length == length);
        var ciphertext = sealedInput[..length];
        Span<byte> tag = stackalloc byte[64];
        ComputeTag(nonce, aad1, aad2, ciphertext, tag);
        if (!CryptographicOperations.FixedTimeEquals(tag[..TagSize], sealedInput[length..])) return false;
        Ctr(nonce, ciphertext, plaintext);
        return true;
    }

    private void ComputeTag(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad1, ReadOnlySpan<byte> aad2, ReadOnlySpan<byte> ciphertext, Span<byte> tag)
    {
        Span<byte> lengths = stackalloc byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(lengths, (ulong)(aad1.Length + aad2.Length));
        BinaryPrimitives.WriteUInt64BigEndian(lengths[8..], (ulong)ciphertext.Length);
        BinaryPrimitives.WriteUInt64BigEndian(lengths[16..], (ulong)TagSize);
        _hmac.AppendData(lengths);
        _hmac.AppendData(nonce);
        _hmac.AppendData(aad1);
        _hmac.AppendData(aad2);
        _hmac.AppendData(ciphertext);
        _hmac.GetHashAndReset(tag[.._hashSize]);
    }

    /// <summary>AES-CTR with the initial counter block <c>nonce ‖ 0x00000000</c>, the last 32 bits counting blocks.</summary>
    private void Ctr(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> input, Span<byte> output)
    {
        var blocks = _blocks.AsSpan(0, Chunk);
        var keystream = _blocks.AsSpan(Chunk, Chunk);
        uint counter = 0;
        for (var offset = 0; offset < input.Length; offset += Chunk)
        {
            var length = Math.Min(Chunk, input.Length - offset);
            var blockBytes = (length + 15) & ~15;
            for (var b = 0; b < blockBytes; b += 16)
            {
                nonce.CopyTo(blocks[b..]);
                BinaryPrimitives.WriteUInt32BigEndian(blocks[(b + 12)..], counter++);
            }
            _ecb.TransformBlock(_blocks, 0, blockBytes, _blocks, Chunk);
            Xor(input.Slice(offset, length), keystream[..length], output.Slice(offset, length));
        }
        CryptographicOperations.ZeroMemory(keystream);
    }

    private static void Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> destination)
    {
        var i = 0;
        for (; i + 16 <= a.Length; i += 16)
            (Vector128.Create(a.Slice(i, 16)) ^ Vector128.Create(b.Slice(i, 16))).CopyTo(destination[i..]);
        for (; i < a.Length; i++) destination[i] = (byte)(a[i] ^ b[i]);
    }

    public override void Dispose()
    {
        _ecb.Dispose();
        _aes.Dispose();
        _hmac.Dispose();
        CryptographicOperations.ZeroMemory(_blocks);
    }
}
