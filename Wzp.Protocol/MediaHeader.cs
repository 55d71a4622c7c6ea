using System.Buffers.Binary;

namespace Wzp.Protocol;

/// <summary>Codec ids of the WarzonePhone media header; other values are invalid on the wire.</summary>
public enum CodecId : byte
{
    Opus24k = 0,
    Opus16k = 1,
    Opus6k = 2,
    Codec2_3200 = 3,
    Codec2_1200 = 4,
    ComfortNoise = 5,
    Opus32k = 6,
    Opus48k = 7,
    Opus64k = 8,
}

/// <summary>
/// The 12-byte plaintext media header (PROTOCOL.md §6), the original WarzonePhone layout. The relay carries
/// it unchanged from the speaker to every listener.
/// Byte 0 = V(1) T(1) CodecId(4) Q(1) FecHi(1); byte 1 = FecLo(6) 00; sequence u16; timestamp u32 (ms);
/// FEC block; FEC symbol; reserved; CSRC count.
/// </summary>
public readonly record struct MediaHeader(
    bool V,
    bool T,
    CodecId Codec,
    bool HasQualityReport,
    byte FecRatioEncoded,
    ushort Sequence,
    uint Timestamp,
    byte FecBlock,
    byte FecSymbol,
    byte Reserved,
    byte CsrcCount)
{
    public const int Size = 12;
    public const byte MaxFecRatioEncoded = 127;

    /// <summary>The 7-bit FEC ratio encoding: <c>min(127, round(r * 63.5))</c>.</summary>
    public static byte EncodeFecRatio(double ratio) =>
        double.IsNaN(ratio) || ratio <= 0 ? (byte)0 : (byte)Math.Min(MaxFecRatioEncoded, Math.Round(ratio * 63.5, MidpointRounding.AwayFromZero));

    public double FecRatio => FecRatioEncoded / 63.5;

    public static bool IsValidCodec(int codec) => codec is >= 0 and <= (int)CodecId.Opus64k;

    /// <summary>Parses a header; false on a short span, an invalid codec, or non-zero bits the layout fixes at 0.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out MediaHeader header)
    {
        header = default;
        if (source.Length < Size) return false;
        var b0 = source[0];
        var b1 = source[1];
        var codec = (b0 >> 2) & 0x0F;
        if (!IsValidCodec(codec) || (b1 & 0x03) != 0) return false;
        header = new MediaHeader(
            V: (b0 & 0x80) != 0,
            T: (b0 & 0x40) != 0,
            Codec: (CodecId)codec,
            HasQualityReport: (b0 & 0x02) != 0,
            FecRatioEncoded: (byte)(((b0 & 0x01) << 6) | (b1 >> 2)),
            Sequence: BinaryPrimitives.ReadUInt16BigEndian(source[2..]),
            Timestamp: BinaryPrimitives.ReadUInt32BigEndian(source[4..]),
            FecBlock: source[8],
            FecSymbol: source[9],
            Reserved: source[10],
            CsrcCount: source[11]);
        return true;
    }

    /// <summary>Writes the 12 bytes; throws on a value the wire cannot carry (a caller bug, not bad input).</summary>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("Destination shorter than a media header.", nameof(destination));
        if (!IsValidCodec((int)Codec)) throw new ArgumentOutOfRangeException(nameof(Codec), Codec, "Invalid codec id.");
        if (FecRatioEncoded > MaxFecRatioEncoded) throw new ArgumentOutOfRangeException(nameof(FecRatioEncoded), FecRatioEncoded, "The FEC ratio has 7 bits.");
        destination[0] = (byte)((V ? 0x80 : 0) | (T ? 0x40 : 0) | ((int)Codec << 2) | (HasQualityReport ? 0x02 : 0) | (FecRatioEncoded >> 6));
        destination[1] = (byte)((FecRatioEncoded & 0x3F) << 2);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], Sequence);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], Timestamp);
        destination[8] = FecBlock;
        destination[9] = FecSymbol;
        destination[10] = Reserved;
        destination[11] = CsrcCount;
    }

    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        Write(bytes);
        return bytes;
    }
}

/// <summary>
/// The 4-byte quality report a sender appends to its payload (inside the ciphertext) when Q=1:
/// loss (0-255 = 0-100 %), RTT in 4 ms units, jitter in ms, bitrate cap in kbps.
/// </summary>
public readonly record struct QualityReport(byte Loss, byte RttIn4Ms, byte JitterMs, byte BitrateCapKbps)
{
    public const int Size = 4;

    public double LossPercent => Loss * 100.0 / 255;

    public int RttMs => RttIn4Ms * 4;

    public static bool TryRead(ReadOnlySpan<byte> source, out QualityReport report)
    {
        report = default;
        if (source.Length < Size) return false;
        report = new QualityReport(source[0], source[1], source[2], source[3]);
        return true;
    }

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("Destination shorter than a quality report.", nameof(destination));
        destination[0] = Loss;
        destination[1] = RttIn4Ms;
        destination[2] = JitterMs;
        destination[3] = BitrateCapKbps;
    }
}
