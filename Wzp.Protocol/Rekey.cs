using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Wzp.Protocol;

/// <summary>What a completed rekey sends: <see cref="Done"/>, then <see cref="Next"/> when triggers arrived meanwhile.</summary>
public sealed record RekeyCompletion(RekeyDone Done, Rekey? Next);

/// <summary>Rekey derivations shared by both ends (PROTOCOL.md §7).</summary>
internal static class RekeyKeys
{
    public static byte[] SignedBytes(ReadOnlySpan<byte> transcriptHash, uint epoch, ReadOnlySpan<byte> ephemeral)
    {
        var bytes = new byte[12 + transcriptHash.Length + 4 + ephemeral.Length];
        "wzp/1 rekey\0"u8.CopyTo(bytes);
        transcriptHash.CopyTo(bytes.AsSpan(12));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12 + transcriptHash.Length), epoch);
        ephemeral.CopyTo(bytes.AsSpan(16 + transcriptHash.Length));
        return bytes;
    }

    public static byte[] AckMacInput(uint epoch, ReadOnlySpan<byte> initiatorEphemeral, ReadOnlySpan<byte> responderEphemeral)
    {
        var label = "wzp/1 rekey ack\0"u8;
        var bytes = new byte[label.Length + 4 + initiatorEphemeral.Length + responderEphemeral.Length];
        label.CopyTo(bytes);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(label.Length), epoch);
        initiatorEphemeral.CopyTo(bytes.AsSpan(label.Length + 4));
        responderEphemeral.CopyTo(bytes.AsSpan(label.Length + 4 + initiatorEphemeral.Length));
        return bytes;
    }

    /// <summary><c>chain_{e+1} = Expand(Extract(chain_e, X25519), "wzp/1 chain", 32)</c>; null on an all-zero X25519 output.</summary>
    public static byte[]? NextChain(ReadOnlySpan<byte> chain, EphemeralKey ours, ReadOnlySpan<byte> theirs)
    {
        Span<byte> shared = stackalloc byte[Primitives.KeySize];
        Span<byte> prk = stackalloc byte[Primitives.HashSize];
        try
        {
            if (!Primitives.X25519Agree(ours, theirs, shared)) return null;
            Primitives.Extract(chain, shared, prk);
            return Primitives.Expand(prk, "wzp/1 chain"u8, Primitives.KeySize);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(prk);
        }
    }
}

/// <summary>
/// The end of a hop that starts rekeys (the gateway; the offering gateway of a link). One rekey at a time;
/// requests that arrive meanwhile coalesce into one more, started when the current one completes.
/// </summary>
public sealed class RekeyInitiator : IDisposable
{
    private readonly Identity _signer;
    private readonly byte[] _transcriptHash;
    private readonly HopKeySchedule _keys;
    private readonly Lock _lock = new();
    private EphemeralKey? _pending;
    private uint _pendingEpoch;
    private bool _another;

    internal RekeyInitiator(Identity signer, byte[] transcriptHash, HopKeySchedule keys)
    {
        _signer = signer;
        _transcriptHash = transcriptHash;
        _keys = keys;
    }

    public bool InProgress
    {
        get { lock (_lock) return _pending is not null; }
    }

    /// <summary>Starts a rekey, or (when one is in progress) records that another is wanted and returns null.</summary>
    /// <param name="ephemeral">A fixed ephemeral key for vectors; fresh by default. Owned by the initiator.</param>
    public Rekey? Request(EphemeralKey? ephemeral = null)
    {
        lock (_lock)
        {
            if (_pending is not null)
            {
                _another = true;
                ephemeral?.Dispose();
                return null;
            }
            _pending = ephemeral ?? EphemeralKey.Generate();
            _pendingEpoch = _keys.Current.Number + 1;
            var signature = _signer.Sign(RekeyKeys.SignedBytes(_transcriptHash, _pendingEpoch, _pending.PublicKey));
            return new Rekey(_pendingEpoch, _pending.PublicKey, signature);
        }
    }

    /// <summary>Verifies the ack, installs and switches to the new epoch, and says what to send next.</summary>
    public Step<RekeyCompletion> OnAck(RekeyAck ack)
    {
        ArgumentNullException.ThrowIfNull(ack);
        lock (_lock)
        {
            if (_pending is null || ack.Epoch != _pendingEpoch)
                return Step<RekeyCompletion>.Fail(ErrorCodes.BadRequest, $"unexpected rekeyAck for epoch {ack.Epoch}");
            if (ack.EphemeralKey is not { Length: Primitives.KeySize } || ack.Mac is not { Length: Primitives.MacSize } ||
                !Primitives.HmacSha256Verify(_keys.CurrentRekeyMacKey, RekeyKeys.AckMacInput(ack.Epoch, _pending.PublicKey, ack.EphemeralKey), ack.Mac))
                return Step<RekeyCompletion>.Fail(ErrorCodes.BadMac, "rekeyAck MAC does not match");
            var chain = RekeyKeys.NextChain(_keys.CurrentChain, _pending, ack.EphemeralKey);
            if (chain is null) return Step<RekeyCompletion>.Fail(ErrorCodes.BadRequest, "rekey key agreement failed");
            try
            {
                _keys.InstallNext(chain);
                _keys.SwitchToNext();
            }
            finally
            {
                CryptographicOperations.ZeroMemory(chain);
            }
            _pending.Dispose();
            _pending = null;
            var done = new RekeyDone(ack.Epoch);
            Rekey? next = null;
            if (_another)
            {
                _another = false;
                next = Request();
            }
            return Step<RekeyCompletion>.Ok(new RekeyCompletion(done, next));
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _pending?.Dispose();
            _pending = null;
        }
    }
}

/// <summary>The end of a hop that answers rekeys (the client; the accepting gateway of a link).</summary>
public sealed class RekeyResponder
{
    private readonly byte[] _initiatorKey;
    private readonly byte[] _transcriptHash;
    private readonly HopKeySchedule _keys;

    internal RekeyResponder(byte[] initiatorKey, byte[] transcriptHash, HopKeySchedule keys)
    {
        _initiatorKey = initiatorKey;
        _transcriptHash = transcriptHash;
        _keys = keys;
    }

    /// <summary>
    /// Verifies a rekey, installs the new epoch's receive keys (sending stays on the current epoch) and returns the
    /// ack to send.
    /// </summary>
    /// <param name="rekey">The initiator's message.</param>
    /// <param name="ephemeral">A fixed ephemeral key for vectors; fresh by default.</param>
    public Step<RekeyAck> OnRekey(Rekey rekey, EphemeralKey? ephemeral = null)
    {
        ArgumentNullException.ThrowIfNull(rekey);
        using var ours = ephemeral ?? EphemeralKey.Generate();
        if (_keys.Next is not null || rekey.Epoch != _keys.Current.Number + 1)
            return Step<RekeyAck>.Fail(ErrorCodes.BadRequest, $"unexpected rekey to epoch {rekey.Epoch}");
        if (rekey.EphemeralKey is not { Length: Primitives.KeySize } || rekey.Signature is not { Length: Identity.SignatureSize } ||
            !Identity.Verify(_initiatorKey, RekeyKeys.SignedBytes(_transcriptHash, rekey.Epoch, rekey.EphemeralKey), rekey.Signature))
            return Step<RekeyAck>.Fail(ErrorCodes.BadSignature, "rekey signature does not verify");
        var chain = RekeyKeys.NextChain(_keys.CurrentChain, ours, rekey.EphemeralKey);
        if (chain is null) return Step<RekeyAck>.Fail(ErrorCodes.BadRequest, "rekey key agreement failed");
        var mac = new byte[Primitives.MacSize];
        Primitives.HmacSha256(_keys.CurrentRekeyMacKey, RekeyKeys.AckMacInput(rekey.Epoch, rekey.EphemeralKey, ours.PublicKey), mac);
        try
        {
            _keys.InstallNext(chain);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chain);
        }
        return Step<RekeyAck>.Ok(new RekeyAck(rekey.Epoch, ours.PublicKey, mac));
    }

    /// <summary>Switches sending to the announced epoch; the error when it names no installed epoch.</summary>
    public Error? OnRekeyDone(RekeyDone done)
    {
        ArgumentNullException.ThrowIfNull(done);
        if (_keys.Next is not { } next || next.Number != done.Epoch)
            return new Error(ErrorCodes.BadRequest, $"unexpected rekeyDone for epoch {done.Epoch}");
        _keys.SwitchToNext();
        return null;
    }
}

/// <summary>When a hop must rekey regardless of membership (PROTOCOL.md §7).</summary>
public static class RekeyTriggers
{
    public const long MaxDatagramsPerEpoch = 1L << 24;
    public static readonly TimeSpan MaxEpochAge = TimeSpan.FromMinutes(10);

    /// <summary>2^24 datagrams either way, 10 minutes, or a packet number at 2^31.</summary>
    public static bool IsDue(HopKeySchedule keys)
    {
        var current = keys.Current;
        return current.Sent >= MaxDatagramsPerEpoch || current.Received >= MaxDatagramsPerEpoch || keys.CurrentAge >= MaxEpochAge ||
            current.Sent >= HopKeySchedule.RekeyPacketNumber;
    }
}
