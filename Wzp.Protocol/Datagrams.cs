using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Wzp.Protocol;

/// <summary>Why a received datagram was dropped. Every drop is counted by the caller; none closes a connection.</summary>
public enum DropReason
{
    None = 0,
    /// <summary>Too short, too long, or an invalid media header.</summary>
    Malformed,
    /// <summary>The epoch byte names no installed epoch.</summary>
    UnknownEpoch,
    /// <summary>The AEAD tag did not verify: forged, corrupted or under another key.</summary>
    Authentication,
    /// <summary>Already seen, or older than the replay window.</summary>
    Replay,
}

/// <summary>
/// The media datagram of one client-gateway hop (PROTOCOL.md §6):
/// <c>MediaHeader(12) ‖ epoch(1) ‖ packetNumber(4) ‖ source(2) ‖ AEAD(payload ‖ QualityReport?) ‖ tag(16)</c>,
/// AAD = the first 19 bytes. Sealing writes into the caller's buffer and opening decrypts into the caller's
/// buffer; neither allocates.
/// </summary>
public static class MediaDatagram
{
    public const int PrefixSize = MediaHeader.Size + 1 + 4 + 2;
    public const int MinSize = PrefixSize + DirectionalKey.TagSize;
    public const int MaxSize = 1200;

    /// <summary>The largest plaintext (payload plus quality report) that fits one datagram.</summary>
    public const int MaxPlaintext = MaxSize - MinSize;

    public static int SealedSize(int plaintextLength) => MinSize + plaintextLength;

    /// <summary>Seals with explicit key material: the core every other overload uses.</summary>
    /// <returns>Bytes written to <paramref name="destination"/>, or 0 when the key was retired meanwhile.</returns>
    public static int Seal(DirectionalKey key, byte wireEpoch, uint packetNumber, ushort source,
        ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        if (header.Length != MediaHeader.Size) throw new ArgumentException("A media header is 12 bytes.", nameof(header));
        var size = SealedSize(plaintext.Length);
        if (size > MaxSize) throw new ArgumentException($"Plaintext over {MaxPlaintext} bytes.", nameof(plaintext));
        if (destination.Length < size) throw new ArgumentException("Destination too small.", nameof(destination));
        header.CopyTo(destination);
        destination[12] = wireEpoch;
        BinaryPrimitives.WriteUInt32BigEndian(destination[13..], packetNumber);
        BinaryPrimitives.WriteUInt16BigEndian(destination[17..], source);
        return key.Seal(packetNumber, destination[..PrefixSize], plaintext, destination[PrefixSize..size]) ? size : 0;
    }

    /// <summary>Seals under the schedule's sending epoch with its next packet number.</summary>
    /// <returns>Bytes written, or 0 when the epoch's packet numbers are spent (rekey overdue).</returns>
    public static int Seal(HopKeySchedule schedule, ushort source, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        if (!schedule.TryPrepareSend(out var epoch, out var packetNumber)) return 0;
        return Seal(epoch.Send, epoch.WireEpoch, packetNumber, source, header, plaintext, destination);
    }

    /// <summary>Reads the clear fields; false on a datagram too short or long, or with an invalid header.</summary>
    public static bool TryReadPrefix(ReadOnlySpan<byte> datagram, out MediaHeader header, out byte wireEpoch, out uint packetNumber, out ushort source)
    {
        wireEpoch = 0;
        packetNumber = 0;
        source = 0;
        header = default;
        if (datagram.Length < MinSize || datagram.Length > MaxSize || !MediaHeader.TryRead(datagram, out header)) return false;
        wireEpoch = datagram[12];
        packetNumber = BinaryPrimitives.ReadUInt32BigEndian(datagram[13..]);
        source = BinaryPrimitives.ReadUInt16BigEndian(datagram[17..]);
        return true;
    }

    /// <summary>Opens with explicit key material (no replay window); false on any failure.</summary>
    public static bool TryOpen(DirectionalKey key, ReadOnlySpan<byte> datagram, Span<byte> plaintext, out int plaintextLength)
    {
        plaintextLength = 0;
        if (!TryReadPrefix(datagram, out var header, out _, out var packetNumber, out _)) return false;
        var ciphertext = datagram[PrefixSize..];
        if (!key.TryOpen(packetNumber, datagram[..PrefixSize], ciphertext, plaintext)) return false;
        plaintextLength = ciphertext.Length - DirectionalKey.TagSize;
        return !header.HasQualityReport || plaintextLength >= QualityReport.Size;
    }

    /// <summary>
    /// Opens a received datagram through the hop's schedule: the epoch it names, the AEAD, then the replay
    /// window of that epoch. The header stays in <paramref name="datagram"/>[..12]; the plaintext (payload,
    /// then the quality report when Q=1) goes to <paramref name="plaintext"/>.
    /// </summary>
    public static DropReason Open(HopKeySchedule schedule, ReadOnlySpan<byte> datagram, Span<byte> plaintext, out int plaintextLength, out ushort source)
    {
        plaintextLength = 0;
        if (!TryReadPrefix(datagram, out var header, out var wireEpoch, out var packetNumber, out source)) return DropReason.Malformed;
        if (plaintext.Length < datagram.Length - MinSize) throw new ArgumentException("Plaintext buffer too small.", nameof(plaintext));
        return Open(schedule, wireEpoch, packetNumber, datagram[..PrefixSize], datagram[PrefixSize..], header, plaintext, out plaintextLength);
    }

    /// <summary>
    /// The receive rules both datagram formats share (PROTOCOL.md §6): the epoch the datagram names, the AEAD, then
    /// the replay window of that epoch, which only an authentic datagram may move.
    /// </summary>
    internal static DropReason Open(HopKeySchedule schedule, byte wireEpoch, uint packetNumber, ReadOnlySpan<byte> aad,
        ReadOnlySpan<byte> ciphertext, MediaHeader header, Span<byte> plaintext, out int plaintextLength)
    {
        plaintextLength = 0;
        var epoch = schedule.FindReceiveEpoch(wireEpoch);
        if (epoch is null) return DropReason.UnknownEpoch;
        if (!epoch.Receive.TryOpen(packetNumber, aad, ciphertext, plaintext)) return DropReason.Authentication;
        if (!epoch.Window.TryAccept(packetNumber)) return DropReason.Replay;
        schedule.OnAccepted(epoch);
        plaintextLength = ciphertext.Length - DirectionalKey.TagSize;
        return header.HasQualityReport && plaintextLength < QualityReport.Size ? DropReason.Malformed : DropReason.None;
    }
}

/// <summary>
/// The datagram between two gateways (PROTOCOL.md §8):
/// <c>u32 linkId ‖ u8 epoch ‖ u32 packetNumber ‖ roomTag(8) ‖ u16 source ‖ MediaHeader(12) ‖ ciphertext ‖ tag</c>,
/// AAD = the first 31 bytes. The payload crosses each link once, whatever the number of members behind it.
/// </summary>
public static class LinkDatagram
{
    public const int RoomTagSize = 8;
    public const int PrefixSize = 4 + 1 + 4 + RoomTagSize + 2 + MediaHeader.Size;
    public const int MinSize = PrefixSize + DirectionalKey.TagSize;

    /// <summary>
    /// The most a link datagram carries: one media datagram's plaintext (<see cref="MediaDatagram.MaxPlaintext"/>),
    /// because a receiving gateway seals it again into a media datagram for each of its members. A longer one,
    /// however authentic, could not be forwarded, so it is malformed (dropped and counted) on arrival. 1212 bytes
    /// also stays inside a common 1280-byte path MTU.
    /// </summary>
    public const int MaxSize = MinSize + MediaDatagram.MaxPlaintext;

    /// <summary>The largest plaintext a link datagram carries.</summary>
    public const int MaxPlaintext = MediaDatagram.MaxPlaintext;

    /// <summary><c>first 8 bytes of SHA-256("wzp/1 room\0" ‖ room)</c>: names a room on a link without its name.</summary>
    public static ulong RoomTag(string room)
    {
        var name = Encoding.UTF8.GetBytes(room);
        var input = new byte[11 + name.Length];
        "wzp/1 room\0"u8.CopyTo(input);
        name.CopyTo(input, 11);
        Span<byte> hash = stackalloc byte[Primitives.HashSize];
        SHA256.HashData(input, hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash);
    }

    public static int Seal(DirectionalKey key, uint linkId, byte wireEpoch, uint packetNumber, ulong roomTag, ushort source,
        ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        if (header.Length != MediaHeader.Size) throw new ArgumentException("A media header is 12 bytes.", nameof(header));
        var size = MinSize + plaintext.Length;
        if (size > MaxSize) throw new ArgumentException("Plaintext too long for a link datagram.", nameof(plaintext));
        if (destination.Length < size) throw new ArgumentException("Destination too small.", nameof(destination));
        BinaryPrimitives.WriteUInt32BigEndian(destination, linkId);
        destination[4] = wireEpoch;
        BinaryPrimitives.WriteUInt32BigEndian(destination[5..], packetNumber);
        BinaryPrimitives.WriteUInt64BigEndian(destination[9..], roomTag);
        BinaryPrimitives.WriteUInt16BigEndian(destination[17..], source);
        header.CopyTo(destination[19..]);
        return key.Seal(packetNumber, destination[..PrefixSize], plaintext, destination[PrefixSize..size]) ? size : 0;
    }

    public static int Seal(HopKeySchedule schedule, uint linkId, ulong roomTag, ushort source, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        if (!schedule.TryPrepareSend(out var epoch, out var packetNumber)) return 0;
        return Seal(epoch.Send, linkId, epoch.WireEpoch, packetNumber, roomTag, source, header, plaintext, destination);
    }

    /// <summary>Reads the link id alone, so a receiver can find the link's schedule before anything else.</summary>
    public static bool TryReadLinkId(ReadOnlySpan<byte> datagram, out uint linkId)
    {
        linkId = 0;
        if (datagram.Length < MinSize || datagram.Length > MaxSize) return false;
        linkId = BinaryPrimitives.ReadUInt32BigEndian(datagram);
        return true;
    }

    /// <summary>Opens through the link's schedule; the header is at <paramref name="datagram"/>[19..31].</summary>
    public static DropReason Open(HopKeySchedule schedule, ReadOnlySpan<byte> datagram, Span<byte> plaintext,
        out int plaintextLength, out ulong roomTag, out ushort source)
    {
        plaintextLength = 0;
        roomTag = 0;
        source = 0;
        if (datagram.Length < MinSize || datagram.Length > MaxSize || !MediaHeader.TryRead(datagram[19..], out var header))
            return DropReason.Malformed;
        if (plaintext.Length < datagram.Length - MinSize) throw new ArgumentException("Plaintext buffer too small.", nameof(plaintext));
        var packetNumber = BinaryPrimitives.ReadUInt32BigEndian(datagram[5..]);
        roomTag = BinaryPrimitives.ReadUInt64BigEndian(datagram[9..]);
        source = BinaryPrimitives.ReadUInt16BigEndian(datagram[17..]);
        return MediaDatagram.Open(schedule, datagram[4], packetNumber, datagram[..PrefixSize], datagram[PrefixSize..], header, plaintext, out plaintextLength);
    }
}
