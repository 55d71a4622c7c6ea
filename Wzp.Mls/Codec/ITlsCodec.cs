namespace Wzp.Mls.Codec;

/// <summary>A structure of the TLS presentation language (RFC 8446 §3, RFC 9420 §2.1) that can write itself.</summary>
public interface ITlsEncodable
{
    void Encode(TlsWriter writer);
}

/// <summary>A structure that can also read itself; the static member lets vectors of it be decoded generically.</summary>
public interface ITlsCodec<TSelf> : ITlsEncodable
    where TSelf : ITlsCodec<TSelf>
{
    static abstract TSelf Decode(ref TlsReader reader);
}

/// <summary>Whole-buffer helpers: an encoding must be consumed exactly, or it is not that structure.</summary>
public static class Tls
{
    public static byte[] Encode(ITlsEncodable value)
    {
        ArgumentNullException.ThrowIfNull(value);
        using var writer = new TlsWriter();
        value.Encode(writer);
        return writer.ToArray();
    }

    /// <summary>Decodes <typeparamref name="T"/> from all of <paramref name="data"/>; trailing bytes are an error.</summary>
    public static T Decode<T>(ReadOnlySpan<byte> data)
        where T : ITlsCodec<T>
    {
        var reader = new TlsReader(data);
        var value = T.Decode(ref reader);
        reader.EnsureEnd();
        return value;
    }

    /// <summary>As <see cref="Decode{T}"/>, without an exception on bad input.</summary>
    public static bool TryDecode<T>(ReadOnlySpan<byte> data, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? value)
        where T : ITlsCodec<T>
    {
        try
        {
            value = Decode<T>(data);
            return true;
        }
        catch (MlsDecodeException)
        {
            value = default;
            return false;
        }
    }
}
