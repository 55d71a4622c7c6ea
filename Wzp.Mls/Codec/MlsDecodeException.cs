namespace Wzp.Mls.Codec;

/// <summary>
/// The only exception the decoders throw: the bytes are not a valid encoding of the structure asked for
/// (truncated, trailing bytes, a non-minimal or reserved length prefix, an unknown enum value where the
/// RFC gives no way to skip it, or a value outside its domain).
/// </summary>
public sealed class MlsDecodeException : Exception
{
    public MlsDecodeException(string message)
        : base(message)
    {
    }

    public MlsDecodeException()
        : base("Invalid MLS encoding.")
    {
    }

    public MlsDecodeException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
