using System.Buffers;
using CsCheck;

namespace Wzp.Protocol.Tests;

/// <summary>
/// Generated inputs for every parser: what is serialized parses back equal, and arbitrary bytes never raise
/// anything but the parser's own error. CsCheck prints the seed of a failing case so it can be replayed.
/// </summary>
public sealed class PropertyTests
{
    private const int Iterations = 2_000;

    private static readonly Gen<MediaHeader> HeaderGen =
        Gen.Select(Gen.Bool, Gen.Bool, Gen.Int[0, 8], Gen.Bool, Gen.Int[0, 127], Gen.UShort, Gen.UInt, Gen.Byte)
            .SelectMany(t => Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, (symbol, reserved, csrc) =>
                new MediaHeader(t.Item1, t.Item2, (CodecId)t.Item3, t.Item4, (byte)t.Item5, t.Item6, t.Item7, t.Item8, symbol, reserved, csrc)));

    private static readonly Gen<byte[]> Bytes = Gen.Byte.Array[0, 1300];

    private static readonly Gen<string> Text = Gen.String[Gen.Char, 0, 40];

    private static readonly Gen<MemberInfo> Member = Gen.Select(Gen.Int[1, 65535], Gen.Byte.Array[16], Text, (s, f, a) => new MemberInfo(s, f, a));

    private static readonly Gen<ControlMessage> MessageGen = Gen.OneOf<ControlMessage>(
        Gen.Select(Gen.Int, Gen.Byte.Array[32], Gen.Byte.Array[32], Gen.Byte.Array[32], Text, Text, Gen.Byte.Array[64])
            .Select(t => (ControlMessage)new Hello(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6, t.Item7)),
        Gen.Select(Gen.Byte.Array[0, 40], Text, (m, t) => (ControlMessage)new Confirm(m, t)),
        Gen.Select(Text, Gen.Int, Gen.UInt, Member.List[0, 5], (r, s, e, m) => (ControlMessage)new Joined(r, s, e, m)),
        Gen.Select(Member.List[0, 5], Gen.Int.List[0, 5], (j, l) => (ControlMessage)new RoomUpdate(j, l)),
        Gen.Select(Gen.UInt, Gen.Byte.Array[0, 40], Gen.Byte.Array[0, 70], (e, k, s) => (ControlMessage)new Rekey(e, k, s)),
        Gen.Select(Gen.UInt, Gen.Byte.Array[0, 40], Gen.Byte.Array[0, 40], (e, k, m) => (ControlMessage)new RekeyAck(e, k, m)),
        Gen.UInt.Select(e => (ControlMessage)new RekeyDone(e)),
        Gen.Const<ControlMessage>(new Leave()), Gen.Const<ControlMessage>(new Ping()), Gen.Const<ControlMessage>(new Pong()),
        Gen.Select(Text, Text, (c, m) => (ControlMessage)new Error(c, m)));

    [Fact]
    public void MediaHeader_WriteThenRead_IsIdentity() =>
        HeaderGen.Sample(header =>
        {
            Assert.True(MediaHeader.TryRead(header.ToArray(), out var parsed));
            Assert.Equal(header, parsed);
        }, iter: Iterations);

    [Fact]
    public void MediaHeader_ArbitraryBytes_ReadBackIdentically() =>
        Gen.Byte.Array[12].Sample(bytes =>
        {
            if (MediaHeader.TryRead(bytes, out var header)) Assert.Equal(bytes, header.ToArray());
            else Assert.True((bytes[0] >> 2 & 0xF) > 8 || (bytes[1] & 3) != 0);
        }, iter: Iterations);

    [Fact]
    public void QualityReport_WriteThenRead_IsIdentity() =>
        Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte, (a, b, c, d) => new QualityReport(a, b, c, d)).Sample(report =>
        {
            var bytes = new byte[4];
            report.Write(bytes);
            Assert.True(QualityReport.TryRead(bytes, out var parsed));
            Assert.Equal(report, parsed);
        }, iter: Iterations);

    [Fact]
    public void FecRatio_EncodesIntoSevenBits() =>
        Gen.Double[0, 10].Sample(r =>
        {
            var encoded = MediaHeader.EncodeFecRatio(r);
            Assert.InRange(encoded, 0, 127);
            Assert.Equal(Math.Min(127, (int)Math.Round(r * 63.5, MidpointRounding.AwayFromZero)), encoded);
        }, iter: Iterations);

    [Fact]
    public void MediaDatagram_SealThenOpen_GivesBackHeaderSourceAndPayload()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var buffer = new byte[MediaDatagram.MaxSize];
        var plaintext = new byte[MediaDatagram.MaxSize];
        Gen.Select(HeaderGen, Gen.UShort, Gen.Byte.Array[0, MediaDatagram.MaxPlaintext]).Sample(t =>
        {
            var (header, source, payload) = t;
            if (header.HasQualityReport && payload.Length < QualityReport.Size) header = header with { HasQualityReport = false };
            var n = MediaDatagram.Seal(gateway.Keys, source, header.ToArray(), payload, buffer);
            Assert.Equal(DropReason.None, MediaDatagram.Open(client.Keys, buffer.AsSpan(0, n), plaintext, out var length, out var opened));
            Assert.Equal(source, opened);
            Assert.Equal(payload, plaintext[..length]);
            Assert.True(MediaHeader.TryRead(buffer, out var parsed));
            Assert.Equal(header, parsed);
        }, iter: Iterations, threads: 1);
    }

    [Fact]
    public void Datagrams_ArbitraryBytes_AreDroppedNeverThrown()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var plaintext = new byte[2048];
        Bytes.Sample(bytes =>
        {
            Assert.NotEqual(DropReason.None, MediaDatagram.Open(gateway.Keys, bytes, plaintext, out _, out _));
            Assert.NotEqual(DropReason.None, MediaDatagram.Open(client.Keys, bytes, plaintext, out _, out _));
            Assert.NotEqual(DropReason.None, LinkDatagram.Open(client.Keys, bytes, plaintext, out _, out _, out _));
            MediaDatagram.TryReadPrefix(bytes, out _, out _, out _, out _);
            LinkDatagram.TryReadLinkId(bytes, out _);
        }, iter: Iterations, threads: 1);
    }

    [Fact]
    public void ControlMessage_EncodeDecode_IsIdentity() =>
        MessageGen.Sample(message =>
        {
            var frame = new ReadOnlySequence<byte>(ControlCodec.Encode(message));
            Assert.True(ControlCodec.TryReadFrame(ref frame, out var body));
            Assert.Equal(ControlCodec.Encode(message), ControlCodec.Encode(ControlCodec.Decode(body)));
        }, iter: Iterations);

    [Fact]
    public void ControlCodec_ArbitraryBytes_ThrowOnlyItsOwnError() =>
        Gen.OneOf(Bytes, Gen.String.Select(s => System.Text.Encoding.UTF8.GetBytes(s)),
                MessageGen.Select(m => ControlCodec.Encode(m)).SelectMany(f => Gen.Int[0, f.Length].Select(cut => f[..cut])),
                MessageGen.Select(m => ControlCodec.Encode(m)).SelectMany(f => Gen.Int[0, f.Length - 1].SelectMany(i => Gen.Byte.Select(b =>
                {
                    var copy = f.ToArray();
                    copy[i] = b;
                    return copy;
                }))))
            .Sample(bytes =>
            {
                try
                {
                    var sequence = new ReadOnlySequence<byte>(bytes);
                    while (ControlCodec.TryReadFrame(ref sequence, out var body)) ControlCodec.Decode(body);
                    if (bytes.Length > 0) ControlCodec.Decode(bytes);
                }
                catch (ControlFrameException)
                {
                }
            }, iter: Iterations * 2);

    [Fact]
    public void Credential_And_LinkMessages_ArbitraryBytes_NeverThrowUnexpectedly() =>
        Bytes.Sample(bytes =>
        {
            var offer = LinkOffer.TryParse(bytes);
            Assert.True(offer is null || offer.Credential is not null);
            var accept = LinkAccept.TryParse(bytes);
            Assert.True(accept is null || accept.Credential is not null);
            try
            {
                GatewayCredential.FromJson(System.Text.Encoding.UTF8.GetString(bytes));
            }
            catch (FormatException)
            {
            }
        }, iter: Iterations);

    [Fact]
    public void ReplayWindow_MatchesAReferenceModel() =>
        Gen.UInt[0, 5000].Array[1, 400].Sample(sequence =>
        {
            var window = new ReplayWindow();
            var seen = new HashSet<uint>();
            long highest = -1;
            foreach (var n in sequence)
            {
                var expected = !seen.Contains(n) && (n > highest || highest - n < ReplayWindow.Size);
                Assert.Equal(expected, window.TryAccept(n));
                if (expected)
                {
                    seen.Add(n);
                    highest = Math.Max(highest, n);
                }
            }
        }, iter: Iterations);
}
