using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Protocol;

/// <summary>
/// One direction's ChaCha20-Poly1305 key and IV for one epoch of one hop. Nonce = IV XOR (8 zero bytes ‖
/// u32 packet number). The key lives in libsodium's guarded memory; dispose zeroes the key and the IV.
/// </summary>
public sealed class DirectionalKey : IDisposable
{
    public const int IvSize = 12;
    public const int TagSize = 16;

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.ChaCha20Poly1305;
    private readonly Key _key;
    private readonly byte[] _iv;
    private int _disposed;

    public DirectionalKey(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv)
    {
        if (key.Length != Primitives.KeySize) throw new ArgumentException("An AEAD key is 32 bytes.", nameof(key));
        if (iv.Length != IvSize) throw new ArgumentException("An IV is 12 bytes.", nameof(iv));
        _key = Key.Import(Aead, key, KeyBlobFormat.RawSymmetricKey);
        _iv = iv.ToArray();
    }

    /// <summary>Derives <c>Expand(chain, "wzp/1 {label} key", 32)</c> and <c>Expand(chain, "wzp/1 {label} iv", 12)</c>.</summary>
    public static DirectionalKey Derive(ReadOnlySpan<byte> chain, string label)
    {
        Span<byte> key = stackalloc byte[Primitives.KeySize];
        Span<byte> iv = stackalloc byte[IvSize];
        try
        {
            DeriveBytes(chain, label, key, iv);
            return new DirectionalKey(key, iv);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    internal static void DeriveBytes(ReadOnlySpan<byte> chain, string label, Span<byte> key, Span<byte> iv)
    {
        Primitives.Expand(chain, System.Text.Encoding.ASCII.GetBytes($"wzp/1 {label} key"), key);
        Primitives.Expand(chain, System.Text.Encoding.ASCII.GetBytes($"wzp/1 {label} iv"), iv);
    }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Writes the nonce of <paramref name="packetNumber"/> into 12 bytes.</summary>
    public void Nonce(uint packetNumber, Span<byte> nonce)
    {
        _iv.CopyTo(nonce);
        var tail = nonce[8..];
        BinaryPrimitives.WriteUInt32BigEndian(tail, BinaryPrimitives.ReadUInt32BigEndian(tail) ^ packetNumber);
    }

    /// <summary>Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (plaintext length + 16 tag bytes).</summary>
    /// <returns>False when the key was retired meanwhile (another thread switched epochs or closed the hop).</returns>
    public bool Seal(uint packetNumber, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        if (IsDisposed) return false;
        Span<byte> nonce = stackalloc byte[IvSize];
        Nonce(packetNumber, nonce);
        try
        {
            Aead.Encrypt(_key, nonce, aad, plaintext, ciphertext[..(plaintext.Length + TagSize)]);
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Opens <paramref name="ciphertext"/> (with its tag) into <paramref name="plaintext"/>; false on any failure.</summary>
    public bool TryOpen(uint packetNumber, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (ciphertext.Length < TagSize || plaintext.Length < ciphertext.Length - TagSize || IsDisposed) return false;
        Span<byte> nonce = stackalloc byte[IvSize];
        Nonce(packetNumber, nonce);
        try
        {
            return Aead.Decrypt(_key, nonce, aad, ciphertext, plaintext[..(ciphertext.Length - TagSize)]);
        }
        catch (ObjectDisposedException)
        {
            return false; // retired between the check and the call: the datagram is simply dropped
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _key.Dispose();
        CryptographicOperations.ZeroMemory(_iv);
    }
}
