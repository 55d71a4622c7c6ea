using Wzp.Mls.Codec;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Codec;

/// <summary>deserialization.json: the variable-length integer header of RFC 9420 §2.1.2 for each vector length.</summary>
public sealed class DeserializationTests
{
    [Fact]
    public void VarIntHeader_EveryVectorCase_DecodesAndEncodesExactly()
    {
        foreach (var v in Vectors.Load("deserialization"))
        {
            var header = v.Hex("vlbytes_header");
            var length = v.GetProperty("length").GetUInt32();
            var reader = new TlsReader(header);
            Assert.Equal(length, reader.ReadVarInt());
            reader.EnsureEnd();
            var writer = new TlsWriter();
            writer.WriteVarInt(length);
            Vectors.Equal(header, writer.WrittenSpan, $"header of {length}");
        }
    }

    [Theory]
    [InlineData("c0")] // reserved 0b11 prefix
    [InlineData("4001")] // 1 in two bytes
    [InlineData("80000001")] // 1 in four bytes
    [InlineData("80003fff")] // 16383 in four bytes
    [InlineData("40")] // truncated
    public void VarInt_ReservedOrNonMinimalOrTruncated_IsDecodeError(string hex)
    {
        var bytes = Convert.FromHexString(hex);
        Assert.Throws<MlsDecodeException>(() => new TlsReader(bytes).ReadVarInt());
    }

    [Fact]
    public void Opaque_LengthBeyondInput_IsDecodeError()
    {
        Assert.Throws<MlsDecodeException>(() => new TlsReader([0x05, 1, 2]).ReadOpaque());
    }

    [Fact]
    public void NestedVectors_RoundTripThroughHeaderShift()
    {
        var writer = new TlsWriter(16);
        var outer = writer.BeginVector();
        for (var i = 0; i < 3; i++) writer.WriteOpaque(new byte[100 * i]);
        writer.EndVector(outer);
        var reader = new TlsReader(writer.WrittenSpan);
        var inner = reader.ReadVectorReader();
        reader.EnsureEnd();
        for (var i = 0; i < 3; i++) Assert.Equal(100 * i, inner.ReadOpaque().Length);
        inner.EnsureEnd();
    }
}
