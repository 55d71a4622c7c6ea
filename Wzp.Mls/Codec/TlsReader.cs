using System.Buffers.Binary;

namespace Wzp.Mls.Codec;

/// <summary>
/// Reads the TLS presentation language with MLS variable-length vector headers (RFC 9420 §2.1.2) from a span.
/// Every failure is an <see cref="MlsDecodeException"/>: callers decoding bytes from the network catch one type.
/// </summary>
public ref struct TlsReader
{
    // MLS structures are not recursive, so decoding depth is bounded by the structure definitions themselves and
    // the reader needs no nesting limit; vector lengths are checked against the remaining input before any use.
    private ReadOnlySpan<byte> _data;

    public TlsReader(ReadOnlySpan<byte> data)
    {
        _data = data;
    }

    public readonly int Remaining => _data.Length;

    public readonly bool IsEmpty => _data.IsEmpty;

    public readonly void EnsureEnd()
    {
        if (!_data.IsEmpty) throw new MlsDecodeException($"{_data.Length} trailing bytes.");
    }

    public byte ReadUInt8()
    {
        Need(1);
        var value = _data[0];
        _data = _data[1..];
        return value;
    }

    public ushort ReadUInt16()
    {
        Need(2);
        var value = BinaryPrimitives.ReadUInt16BigEndian(_data);
        _data = _data[2..];
        return value;
    }

    public uint ReadUInt32()
    {
        Need(4);
        var value = BinaryPrimitives.ReadUInt32BigEndian(_data);
        _data = _data[4..];
        return value;
    }

    public ulong ReadUInt64()
    {
        Need(8);
        var value = BinaryPrimitives.ReadUInt64BigEndian(_data);
        _data = _data[8..];
        return value;
    }

    /// <summary>Reads an RFC 9420 §2.1.2 variable-length integer, rejecting the reserved prefix and non-minimal forms.</summary>
    public uint ReadVarInt()
    {
        Need(1);
        var first = _data[0];
        var prefix = first >> 6;
        if (prefix == 3) throw new MlsDecodeException("Reserved variable-length integer prefix 0b11.");
        var length = 1 << prefix;
        Need(length);
        uint value = (uint)(first & 0x3F);
        for (var i = 1; i < length; i++) value = (value << 8) | _data[i];
        // Minimal encoding makes the encoding of every structure unique, which signatures and hashes rely on.
        if (length > 1 && value < (1u << ((8 * (length / 2)) - 2)))
            throw new MlsDecodeException("Variable-length integer is not minimally encoded.");
        _data = _data[length..];
        return value;
    }

    /// <summary>Reads a fixed number of bytes.</summary>
    public ReadOnlySpan<byte> ReadSpan(int length)
    {
        Need(length);
        var value = _data[..length];
        _data = _data[length..];
        return value;
    }

    public byte[] ReadFixed(int length) => ReadSpan(length).ToArray();

    /// <summary>Reads <c>opaque data&lt;V&gt;</c>.</summary>
    public ReadOnlySpan<byte> ReadVectorSpan()
    {
        var length = ReadVarInt();
        if (length > (uint)_data.Length) throw new MlsDecodeException($"Vector of {length} bytes, {_data.Length} left.");
        return ReadSpan((int)length);
    }

    /// <summary>Reads <c>opaque data&lt;V&gt;</c> into a new array.</summary>
    public byte[] ReadOpaque() => ReadVectorSpan().ToArray();

    /// <summary>Starts a reader over the body of a vector; the caller decodes elements until it is empty.</summary>
    public TlsReader ReadVectorReader()
    {
        return new TlsReader(ReadVectorSpan());
    }

    /// <summary>Reads <c>T items&lt;V&gt;</c>.</summary>
    public T[] ReadVector<T>()
        where T : ITlsCodec<T>
    {
        var inner = ReadVectorReader();
        var items = new List<T>();
        while (!inner.IsEmpty) items.Add(T.Decode(ref inner));
        return [.. items];
    }

    /// <summary>Reads <c>uint16 items&lt;V&gt;</c>.</summary>
    public ushort[] ReadUInt16Vector()
    {
        var inner = ReadVectorReader();
        if (inner.Remaining % 2 != 0) throw new MlsDecodeException("uint16 vector of odd length.");
        var items = new ushort[inner.Remaining / 2];
        for (var i = 0; i < items.Length; i++) items[i] = inner.ReadUInt16();
        return items;
    }

    /// <summary>Reads <c>uint32 items&lt;V&gt;</c>.</summary>
    public uint[] ReadUInt32Vector()
    {
        var inner = ReadVectorReader();
        if (inner.Remaining % 4 != 0) throw new MlsDecodeException("uint32 vector whose length is not a multiple of 4.");
        var items = new uint[inner.Remaining / 4];
        for (var i = 0; i < items.Length; i++) items[i] = inner.ReadUInt32();
        return items;
    }

    /// <summary>Reads the presence byte of <c>optional&lt;T&gt;</c> (RFC 9420 §2.1.1).</summary>
    public bool ReadPresence() => ReadUInt8() switch
    {
        0 => false,
        1 => true,
        var b => throw new MlsDecodeException($"optional<T> presence byte {b}."),
    };

    /// <summary>Reads <c>optional&lt;T&gt;</c>.</summary>
    public T? ReadOptional<T>()
        where T : class, ITlsCodec<T>
        => ReadPresence() ? T.Decode(ref this) : null;

    private readonly void Need(int count)
    {
        if (count < 0 || _data.Length < count) throw new MlsDecodeException($"Needed {count} bytes, {_data.Length} left.");
    }
}
