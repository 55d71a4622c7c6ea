using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Wzp.Protocol.Tests;

public sealed class ControlAndFileTests
{
    private static ReadOnlySequence<byte> Seq(byte[] bytes) => new(bytes);

    private static ControlMessage RoundTrip(ControlMessage message)
    {
        var buffer = Seq(ControlCodec.Encode(message));
        Assert.True(ControlCodec.TryReadFrame(ref buffer, out var body));
        Assert.Equal(0, buffer.Length);
        return ControlCodec.Decode(body);
    }

    [Fact]
    public void Frame_TypeComesFirst_AndMembersAreCamelCaseBase64()
    {
        var frame = ControlCodec.Encode(new RekeyAck(3, [1, 2, 3], [4]));
        Assert.Equal((uint)(frame.Length - 4), BinaryPrimitives.ReadUInt32BigEndian(frame));
        Assert.Equal("""{"type":"rekeyAck","epoch":3,"ephemeralKey":"AQID","mac":"BA=="}""", Encoding.UTF8.GetString(frame, 4, frame.Length - 4));
        Assert.Equal("""{"type":"leave"}""", Encoding.UTF8.GetString(ControlCodec.Encode(new Leave()).AsSpan(4)));
    }

    [Fact]
    public void Frame_TypeAnywhereInTheObject_IsAccepted()
    {
        var message = ControlCodec.Decode("""{"epoch":7,"type":"rekeyDone"}"""u8);
        Assert.Equal(new RekeyDone(7), message);
    }

    [Fact]
    public void Frame_UnknownType_IsUnknownMessageNotAnError()
    {
        var message = ControlCodec.Decode("""{"type":"futureThing","x":[1,{"y":2}]}"""u8);
        Assert.Equal("futureThing", Assert.IsType<UnknownMessage>(message).Type);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(65_537u)]
    [InlineData(uint.MaxValue)]
    public void Frame_LengthOutsideLimit_IsRefusedBeforeTheBodyArrives(uint length)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, length);
        var buffer = Seq(prefix);
        var e = Assert.Throws<ControlFrameException>(() => ControlCodec.TryReadFrame(ref buffer, out _));
        Assert.Equal(ControlFrameError.BadLength, e.Error);
        Assert.Equal(ErrorCodes.BadRequest, e.ToErrorMessage().Code);
    }

    [Fact]
    public void Frame_MaximumSize_IsAccepted_AndPartialFramesWait()
    {
        var pad = new string('a', ControlCodec.MaxFrameLength - """{"type":"error","code":"x","message":""}""".Length);
        var frame = ControlCodec.Encode(new Error("x", pad));
        Assert.Equal(ControlCodec.MaxFrameLength + 4, frame.Length);
        var partial = Seq(frame[..1000]);
        Assert.False(ControlCodec.TryReadFrame(ref partial, out _));
        var whole = Seq([.. frame, .. ControlCodec.Encode(new Ping())]);
        Assert.True(ControlCodec.TryReadFrame(ref whole, out var first));
        Assert.Equal(pad, Assert.IsType<Error>(ControlCodec.Decode(first)).Message);
        Assert.True(ControlCodec.TryReadFrame(ref whole, out var second));
        Assert.IsType<Ping>(ControlCodec.Decode(second));
    }

    [Theory]
    [InlineData("not json", ControlFrameError.BadJson)]
    [InlineData("[1,2]", ControlFrameError.BadJson)]
    [InlineData("{\"type\":\"ping\"} {}", ControlFrameError.BadJson)]
    [InlineData("{\"kind\":\"ping\"}", ControlFrameError.MissingType)]
    [InlineData("{\"type\":5}", ControlFrameError.MissingType)]
    [InlineData("{\"type\":\"confirm\"}", ControlFrameError.BadMessage)]
    [InlineData("{\"type\":\"confirm\",\"mac\":null}", ControlFrameError.BadMessage)]
    [InlineData("{\"type\":\"confirm\",\"mac\":\"***\"}", ControlFrameError.BadMessage)]
    [InlineData("{\"type\":\"rekeyDone\",\"epoch\":-1}", ControlFrameError.BadMessage)]
    [InlineData("{\"type\":\"rekeyDone\",\"epoch\":\"1\"}", ControlFrameError.BadMessage)]
    public void Frame_Garbage_GivesTypedError(string json, ControlFrameError expected)
    {
        var e = Assert.Throws<ControlFrameException>(() => ControlCodec.Decode(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(expected, e.Error);
    }

    [Fact]
    public void Messages_AllTypes_RoundTrip()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        var welcome = gateway.OnHello(client.Hello).Value!;
        ControlMessage[] messages =
        [
            client.Hello, welcome, new Confirm(new byte[32], "grant"),
            new Joined("room", 3, 9, [new MemberInfo(1, new byte[16], "bob"), new MemberInfo(2, new byte[16], "")]),
            new RoomUpdate([new MemberInfo(4, new byte[16], "eve")], [1, 2]), new Rekey(2, new byte[32], new byte[64]),
            new RekeyAck(2, new byte[32], new byte[32]), new RekeyDone(2), new Leave(), new Ping(), new Pong(), new Error(ErrorCodes.RoomFull, "full"),
        ];
        foreach (var message in messages)
            Assert.Equal(ControlCodec.Encode(message), ControlCodec.Encode(RoundTrip(message)));
        var decodedWelcome = Assert.IsType<Welcome>(RoundTrip(welcome));
        Assert.Equal(peers.Credential, decodedWelcome.Credential);
        Assert.True(client.OnWelcome(decodedWelcome).Succeeded); // what crossed the wire still verifies
    }

    [Fact]
    public void Credential_Json_RoundTripsAndGarbageIsAFormatError()
    {
        using var peers = new TestPeers();
        var json = peers.Credential.ToJson();
        Assert.Contains("\"gatewayId\":\"gw-test\"", json, StringComparison.Ordinal);
        Assert.Equal(peers.Credential, GatewayCredential.FromJson(json));
        Assert.Throws<FormatException>(() => GatewayCredential.FromJson("{}"));
        Assert.Throws<FormatException>(() => GatewayCredential.FromJson("nonsense"));
        Assert.Throws<FormatException>(() => GatewayCredential.FromJson(json.Replace("\"gw-test\"", "\"\"", StringComparison.Ordinal)));
    }

    [Fact]
    public void SeedFile_Created0600_ReloadsTheSameIdentity()
    {
        var path = Path.Combine(Path.GetTempPath(), $"wzp-{Guid.NewGuid():N}", "identity.seed");
        try
        {
            using var created = SeedFile.LoadOrCreate(path, out var wasCreated);
            Assert.True(wasCreated);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            var text = File.ReadAllText(path);
            Assert.Matches("^[0-9a-f]{64}\n$", text);
            using var loaded = SeedFile.LoadOrCreate(path, out wasCreated);
            Assert.False(wasCreated);
            Assert.Equal(created.Fingerprint, loaded.Fingerprint);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, true);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("zz42424242424242424242424242424242424242424242424242424242424242")]
    [InlineData("4242424242424242424242424242424242424242424242424242424242424242ff")]
    public void SeedFile_Malformed_IsAnErrorAndNeverReplaced(string content)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, content);
            var e = Assert.Throws<SeedFileException>(() => SeedFile.LoadOrCreate(path, out _));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Equal(content, File.ReadAllText(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SeedFile_VectorSeed_GivesTheVectorFingerprint()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "4242424242424242424242424242424242424242424242424242424242424242\n");
            using var identity = SeedFile.Load(path);
            Assert.Equal("518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", identity.Fingerprint.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Fingerprint_ParsesDisplayAndPlainForms()
    {
        Assert.True(Fingerprint.TryParse("518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", out var a));
        Assert.True(Fingerprint.TryParse("518EB93562FA9E34E59C28B67FC2D384", out var b));
        Assert.Equal(a, b);
        Assert.False(Fingerprint.TryParse("518e:b935", out _));
        Assert.False(Fingerprint.TryParse("zz8eb93562fa9e34e59c28b67fc2d384", out _));
    }
}
