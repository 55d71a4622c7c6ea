using System.Numerics;
using System.Security.Cryptography;

namespace Wzp.Mls.SFrame;

/// <summary>
/// The MLS exporter of one epoch, <c>MLS-Exporter(Label, Context, Length)</c> of RFC 9420 §8.5. SFrame takes it
/// as an input so that it depends on no particular MLS implementation.
/// </summary>
public interface IMlsExporter
{
    /// <summary>Fills <paramref name="output"/> (its length is the exporter's Length) with the exported secret.</summary>
    void Export(ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, Span<byte> output);
}

/// <summary>Who sent a frame that opened, as its KID says (RFC 9605 §5.2, Figure 8).</summary>
public readonly record struct SFrameMlsSender(ulong Epoch, uint LeafIndex, ulong Context);

/// <summary>
/// The KID of an MLS sender, RFC 9605 §5.2: <c>KID = (context &lt;&lt; (S + E)) + (sender_index &lt;&lt; E) + (epoch % (1 &lt;&lt; E))</c>,
/// where E is fixed by the application and S is the fewest bits that hold every leaf index of the epoch's group.
/// </summary>
public static class SFrameMlsKeyId
{
    /// <summary>The widest epoch field accepted: with S at most 32 the KID always fits 64 bits.</summary>
    public const int MaxEpochBits = 32;

    /// <summary>S: the smallest value with <c>leafCount &lt;= 1 &lt;&lt; S</c>.</summary>
    public static int SenderBits(uint leafCount)
    {
        if (leafCount == 0) throw new ArgumentOutOfRangeException(nameof(leafCount), "A group has at least one leaf.");
        return leafCount == 1 ? 0 : 32 - BitOperations.LeadingZeroCount(leafCount - 1);
    }

    public static ulong Compose(ulong context, uint senderIndex, ulong epoch, int senderBits, int epochBits)
    {
        ValidateBits(senderBits, epochBits);
        if (senderBits < 32 && senderIndex >> senderBits != 0)
            throw new ArgumentOutOfRangeException(nameof(senderIndex), senderIndex, $"A sender index of {senderBits} bits.");
        var low = senderBits + epochBits;
        if (low == 64 ? context != 0 : context >> low != 0)
            throw new ArgumentOutOfRangeException(nameof(context), context, $"A context of {64 - low} bits.");
        return ComposeCore(context, senderIndex, epoch, senderBits, epochBits);
    }

    public static void Decompose(ulong keyId, int senderBits, int epochBits, out ulong context, out uint senderIndex, out ulong epochLowBits)
    {
        ValidateBits(senderBits, epochBits);
        DecomposeCore(keyId, senderBits, epochBits, out context, out senderIndex, out epochLowBits);
    }

    internal static ulong EpochMask(int epochBits) => (1UL << epochBits) - 1; // epochBits <= 32

    internal static ulong ComposeCore(ulong context, uint senderIndex, ulong epoch, int senderBits, int epochBits)
    {
        var low = senderBits + epochBits;
        var high = low == 64 ? 0 : context << low; // C# masks shift counts: << 64 would be << 0
        return high | (ulong)senderIndex << epochBits | (epoch & EpochMask(epochBits));
    }

    internal static void DecomposeCore(ulong keyId, int senderBits, int epochBits, out ulong context, out uint senderIndex, out ulong epochLowBits)
    {
        var low = senderBits + epochBits;
        epochLowBits = keyId & EpochMask(epochBits);
        senderIndex = (uint)((keyId >> epochBits) & ((1UL << senderBits) - 1));
        context = low == 64 ? 0 : keyId >> low;
    }

    private static void ValidateBits(int senderBits, int epochBits)
    {
        if (epochBits is < 1 or > MaxEpochBits) throw new ArgumentOutOfRangeException(nameof(epochBits), epochBits, $"E is 1 to {MaxEpochBits} bits.");
        if (senderBits is < 0 or > 32) throw new ArgumentOutOfRangeException(nameof(senderBits), senderBits, "S is 0 to 32 bits.");
    }
}

/// <summary>
/// SFrame keyed by MLS, RFC 9605 §5.2. Each epoch gives one <c>base_key = MLS-Exporter("SFrame 1.0 Base Key", "", Nk)</c>
/// shared by the group; each member encrypts under the KIDs that carry its leaf index and the epoch's low E bits,
/// so <c>derive_key_salt(KID, base_key)</c> gives every sender its own key and salt. This member's KIDs only
/// seal and every other member's only open (§4.4.1). Keys for a KID are derived when first used and kept with
/// the epoch; sealing and opening then allocate nothing.
/// </summary>
/// <remarks>
/// Sealing uses the newest installed epoch. Older epochs stay open for frames still in flight until
/// <see cref="RetireEpoch"/> or <see cref="RetireEpochsBefore"/>, or until a newer epoch with the same low E bits
/// replaces them, as §5.2 requires. Thread-safe in the manner of <see cref="SFrameContext"/>.
/// </remarks>
public sealed class SFrameMlsContext : IDisposable
{
    private readonly Dictionary<ulong, Epoch> _epochs = []; // by the epoch's low E bits
    private readonly Lock _sendLock = new();
    private readonly Lock _receiveLock = new();
    private readonly int _replayWindow;
    private Epoch? _sendEpoch;
    private ulong? _newest;
    private bool _disposed;

    /// <param name="suite">The cipher suite of the session.</param>
    /// <param name="epochBits">E, set by the application: up to 2^E epochs can be open at once.</param>
    /// <param name="replayWindow">Frames of reordering tolerated per sender: a positive multiple of 64.</param>
    public SFrameMlsContext(SFrameCipherSuite suite, int epochBits, int replayWindow = SFrameContext.DefaultReplayWindow)
    {
        SFrameCipherSuites.ThrowIfUnsupported(suite, nameof(suite));
        if (epochBits is < 1 or > SFrameMlsKeyId.MaxEpochBits)
            throw new ArgumentOutOfRangeException(nameof(epochBits), epochBits, $"E is 1 to {SFrameMlsKeyId.MaxEpochBits} bits.");
        SFrameContext.ValidateReplayWindow(replayWindow, nameof(replayWindow));
        CipherSuite = suite;
        EpochBits = epochBits;
        _replayWindow = replayWindow;
    }

    /// <summary>The exporter label of §5.2.</summary>
    public static ReadOnlySpan<byte> BaseKeyLabel => "SFrame 1.0 Base Key"u8;

    public SFrameCipherSuite CipherSuite { get; }

    /// <summary>E.</summary>
    public int EpochBits { get; }

    /// <summary>The epoch frames are sealed under, or null before the first epoch or after it was retired.</summary>
    public ulong? SendEpoch
    {
        get
        {
            using (_sendLock.EnterScope()) return _sendEpoch?.Number;
        }
    }

    /// <summary>Installs an epoch from its MLS exporter: <c>base_key = MLS-Exporter("SFrame 1.0 Base Key", "", Nk)</c>.</summary>
    /// <param name="exporter">The exporter of that epoch.</param>
    /// <param name="epoch">The MLS epoch; each call must name a later epoch than the last, so no KID and CTR are used twice.</param>
    /// <param name="leafCount">The leaves of the epoch's ratchet tree, blank ones included: leaf indices run below it, and S follows from it.</param>
    /// <param name="ownLeafIndex">This member's leaf index: its KIDs seal and are refused on opening.</param>
    /// <param name="senderBits">S, when the application fixes it for the session instead of following the group's size; at least the S of <paramref name="leafCount"/>.</param>
    public void AddEpoch(ulong epoch, IMlsExporter exporter, uint leafCount, uint ownLeafIndex, int? senderBits = null)
    {
        ArgumentNullException.ThrowIfNull(exporter);
        Span<byte> baseKey = stackalloc byte[CipherSuite.KeySize()];
        try
        {
            exporter.Export(BaseKeyLabel, ReadOnlySpan<byte>.Empty, baseKey);
            AddEpoch(epoch, baseKey, leafCount, ownLeafIndex, senderBits);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(baseKey);
        }
    }

    /// <summary>Installs an epoch from its already exported base key (Nk bytes); the parameters are those of the exporter overload.</summary>
    public void AddEpoch(ulong epoch, ReadOnlySpan<byte> baseKey, uint leafCount, uint ownLeafIndex, int? senderBits = null)
    {
        if (baseKey.Length != CipherSuite.KeySize())
            throw new ArgumentException($"The base key of {CipherSuite} is exported with Nk = {CipherSuite.KeySize()} bytes.", nameof(baseKey));
        var minimum = SFrameMlsKeyId.SenderBits(leafCount);
        var bits = senderBits ?? minimum;
        if (bits < minimum || bits > 32 || bits + EpochBits > 64)
            throw new ArgumentOutOfRangeException(nameof(senderBits), senderBits, $"S must hold {leafCount} leaves ({minimum} bits) and fit beside E = {EpochBits}.");
        if (ownLeafIndex >= leafCount) throw new ArgumentOutOfRangeException(nameof(ownLeafIndex), ownLeafIndex, "Not a leaf of the group.");
        var state = new Epoch(epoch, bits, leafCount, ownLeafIndex, CipherSuite, baseKey);
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (_disposed || epoch <= _newest)
            {
                state.Dispose();
                ObjectDisposedException.ThrowIf(_disposed, this);
                throw new InvalidOperationException($"Epoch {epoch} is not after epoch {_newest}: installing it again would reuse CTR values.");
            }
            var slot = epoch & SFrameMlsKeyId.EpochMask(EpochBits);
            // §5.2: "receivers MUST remove an old epoch when a new epoch with the same low-order E bits is introduced".
            if (_epochs.Remove(slot, out var old)) old.Dispose();
            _epochs.Add(slot, state);
            _sendEpoch = state;
            _newest = epoch;
        }
    }

    /// <summary>Removes an epoch and wipes its keys: its frames are refused with <see cref="SFrameError.UnknownEpoch"/>.</summary>
    /// <returns>False when the epoch was not installed (never, or already replaced).</returns>
    public bool RetireEpoch(ulong epoch)
    {
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            var slot = epoch & SFrameMlsKeyId.EpochMask(EpochBits);
            if (!_epochs.TryGetValue(slot, out var state) || state.Number != epoch) return false;
            Retire(slot, state);
            return true;
        }
    }

    /// <summary>Retires every epoch before <paramref name="epoch"/>, typically once a grace period after a commit has passed.</summary>
    public void RetireEpochsBefore(ulong epoch)
    {
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            foreach (var (slot, state) in _epochs.ToArray())
            {
                if (state.Number < epoch) Retire(slot, state);
            }
        }
    }

    /// <summary>
    /// Seals under the send epoch with this member's KID for <paramref name="context"/> (0 gives the shortest
    /// header; other values let one member send several uncoordinated streams), writing
    /// <c>header ‖ ciphertext ‖ tag</c> to <paramref name="destination"/>.
    /// </summary>
    /// <returns><see cref="SFrameError.None"/>, <see cref="SFrameError.UnknownEpoch"/> (no epoch to send in) or <see cref="SFrameError.CounterExhausted"/>.</returns>
    /// <exception cref="ArgumentException">The destination is too small (<see cref="SFrameContext.MaxSealedSize"/>) or overlaps the plaintext.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="context"/> does not fit the KID beside S and E.</exception>
    public SFrameError Seal(ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> plaintext, Span<byte> destination, out int written, ulong context = 0)
    {
        if (plaintext.Overlaps(destination)) throw new ArgumentException("Plaintext and destination overlap.", nameof(destination));
        written = 0;
        using (_sendLock.EnterScope())
        {
            var epoch = _sendEpoch;
            if (epoch is null) return SFrameError.UnknownEpoch;
            var keyId = SFrameMlsKeyId.Compose(context, epoch.OwnIndex, epoch.Number, epoch.SenderBits, EpochBits);
            if (!epoch.Send.TryGetValue(keyId, out var key))
            {
                key = SFrameKey.FromSecret(CipherSuite, keyId, epoch.Secret, _replayWindow, send: true);
                epoch.Send.Add(keyId, key);
            }
            return key.Seal(metadata, plaintext, destination, out written);
        }
    }

    /// <summary>
    /// Opens a frame of another member: its KID's low E bits pick the epoch, the next S bits the sender, and that
    /// sender's key for the KID (derived on first use) authenticates it; then the sender's replay window moves.
    /// Never throws on what <paramref name="sframeCiphertext"/> holds.
    /// </summary>
    /// <param name="metadata">The application's metadata, authenticated with the header.</param>
    /// <param name="sframeCiphertext">The frame as received: header, ciphertext, tag.</param>
    /// <param name="plaintext">At least <paramref name="sframeCiphertext"/>.Length bytes always suffice.</param>
    /// <param name="written">The plaintext's length when the frame opened, else 0.</param>
    /// <param name="sender">The epoch, leaf index and context of the KID when the frame opened.</param>
    public SFrameError Open(ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> sframeCiphertext, Span<byte> plaintext, out int written, out SFrameMlsSender sender)
    {
        written = 0;
        sender = default;
        var tagSize = CipherSuite.TagSize();
        var error = SFrameContext.Parse(sframeCiphertext, tagSize, out var header, out var headerSize);
        if (error != SFrameError.None) return error;
        var sealedPart = sframeCiphertext[headerSize..];
        var length = sealedPart.Length - tagSize;
        if (plaintext.Length < length) throw new ArgumentException($"The frame's plaintext takes {length} bytes.", nameof(plaintext));
        using (_receiveLock.EnterScope())
        {
            if (!_epochs.TryGetValue(header.KeyId & SFrameMlsKeyId.EpochMask(EpochBits), out var epoch)) return SFrameError.UnknownEpoch;
            SFrameMlsKeyId.DecomposeCore(header.KeyId, epoch.SenderBits, EpochBits, out var context, out var index, out _);
            if (index >= epoch.LeafCount) return SFrameError.UnknownKeyId;
            if (index == epoch.OwnIndex) return SFrameError.SenderIsSelf;
            var headerBytes = sframeCiphertext[..headerSize];
            if (epoch.Receive.TryGetValue(header.KeyId, out var key))
            {
                error = key.Open(header, headerBytes, metadata, sealedPart, plaintext);
            }
            else
            {
                // Kept only once a frame authenticates under it, so forged KIDs (any context value fits) cannot
                // grow the epoch's key store; a forgery costs one derivation.
                key = SFrameKey.FromSecret(CipherSuite, header.KeyId, epoch.Secret, _replayWindow, send: false);
                error = key.Open(header, headerBytes, metadata, sealedPart, plaintext);
                if (error == SFrameError.None) epoch.Receive.Add(header.KeyId, key);
                else key.Dispose();
            }
            if (error != SFrameError.None) return error;
            sender = new SFrameMlsSender(epoch.Number, index, context);
        }
        written = length;
        return SFrameError.None;
    }

    public void Dispose()
    {
        using (_sendLock.EnterScope())
        using (_receiveLock.EnterScope())
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var epoch in _epochs.Values) epoch.Dispose();
            _epochs.Clear();
            _sendEpoch = null;
        }
    }

    private void Retire(ulong slot, Epoch state)
    {
        _epochs.Remove(slot);
        if (_sendEpoch == state) _sendEpoch = null;
        state.Dispose();
    }

    /// <summary>One epoch: its sframe_secret (the base key is not kept), the group's shape, and the keys derived so far.</summary>
    private sealed class Epoch : IDisposable
    {
        public Epoch(ulong number, int senderBits, uint leafCount, uint ownIndex, SFrameCipherSuite suite, ReadOnlySpan<byte> baseKey)
        {
            Number = number;
            SenderBits = senderBits;
            LeafCount = leafCount;
            OwnIndex = ownIndex;
            Secret = GC.AllocateArray<byte>(suite.HashSize(), pinned: true);
            SFrameKeyDerivation.ExtractSecret(suite, baseKey, Secret);
        }

        public ulong Number { get; }

        public int SenderBits { get; }

        public uint LeafCount { get; }

        public uint OwnIndex { get; }

        public byte[] Secret { get; }

        public Dictionary<ulong, SFrameKey> Send { get; } = [];

        public Dictionary<ulong, SFrameKey> Receive { get; } = [];

        public void Dispose()
        {
            foreach (var key in Send.Values) key.Dispose();
            foreach (var key in Receive.Values) key.Dispose();
            Send.Clear();
            Receive.Clear();
            CryptographicOperations.ZeroMemory(Secret);
        }
    }
}
