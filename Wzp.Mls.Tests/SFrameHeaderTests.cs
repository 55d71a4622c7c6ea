using CsCheck;
using Wzp.Mls.SFrame;

namespace Wzp.Mls.Tests;

public sealed class SFrameHeaderTests
{
    // Values of every encoded length (0 to 8 extra bytes), not only the huge ones a uniform ulong gives.
    private static readonly Gen<ulong> AnyLength = Gen.Select(Gen.ULong, Gen.Int[0, 64], (v, shift) => shift == 64 ? 0 : v >> shift);

    private static readonly Gen<byte[]> AnyBytes = Gen.Byte.Array[0, 24];

    [Fact]
    public void TryRead_ArbitraryBytes_NeverThrowsAndYieldsHeaderOrHeaderError()
    {
        AnyBytes.Sample(bytes =>
        {
            var error = SFrameHeader.TryRead(bytes, out var header, out var size);
            if (error == SFrameError.None)
            {
                // Whatever decodes is the one canonical encoding of what it decodes to.
                Assert.Equal(header.Size, size);
                var again = new byte[SFrameHeader.MaxSize];
                header.WriteTo(again);
                Assert.Equal(bytes[..size], again[..size]);
            }
            else
            {
                Assert.Contains(error, new[] { SFrameError.TruncatedHeader, SFrameError.NonMinimalKeyId, SFrameError.NonMinimalCounter });
                Assert.Equal(0, size);
                Assert.Equal(default, header);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Read_ArbitraryBytes_ThrowsOnlySFrameFormatException()
    {
        AnyBytes.Sample(bytes =>
        {
            try
            {
                SFrameHeader.Read(bytes, out _);
            }
            catch (SFrameFormatException e)
            {
                Assert.NotEqual(SFrameError.None, e.Error);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Header_AnyKidAndCtr_RoundTripsInMinimalForm()
    {
        Gen.Select(AnyLength, AnyLength).Sample((kid, ctr) =>
        {
            var header = new SFrameHeader(kid, ctr);
            var bytes = new byte[SFrameHeader.MaxSize];
            var size = header.WriteTo(bytes);
            Assert.Equal(1 + MinimalLength(kid) + MinimalLength(ctr), size);
            Assert.Equal(SFrameError.None, SFrameHeader.TryRead(bytes.AsSpan(0, size), out var decoded, out var read));
            Assert.Equal(header, decoded);
            Assert.Equal(size, read);
            // One byte short is truncated, never a different header.
            Assert.Equal(SFrameError.TruncatedHeader, SFrameHeader.TryRead(bytes.AsSpan(0, size - 1), out _, out _));
        }, iter: 20_000);
    }

    [Theory]
    [InlineData("8005", SFrameError.NonMinimalKeyId)]      // KID 5 in an extra byte: it belongs in the config byte
    [InlineData("900007", SFrameError.NonMinimalKeyId)]    // two bytes for KID 7
    [InlineData("900008", SFrameError.NonMinimalKeyId)]    // KID 8 with a leading zero byte
    [InlineData("0807", SFrameError.NonMinimalCounter)]    // CTR 7 in an extra byte
    [InlineData("090009", SFrameError.NonMinimalCounter)]  // CTR 9 with a leading zero byte
    [InlineData("880805", SFrameError.NonMinimalCounter)]  // a valid KID 8, then CTR 5 in an extra byte
    [InlineData("", SFrameError.TruncatedHeader)]
    [InlineData("80", SFrameError.TruncatedHeader)]
    [InlineData("f0ffffffffffffff", SFrameError.TruncatedHeader)] // 8 KID bytes announced, 7 present
    [InlineData("0f", SFrameError.TruncatedHeader)]
    public void TryRead_MalformedHeader_IsRefusedWithItsError(string hex, SFrameError expected)
    {
        Assert.Equal(expected, SFrameHeader.TryRead(Convert.FromHexString(hex), out _, out _));
        var e = Assert.Throws<SFrameFormatException>(() => SFrameHeader.Read(Convert.FromHexString(hex), out _));
        Assert.Equal(expected, e.Error);
    }

    [Fact]
    public void WriteTo_ShortDestination_Throws()
    {
        Assert.Throws<ArgumentException>(() => new SFrameHeader(1000, 1000).WriteTo(new byte[4]));
    }

    private static int MinimalLength(ulong value)
    {
        if (value < 8) return 0;
        var n = 0;
        for (; value != 0; value >>= 8) n++;
        return n;
    }
}
