using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Wzp.Mls.SFrame;

/// <summary>
/// One KID's sframe_key and sframe_salt with its AEAD, for one direction: a send key keeps the next CTR, a
/// receive key its replay window (RFC 9605 §4.4.1, Appendix A). Dispose zeroes the salt and releases the AEAD.
/// Not thread-safe; the contexts that own keys serialise their use.
/// </summary>
internal sealed class SFrameKey : IDisposable
{
    private readonly byte[] _salt = GC.AllocateArray<byte>(SFrameCipherSuites.NonceSize, pinned: true);
    private readonly SFrameAead _aead;
    private readonly SFrameReplayWindow? _window;
    private ulong _nextCounter;
    private bool _exhausted;

    private SFrameKey(ulong keyId, SFrameAead aead, ReadOnlySpan<byte> salt, SFrameReplayWindow? window, ulong firstCounter)
    {
        KeyId = keyId;
        _aead = aead;
        salt.CopyTo(_salt);
        _window = window;
        _nextCounter = firstCounter;
    }

    public ulong KeyId { get; }

    public int TagSize => _aead.TagSize;

    public bool IsSendKey => _window is null;

    /// <summary>A send key (no window) or a receive key (a window of <paramref name="replayWindowSize"/>) from a base key.</summary>
    public static SFrameKey FromBaseKey(SFrameCipherSuite suite, ulong keyId, ReadOnlySpan<byte> baseKey, int replayWindowSize, bool send, ulong firstCounter = 0)
    {
        Span<byte> secret = stackalloc byte[64];
        secret = secret[..suite.HashSize()];
        try
        {
            SFrameKeyDerivation.ExtractSecret(suite, baseKey, secret);
            return FromSecret(suite, keyId, secret, replayWindowSize, send, firstCounter);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>As <see cref="FromBaseKey"/> from <c>sframe_secret</c>, which the MLS key management keeps per epoch.</summary>
    public static SFrameKey FromSecret(SFrameCipherSuite suite, ulong keyId, ReadOnlySpan<byte> secret, int replayWindowSize, bool send, ulong firstCounter = 0)
    {
        Span<byte> key = stackalloc byte[suite.KeySize()];
        Span<byte> salt = stackalloc byte[SFrameCipherSuites.NonceSize];
        try
        {
            SFrameKeyDerivation.ExpandKeyAndSalt(suite, secret, keyId, key, salt);
            return new SFrameKey(keyId, SFrameAead.Create(suite, key), salt, send ? null : new SFrameReplayWindow(replayWindowSize), firstCounter);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(salt);
        }
    }

    /// <summary>The SFrame ciphertext size for the next CTR.</summary>
    public int SealedSize(int plaintextLength) => new SFrameHeader(KeyId, _nextCounter).Size + plaintextLength + TagSize;

    /// <summary><c>nonce = sframe_salt XOR encode_big_endian(CTR, Nn)</c> (RFC 9605 §4.4.3).</summary>
    public void Nonce(ulong counter, Span<byte> nonce)
    {
        _salt.CopyTo(nonce);
        var tail = nonce[4..];
        BinaryPrimitives.WriteUInt64BigEndian(tail, BinaryPrimitives.ReadUInt64BigEndian(tail) ^ counter);
    }

    /// <summary>
    /// Seals under the next CTR: <c>header ‖ AEAD.Encrypt(sframe_key, nonce, header ‖ metadata, plaintext)</c>. The
    /// CTR moves before the AEAD runs, so no failure can lead to its reuse (RFC 9605 §7.4, §9.1).
    /// </summary>
    public SFrameError Seal(ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> plaintext, Span<byte> destination, out int written)
    {
        written = 0;
        if (_exhausted) return SFrameError.CounterExhausted;
        var header = new SFrameHeader(KeyId, _nextCounter);
        var size = header.Size + plaintext.Length + TagSize;
        if (destination.Length < size) throw new ArgumentException($"The SFrame ciphertext takes {size} bytes.", nameof(destination));
        if (_nextCounter == ulong.MaxValue) _exhausted = true;
        else _nextCounter++;

        var headerSize = header.WriteCore(destination);
        Span<byte> nonce = stackalloc byte[SFrameCipherSuites.NonceSize];
        Nonce(header.Counter, nonce);
        _aead.Seal(nonce, destination[..headerSize], metadata, plaintext, destination[headerSize..size]);
        written = size;
        return SFrameError.None;
    }

    /// <summary>
    /// Opens the frame whose header was decoded as <paramref name="header"/> from <paramref name="headerBytes"/>:
    /// replay check, AEAD, then the window moves.
    /// </summary>
    public SFrameError Open(SFrameHeader header, ReadOnlySpan<byte> headerBytes, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> sealedPart, Span<byte> plaintext)
    {
        if (_window is null) return SFrameError.UnknownKeyId;
        if (!_window.Check(header.Counter)) return SFrameError.Replay;
        Span<byte> nonce = stackalloc byte[SFrameCipherSuites.NonceSize];
        Nonce(header.Counter, nonce);
        if (!_aead.Open(nonce, headerBytes, metadata, sealedPart, plaintext[..(sealedPart.Length - TagSize)])) return SFrameError.Authentication;
        _window.Accept(header.Counter);
        return SFrameError.None;
    }

    public void Dispose()
    {
        _aead.Dispose();
        CryptographicOperations.ZeroMemory(_salt);
    }
}
