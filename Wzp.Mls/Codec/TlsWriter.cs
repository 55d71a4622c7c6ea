using System.Buffers;
using System.Buffers.Binary;

namespace Wzp.Mls.Codec;

/// <summary>
/// Writes the TLS presentation language with MLS variable-length vector headers (RFC 9420 §2.1.2) into a growing
/// buffer. Vector lengths are written minimally, so a vector's body is written first and shifted right by its
/// header once its length is known. The buffer is rented from <see cref="ArrayPool{T}.Shared"/>: a GroupInfo with
/// the tree of a 1,000-member group is 262 KB, and growing it by fresh arrays cost megabytes of large-object heap
/// (and a gen-2 collection) per Welcome. <see cref="Dispose"/> zeroes the written bytes (they may be secrets) and
/// returns the buffer; a writer never disposed leaves its buffer to the collector, as a plain array would be.
/// </summary>
public sealed class TlsWriter : IDisposable
{
    /// <summary>The largest length a variable-length integer can carry (30 bits).</summary>
    public const uint MaxVarInt = (1u << 30) - 1;

    private byte[] _buffer;
    private int _length;

    public TlsWriter(int capacity = 256)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(capacity, 16));
    }

    public int Length => _length;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    public byte[] ToArray() => WrittenSpan.ToArray();

    /// <summary>Zeroes what was written and returns the buffer to the pool; the writer must not be used after.</summary>
    public void Dispose()
    {
        var buffer = _buffer;
        if (buffer.Length == 0) return;
        _buffer = [];
        Return(buffer, _length);
        _length = 0;
    }

    private static void Return(byte[] buffer, int written)
    {
        buffer.AsSpan(0, written).Clear();
        ArrayPool<byte>.Shared.Return(buffer);
    }

    public void WriteUInt8(byte value) => Reserve(1)[0] = value;

    public void WriteUInt16(ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Reserve(2), value);

    public void WriteUInt32(uint value) => BinaryPrimitives.WriteUInt32BigEndian(Reserve(4), value);

    public void WriteUInt64(ulong value) => BinaryPrimitives.WriteUInt64BigEndian(Reserve(8), value);

    public void WriteVarInt(uint value)
    {
        Span<byte> header = stackalloc byte[4];
        var size = EncodeVarInt(value, header);
        header[..size].CopyTo(Reserve(size));
    }

    /// <summary>Writes bytes with no length prefix (a fixed-size field).</summary>
    public void WriteFixed(ReadOnlySpan<byte> value) => value.CopyTo(Reserve(value.Length));

    /// <summary>Writes <c>opaque data&lt;V&gt;</c>.</summary>
    public void WriteOpaque(ReadOnlySpan<byte> value)
    {
        WriteVarInt(checked((uint)value.Length));
        WriteFixed(value);
    }

    /// <summary>Starts a vector; write its elements, then call <see cref="EndVector"/> with the returned mark.</summary>
    public int BeginVector() => _length;

    public void EndVector(int mark)
    {
        var bodyLength = (uint)(_length - mark);
        Span<byte> header = stackalloc byte[4];
        var size = EncodeVarInt(bodyLength, header);
        Reserve(size);
        _buffer.AsSpan(mark, (int)bodyLength).CopyTo(_buffer.AsSpan(mark + size));
        header[..size].CopyTo(_buffer.AsSpan(mark));
    }

    public void WriteVector<T>(IReadOnlyList<T> items)
        where T : ITlsEncodable
    {
        var mark = BeginVector();
        foreach (var item in items) item.Encode(this);
        EndVector(mark);
    }

    public void WriteUInt16Vector(IReadOnlyList<ushort> items)
    {
        WriteVarInt(checked((uint)items.Count * 2));
        foreach (var item in items) WriteUInt16(item);
    }

    public void WriteUInt32Vector(IReadOnlyList<uint> items)
    {
        WriteVarInt(checked((uint)items.Count * 4));
        foreach (var item in items) WriteUInt32(item);
    }

    /// <summary>Writes <c>optional&lt;T&gt;</c>.</summary>
    public void WriteOptional<T>(T? value)
        where T : class, ITlsEncodable
    {
        WriteUInt8(value is null ? (byte)0 : (byte)1);
        value?.Encode(this);
    }

    /// <summary>Encodes <paramref name="value"/> minimally; returns the number of bytes written.</summary>
    public static int EncodeVarInt(uint value, Span<byte> destination)
    {
        if (value < 0x40)
        {
            destination[0] = (byte)value;
            return 1;
        }
        if (value < 0x4000)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(value | 0x4000));
            return 2;
        }
        if (value <= MaxVarInt)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, value | 0x8000_0000);
            return 4;
        }
        throw new ArgumentOutOfRangeException(nameof(value), value, "MLS vectors are limited to 2^30 - 1 bytes.");
    }

    private Span<byte> Reserve(int count)
    {
        if (_length + count > _buffer.Length)
        {
            ObjectDisposedException.ThrowIf(_buffer.Length == 0, this);
            var next = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
            _buffer.AsSpan(0, _length).CopyTo(next);
            Return(_buffer, _length);
            _buffer = next;
        }
        var span = _buffer.AsSpan(_length, count);
        _length += count;
        return span;
    }
}
