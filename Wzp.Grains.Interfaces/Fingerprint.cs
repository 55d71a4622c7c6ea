using System.Buffers.Binary;
using System.Globalization;

namespace Wzp.Grains;

/// <summary>
/// A member's identity fingerprint: the first 16 bytes of SHA-256 of its Ed25519 public key (PROTOCOL.md §1).
/// </summary>
/// <remarks>
/// A public value (it is shown to every member of the room), so it may live in grain state, messages and logs.
/// Stored as two big-endian halves so that it is a value type with value equality and no mutable array.
/// </remarks>
[GenerateSerializer, Immutable, Alias("wzp.Fingerprint.v1")]
public readonly record struct Fingerprint([property: Id(0)] ulong High, [property: Id(1)] ulong Low)
{
    /// <summary>Length of a fingerprint in bytes.</summary>
    public const int Length = 16;

    /// <summary>Reads a fingerprint from exactly <see cref="Length"/> bytes.</summary>
    public static Fingerprint FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"A fingerprint is {Length} bytes, not {bytes.Length}.", nameof(bytes));
        }

        return new Fingerprint(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }

    /// <summary>Parses the display form (<c>518e:b935:...</c>) or 32 hex digits without separators.</summary>
    public static bool TryParse(string? text, out Fingerprint fingerprint)
    {
        fingerprint = default;
        if (text is null)
        {
            return false;
        }

        var hex = text.Replace(":", "", StringComparison.Ordinal);
        if (hex.Length != Length * 2)
        {
            return false;
        }

        if (!ulong.TryParse(hex.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var high)
            || !ulong.TryParse(hex.AsSpan(16, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var low))
        {
            return false;
        }

        fingerprint = new Fingerprint(high, low);
        return true;
    }

    /// <summary>Writes the 16 bytes into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException($"The destination needs {Length} bytes.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt64BigEndian(destination, High);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Low);
    }

    /// <summary>Returns the 16 bytes as a new array.</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[Length];
        WriteTo(bytes);
        return bytes;
    }

    /// <summary>The display form of PROTOCOL.md §1: 8 groups of 4 lowercase hex digits joined by <c>:</c>.</summary>
    public override string ToString()
    {
        Span<char> chars = stackalloc char[39];
        Span<byte> bytes = stackalloc byte[Length];
        WriteTo(bytes);
        var position = 0;
        for (var i = 0; i < Length; i++)
        {
            if (i > 0 && i % 2 == 0)
            {
                chars[position++] = ':';
            }

            chars[position++] = HexDigit(bytes[i] >> 4);
            chars[position++] = HexDigit(bytes[i] & 0xF);
        }

        return new string(chars);
    }

    private static char HexDigit(int value) => (char)(value < 10 ? '0' + value : 'a' + value - 10);
}
