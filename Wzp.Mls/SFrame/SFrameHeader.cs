using System.Buffers.Binary;
using System.Numerics;

namespace Wzp.Mls.SFrame;

/// <summary>
/// The SFrame header of RFC 9605 §4.3: a config byte <c>X|KKK|Y|CCC</c>, then the KID and the CTR as big-endian
/// integers of the fewest bytes, each only when it does not fit the config byte's three bits (values 0-7).
/// </summary>
public readonly record struct SFrameHeader(ulong KeyId, ulong Counter)
{
    /// <summary>The config byte and two 8-byte values.</summary>
    public const int MaxSize = 17;

    /// <summary>The encoded size: 1 to 17 bytes.</summary>
    public int Size => 1 + ExtendedLength(KeyId) + ExtendedLength(Counter);

    /// <summary>Writes the header at the start of <paramref name="destination"/>.</summary>
    /// <returns>The bytes written, <see cref="Size"/>.</returns>
    public int WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException($"An SFrame header of KID {KeyId} and CTR {Counter} takes {Size} bytes.", nameof(destination));
        return WriteCore(destination);
    }

    internal int WriteCore(Span<byte> destination)
    {
        var kidLength = ExtendedLength(KeyId);
        var ctrLength = ExtendedLength(Counter);
        var config = kidLength == 0 ? (int)KeyId << 4 : 0x80 | (kidLength - 1) << 4;
        config |= ctrLength == 0 ? (int)Counter : 0x08 | (ctrLength - 1);
        destination[0] = (byte)config;
        WriteBigEndian(KeyId, destination.Slice(1, kidLength));
        WriteBigEndian(Counter, destination.Slice(1 + kidLength, ctrLength));
        return 1 + kidLength + ctrLength;
    }

    /// <summary>
    /// Decodes the header at the start of <paramref name="source"/>; the bytes after it are not looked at.
    /// Never throws: any byte string is either a header or one of the header errors.
    /// </summary>
    /// <returns><see cref="SFrameError.None"/>, <see cref="SFrameError.TruncatedHeader"/>,
    /// <see cref="SFrameError.NonMinimalKeyId"/> or <see cref="SFrameError.NonMinimalCounter"/>.</returns>
    public static SFrameError TryRead(ReadOnlySpan<byte> source, out SFrameHeader header, out int size)
    {
        header = default;
        size = 0;
        if (source.IsEmpty) return SFrameError.TruncatedHeader;
        int config = source[0];
        var kidLength = (config & 0x80) == 0 ? 0 : ((config >> 4) & 0x07) + 1;
        var ctrLength = (config & 0x08) == 0 ? 0 : (config & 0x07) + 1;
        if (source.Length < 1 + kidLength + ctrLength) return SFrameError.TruncatedHeader;
        var kid = kidLength == 0 ? (ulong)((config >> 4) & 0x07) : ReadBigEndian(source.Slice(1, kidLength));
        var ctr = ctrLength == 0 ? (ulong)(config & 0x07) : ReadBigEndian(source.Slice(1 + kidLength, ctrLength));
        // One value, one encoding: the KID is part of the AAD, and two spellings of one KID would let a relay
        // change the header bytes of a frame while the receiver still finds the same key.
        if (ExtendedLength(kid) != kidLength) return SFrameError.NonMinimalKeyId;
        if (ExtendedLength(ctr) != ctrLength) return SFrameError.NonMinimalCounter;
        header = new SFrameHeader(kid, ctr);
        size = 1 + kidLength + ctrLength;
        return SFrameError.None;
    }

    /// <summary>Decodes like <see cref="TryRead"/>, throwing <see cref="SFrameFormatException"/> (only) on a malformed header.</summary>
    public static SFrameHeader Read(ReadOnlySpan<byte> source, out int size)
    {
        var error = TryRead(source, out var header, out size);
        return error == SFrameError.None ? header : throw new SFrameFormatException(error);
    }

    /// <summary>0 for a value carried in the config byte, else the fewest bytes that hold it (1-8).</summary>
    internal static int ExtendedLength(ulong value) => value < 8 ? 0 : (71 - BitOperations.LeadingZeroCount(value)) / 8;

    private static void WriteBigEndian(ulong value, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        Span<byte> all = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(all, value);
        all[(8 - destination.Length)..].CopyTo(destination);
    }

    private static ulong ReadBigEndian(ReadOnlySpan<byte> source)
    {
        ulong value = 0;
        foreach (var b in source) value = value << 8 | b;
        return value;
    }
}
