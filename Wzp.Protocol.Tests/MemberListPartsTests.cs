using System.Text;

namespace Wzp.Protocol.Tests;

/// <summary>Member lists over one control frame travel in parts (docs/protocol.md §5.5) and come out whole.</summary>
public sealed class MemberListPartsTests
{
    /// <summary>64 characters the default JSON encoder escapes (six bytes each), some of which JSON itself must escape.</summary>
    internal static string EscapedAlias(int i) => string.Concat(Enumerable.Range(0, 64).Select(k => "é\"<日ß>&\\"[(i + k) % 8]));

    private static List<MemberInfo> Members(int count) =>
        [.. Enumerable.Range(1, count).Select(i => new MemberInfo(i, [.. Enumerable.Repeat((byte)i, 16)], EscapedAlias(i)))];

    private static List<ControlMessage> ReadAll(IEnumerable<byte[]> frames, ControlFrameReader? reader = null)
    {
        reader ??= new ControlFrameReader();
        var messages = new List<ControlMessage>();
        foreach (var frame in frames)
        {
            // Across arbitrary read boundaries, as a stream delivers them.
            for (var offset = 0; offset < frame.Length;)
            {
                var memory = reader.GetWriteMemory();
                var n = Math.Min(memory.Length, Math.Min(frame.Length - offset, 7_000));
                frame.AsSpan(offset, n).CopyTo(memory.Span);
                reader.Advance(n);
                offset += n;
                while (reader.TryRead(out var message)) messages.Add(message!);
            }
        }
        return messages;
    }

    [Fact]
    public void Joined_AtTheRoomLimitWithEscapedAliases_GoesInPartsUnderTheLimit_AndReadsBackWhole()
    {
        var members = Members(1000);
        var frames = ControlCodec.EncodeFrames(new Joined("room", 17, 42, members));
        Assert.True(frames.Count > 1);
        Assert.All(frames, f => Assert.InRange(f.Length - ControlCodec.LengthPrefixSize, 1, ControlCodec.MaxFrameLength));
        var joined = Assert.IsType<Joined>(Assert.Single(ReadAll(frames)));
        Assert.Equal(("room", 17, 42u, false), (joined.Room, joined.Slot, joined.Epoch, joined.More));
        Assert.Equal(members.Select(m => (m.Slot, Convert.ToHexString(m.Fingerprint), m.Alias)),
            joined.Members.Select(m => (m.Slot, Convert.ToHexString(m.Fingerprint), m.Alias)));
    }

    [Fact]
    public void RoomUpdate_OverOneFrame_GoesInParts_AndReadsBackWholeBetweenOtherMessages()
    {
        var joinedMembers = Members(700);
        var left = Enumerable.Range(2000, 900).ToList();
        var frames = new List<byte[]> { ControlCodec.Encode(new Ping()) };
        frames.AddRange(ControlCodec.EncodeFrames(new RoomUpdate(joinedMembers, left)));
        frames.Add(ControlCodec.Encode(new Pong()));
        var messages = ReadAll(frames);
        Assert.Equal(3, messages.Count);
        Assert.IsType<Ping>(messages[0]);
        var update = Assert.IsType<RoomUpdate>(messages[1]);
        Assert.Equal(left, update.Left);
        Assert.Equal(joinedMembers.Select(m => m.Slot), update.Joined.Select(m => m.Slot));
        Assert.IsType<Pong>(messages[2]);
    }

    [Fact]
    public void SmallMessage_IsOneFrame_WithoutMore_AndAliasesAreNotNeedlesslyEscaped()
    {
        var frames = ControlCodec.EncodeFrames(new Joined("room", 1, 0, [new MemberInfo(1, new byte[16], "é<日>&")]));
        var json = Encoding.UTF8.GetString(Assert.Single(frames).AsSpan(ControlCodec.LengthPrefixSize));
        Assert.Contains("\"alias\":\"é<日>&\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("more", json, StringComparison.Ordinal);
        Assert.Equal("\"a\\\"b\\\\\"", Encoding.UTF8.GetString(ControlCodec.SerializeBody(new Error("x", "a\"b\\"))).Split(':')[^1].TrimEnd('}'));
    }

    [Fact]
    public void PartsInterruptedByAnotherMessage_AreABadMessage()
    {
        var parts = ControlCodec.EncodeFrames(new Joined("room", 1, 0, Members(1000)));
        byte[][] frames = [parts[0], ControlCodec.Encode(new Pong())];
        var e = Assert.Throws<ControlFrameException>(() => ReadAll(frames));
        Assert.Equal(ControlFrameError.BadMessage, e.Error);
    }

    [Fact]
    public void ReaderWithoutAssembly_HandsPartsOnAsTheyAre()
    {
        var parts = ControlCodec.EncodeFrames(new Joined("room", 1, 0, Members(1000)));
        var messages = ReadAll([parts[0]], new ControlFrameReader(assembleParts: false));
        Assert.True(Assert.IsType<Joined>(Assert.Single(messages)).More);
    }

    [Fact]
    public void OtherMessageOverTheLimit_IsRefusedBeforeSending()
    {
        Assert.Throws<ArgumentException>(() => ControlCodec.EncodeFrames(new Error("x", new string('a', ControlCodec.MaxFrameLength))));
    }
}
