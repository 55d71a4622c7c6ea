namespace Wzp.Mls.SFrame;

/// <summary>
/// The SFrame context of RFC 9605 Appendix A: one cipher suite, keys by KID, each marked for sending or for
/// receiving and never both (§4.4.1). Sending keys count CTR up from zero; receiving keys keep a replay window.
/// Sealing and opening write into the caller's buffers and allocate nothing once a key is installed.
/// </summary>
/// <remarks>
/// Safe to use from several threads: sealing and opening have a lock each, so a send loop and a receive loop do
/// not wait for each other, and installing or removing a key takes the lock of its direction.
/// </remarks>
public sealed class SFrameContext : IDisposable
{
    /// <summary>The default replay window: 1,024 frames, 20 s of audio at 20 ms frames.</summary>
    public const int DefaultReplayWindow = 1024;

    private readonly Dictionary<ulong, SFrameKey> _send = [];
    private readonly Dictionary<ulong, SFrameKey> _receive = [];
    private readonly Lock _sendLock = new();
    private readonly Lock _receiveLock = new();
    private readonly int _replayWindow;
    private bool _disposed;

    /// <param name="suite">The cipher suite of every key of this context.</param>
    /// <param name="replayWindow">Frames of reordering tolerated per receiving KID: a positive multiple of 64.</param>
    public SFrameContext(SFrameCipherSuite suite, int replayWindow = DefaultReplayWindow)
    {
        SFrameCipherSuites.ThrowIfUnsupported(suite, nameof(suite));
        ValidateReplayWindow(replayWindow, nameof(replayWindow));
        CipherSuite = suite;
        _replayWindow = replayWindow;
    }

    public SFrameCipherSuite CipherSuite { get; }

    /// <summary>The largest SFrame ciphertext of a plaintext: a 17-byte header, the plaintext and the tag.</summary>
    public static int MaxSealedSize(SFrameCipherSuite suite, int plaintextLength) => SFrameHeader.MaxSize + plaintextLength + suite.TagSize();

    /// <summary>Installs a key to encrypt with under <paramref name="keyId"/>.</summary>
    /// <param name="keyId">The KID, which no other key of this context may have.</param>
    /// <param name="baseKey">The base_key the sframe_key and sframe_salt of the KID are derived from (§4.4.2).</param>
    /// <param name="firstCounter">The first CTR; nonzero only to resume a context whose last CTR was stored (§9.1).</param>
    public void AddSendKey(ulong keyId, ReadOnlySpan<byte> baseKey, ulong firstCounter = 0)
    {
        var key = SFrameKey.FromBaseKey(CipherSuite, keyId, baseKey, _replayWindow, send: true, firstCounter);
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (!TryInstall(_send, key)) throw AlreadyPresent(key);
        }
    }

    /// <summary>Installs a key to decrypt frames carrying <paramref name="keyId"/>.</summary>
    public void AddReceiveKey(ulong keyId, ReadOnlySpan<byte> baseKey)
    {
        var key = SFrameKey.FromBaseKey(CipherSuite, keyId, baseKey, _replayWindow, send: false);
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (!TryInstall(_receive, key)) throw AlreadyPresent(key);
        }
    }

    /// <summary>Removes and wipes the key of <paramref name="keyId"/>, whichever its direction.</summary>
    /// <returns>False when there was none.</returns>
    public bool RemoveKey(ulong keyId)
    {
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (_send.Remove(keyId, out var key) || _receive.Remove(keyId, out key))
            {
                key.Dispose();
                return true;
            }
            return false;
        }
    }

    /// <summary>The exact size <see cref="Seal"/> will write for the next frame under <paramref name="keyId"/>, or -1 without that key.</summary>
    public int SealedSize(ulong keyId, int plaintextLength)
    {
        using (_sendLock.EnterScope())
        {
            return _send.TryGetValue(keyId, out var key) ? key.SealedSize(plaintextLength) : -1;
        }
    }

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> under the send key of <paramref name="keyId"/> and its next CTR, writing
    /// <c>header ‖ ciphertext ‖ tag</c> to <paramref name="destination"/>; the AAD is <c>header ‖ metadata</c>.
    /// </summary>
    /// <returns><see cref="SFrameError.None"/>, <see cref="SFrameError.UnknownKeyId"/> or <see cref="SFrameError.CounterExhausted"/>.</returns>
    /// <exception cref="ArgumentException">The destination is too small (see <see cref="MaxSealedSize"/>), or overlaps the plaintext.</exception>
    public SFrameError Seal(ulong keyId, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> plaintext, Span<byte> destination, out int written)
    {
        if (plaintext.Overlaps(destination)) throw new ArgumentException("Plaintext and destination overlap.", nameof(destination));
        using (_sendLock.EnterScope())
        {
            written = 0;
            return _send.TryGetValue(keyId, out var key) ? key.Seal(metadata, plaintext, destination, out written) : SFrameError.UnknownKeyId;
        }
    }

    /// <summary>
    /// Decrypts an SFrame ciphertext: the header picks the receive key, the CTR is checked against that KID's replay
    /// window, then the AEAD. Never throws on what <paramref name="sframeCiphertext"/> holds.
    /// </summary>
    /// <param name="metadata">The application's metadata, authenticated with the header.</param>
    /// <param name="sframeCiphertext">The frame as received: header, ciphertext, tag.</param>
    /// <param name="plaintext">At least <paramref name="sframeCiphertext"/>.Length bytes always suffice.</param>
    /// <param name="written">The plaintext's length when the frame opened, else 0.</param>
    /// <param name="header">The decoded header once it parsed, whatever happened after.</param>
    /// <exception cref="ArgumentException"><paramref name="plaintext"/> is shorter than the frame's plaintext.</exception>
    public SFrameError Open(ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> sframeCiphertext, Span<byte> plaintext, out int written, out SFrameHeader header)
    {
        written = 0;
        var error = Parse(sframeCiphertext, CipherSuite.TagSize(), out header, out var headerSize);
        if (error != SFrameError.None) return error;
        var sealedPart = sframeCiphertext[headerSize..];
        var length = sealedPart.Length - CipherSuite.TagSize();
        if (plaintext.Length < length) throw new ArgumentException($"The frame's plaintext takes {length} bytes.", nameof(plaintext));
        using (_receiveLock.EnterScope())
        {
            if (!_receive.TryGetValue(header.KeyId, out var key)) return SFrameError.UnknownKeyId;
            error = key.Open(header, sframeCiphertext[..headerSize], metadata, sealedPart, plaintext);
        }
        if (error == SFrameError.None) written = length;
        return error;
    }

    public void Dispose()
    {
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var key in _send.Values) key.Dispose();
            foreach (var key in _receive.Values) key.Dispose();
            _send.Clear();
            _receive.Clear();
        }
    }

    /// <summary>Header, then enough bytes for the tag.</summary>
    internal static SFrameError Parse(ReadOnlySpan<byte> sframeCiphertext, int tagSize, out SFrameHeader header, out int headerSize)
    {
        var error = SFrameHeader.TryRead(sframeCiphertext, out header, out headerSize);
        if (error != SFrameError.None) return error;
        return sframeCiphertext.Length - headerSize < tagSize ? SFrameError.TruncatedCiphertext : SFrameError.None;
    }

    internal static void ValidateReplayWindow(int replayWindow, string paramName)
    {
        if (replayWindow <= 0 || replayWindow % 64 != 0)
            throw new ArgumentOutOfRangeException(paramName, replayWindow, "A replay window is a positive multiple of 64 frames.");
    }

    private bool TryInstall(Dictionary<ulong, SFrameKey> store, SFrameKey key)
    {
        if (_disposed)
        {
            key.Dispose();
            throw new ObjectDisposedException(nameof(SFrameContext));
        }
        // One KID, one direction: a key both sending and receiving would let a reflected frame be accepted as
        // someone else's, and a second send key under one KID would reuse nonces.
        if (_send.ContainsKey(key.KeyId) || _receive.ContainsKey(key.KeyId))
        {
            key.Dispose();
            return false;
        }
        store.Add(key.KeyId, key);
        return true;
    }

    private static InvalidOperationException AlreadyPresent(SFrameKey key) => new($"KID {key.KeyId} already has a key.");
}
