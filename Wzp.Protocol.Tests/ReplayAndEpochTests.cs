namespace Wzp.Protocol.Tests;

public sealed class ReplayAndEpochTests
{
    private static readonly byte[] Header = new MediaHeader(false, false, CodecId.Opus24k, false, 0, 1, 20, 0, 0, 0, 0).ToArray();

    private static byte[] SealUp(ClientSession client, byte marker)
    {
        var buffer = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(client.Keys, 0, Header, [marker, 1, 2, 3], buffer);
        return buffer[..n];
    }

    private static DropReason Open(HopKeySchedule keys, byte[] datagram) =>
        MediaDatagram.Open(keys, datagram, new byte[MediaDatagram.MaxSize], out _, out _);

    [Fact]
    public void Window_InOrderDuplicateAndTooOld()
    {
        var window = new ReplayWindow();
        Assert.True(window.TryAccept(0));
        Assert.False(window.TryAccept(0));
        Assert.True(window.TryAccept(2000));
        Assert.False(window.TryAccept(2000 - 1024)); // just outside
        Assert.True(window.TryAccept(2000 - 1023)); // oldest inside
        Assert.False(window.TryAccept(2000 - 1023));
        Assert.True(window.TryAccept(1999));
    }

    [Fact]
    public void Window_FarJump_ForgetsEverythingBehindTheWindow()
    {
        var window = new ReplayWindow();
        for (uint n = 0; n < 100; n++) Assert.True(window.TryAccept(n));
        Assert.True(window.TryAccept(uint.MaxValue));
        Assert.False(window.TryAccept(50));
        Assert.True(window.TryAccept(uint.MaxValue - 1));
        Assert.False(window.TryAccept(uint.MaxValue));
    }

    [Fact]
    public void Datagrams_LossReorderAndDuplication_NeverDesynchronise()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var sent = Enumerable.Range(0, 3000).Select(i => SealUp(client, (byte)i)).ToArray();
        var random = new Random(7);

        // Lose a third, shuffle neighbours within 50 positions, duplicate a tenth.
        var delivered = new List<int>();
        for (var i = 0; i < sent.Length; i++)
        {
            if (random.Next(3) == 0) continue;
            delivered.Add(i);
            if (random.Next(10) == 0) delivered.Add(i);
        }
        for (var i = 0; i < delivered.Count; i++)
        {
            var j = Math.Min(delivered.Count - 1, i + random.Next(50));
            (delivered[i], delivered[j]) = (delivered[j], delivered[i]);
        }

        var accepted = new HashSet<int>();
        var replays = 0;
        foreach (var i in delivered)
        {
            var result = Open(gateway.Keys, sent[i]);
            if (result == DropReason.None) Assert.True(accepted.Add(i), $"packet {i} accepted twice");
            else
            {
                Assert.Equal(DropReason.Replay, result);
                replays++;
            }
        }
        Assert.Equal(delivered.Distinct().Count(), accepted.Count);
        Assert.Equal(delivered.Count - accepted.Count, replays);
        // Later packets still open after all that.
        Assert.Equal(DropReason.None, Open(gateway.Keys, SealUp(client, 1)));
    }

    [Fact]
    public void Datagrams_DelayedBeyondTheWindow_AreDroppedAsReplays()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var old = SealUp(client, 0);
        for (var i = 0; i < 1024; i++) Assert.Equal(DropReason.None, Open(gateway.Keys, SealUp(client, 1)));
        Assert.Equal(DropReason.Replay, Open(gateway.Keys, old));
    }

    [Fact]
    public void Rekey_BothEpochsOpenDuringGrace_OnlyTheNewAfterIt()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var oldEpochLate = SealUp(client, 1); // in flight under epoch 0 while the rekey happens
        var oldEpochLater = SealUp(client, 2);
        var previous = gateway.Keys.Current;
        TestPeers.Rekey(client, gateway);
        Assert.Equal(1u, gateway.Keys.Current.Number);

        var fresh = SealUp(client, 3);
        Assert.Equal(1, fresh[12]);
        Assert.Equal(DropReason.None, Open(gateway.Keys, fresh));    // first datagram of epoch 1: grace now ends in 2 s
        Assert.Equal(DropReason.None, Open(gateway.Keys, oldEpochLate)); // epoch 0 still opens during grace
        peers.Clock.Advance(TimeSpan.FromSeconds(2.1));
        Assert.Equal(DropReason.UnknownEpoch, Open(gateway.Keys, oldEpochLater));
        Assert.Equal(DropReason.None, Open(gateway.Keys, SealUp(client, 4)));

        // The retired epoch's keys were wiped.
        Assert.True(previous.Send.IsDisposed);
        Assert.True(previous.Receive.IsDisposed);
        Assert.All(previous.RekeyMacKey, b => Assert.Equal(0, b));
        Assert.All(previous.Chain, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Rekey_NoTrafficUnderNewEpoch_PreviousWipedAfterFiveSeconds()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var old = SealUp(client, 1);
        TestPeers.Rekey(client, gateway);
        peers.Clock.Advance(TimeSpan.FromSeconds(4.9));
        gateway.Keys.Maintain();
        Assert.NotNull(gateway.Keys.Previous);
        peers.Clock.Advance(TimeSpan.FromSeconds(0.2));
        gateway.Keys.Maintain();
        Assert.Null(gateway.Keys.Previous);
        Assert.Equal(DropReason.UnknownEpoch, Open(gateway.Keys, old));
    }

    [Fact]
    public void Rekey_DatagramUnderNewEpochBeforeRekeyDone_OpensOnTheClient()
    {
        // The gateway switches on the ack; its first new-epoch datagram may overtake rekeyDone.
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var rekey = gateway.Rekeys.Request()!;
        var ack = client.Rekeys.OnRekey(rekey).Value!;
        var done = gateway.Rekeys.OnAck(ack).Value!;
        var buffer = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(gateway.Keys, 3, Header, "x"u8, buffer);
        Assert.Equal(DropReason.None, Open(client.Keys, buffer[..n]));
        // The client keeps sending under epoch 0 until rekeyDone, and the gateway still opens it.
        Assert.Equal(0, SealUp(client, 1)[12]);
        Assert.Equal(DropReason.None, Open(gateway.Keys, SealUp(client, 2)));
        Assert.Null(client.Rekeys.OnRekeyDone(done.Done));
        Assert.Equal(1, SealUp(client, 3)[12]);
    }

    [Fact]
    public void Departed_KeysOfAnEarlierEpoch_OpenNothingSealedAfterTheRekey()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var (departed, _) = peers.Connect();
        TestPeers.Rekey(client, gateway);
        var buffer = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(gateway.Keys, 1, Header, "after"u8, buffer);
        Assert.NotEqual(DropReason.None, Open(departed.Keys, buffer[..n]));
    }

    [Fact]
    public void Tamper_EverySingleBitFlip_IsRejected()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var datagram = SealUp(client, 9);
        for (var bit = 0; bit < datagram.Length * 8; bit++)
        {
            var flipped = datagram.ToArray();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(DropReason.None, Open(gateway.Keys, flipped));
        }
        Assert.Equal(DropReason.None, Open(gateway.Keys, datagram)); // the genuine one was never consumed
    }

    [Fact]
    public void Tamper_EveryTruncationAndExtension_IsRejected()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var datagram = SealUp(client, 9);
        for (var length = 0; length < datagram.Length; length++)
            Assert.NotEqual(DropReason.None, Open(gateway.Keys, datagram[..length]));
        Assert.NotEqual(DropReason.None, Open(gateway.Keys, [.. datagram, 0]));
        Assert.Equal(DropReason.None, Open(gateway.Keys, datagram));
    }

    /// <summary>Both ends of one established link: A offered, B accepted.</summary>
    private sealed record LinkEnds(LinkSession A, LinkSession B) : IDisposable
    {
        public static LinkEnds Connect(TestPeers peers)
        {
            using var gatewayB = Identity.Generate();
            var credentialB = GatewayCredential.Issue(peers.Cluster, "gw-b", gatewayB.PublicKey, peers.Clock.GetUtcNow().AddHours(-1), peers.Clock.GetUtcNow().AddDays(1));
            using var offerer = new LinkOfferer(peers.Gateway, peers.Credential, peers.Clock);
            var accepted = LinkAcceptor.Accept(gatewayB, credentialB, offerer.Offer, 10, 20, peers.Clock).Value!;
            return new LinkEnds(offerer.OnAccept(accepted.Accept).Value!, accepted.Session);
        }

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }

    [Fact]
    public void Tamper_LinkDatagramBitFlips_AreRejected()
    {
        using var peers = new TestPeers();
        using var link = LinkEnds.Connect(peers);
        var (a, b) = (link.A, link.B);
        var buffer = new byte[LinkDatagram.MaxSize];
        var n = LinkDatagram.Seal(a.Keys, a.SendLinkId, LinkDatagram.RoomTag("r"), 4, Header, "media"u8, buffer);
        var datagram = buffer[..n];
        Assert.True(LinkDatagram.TryReadLinkId(datagram, out var linkId));
        Assert.Equal(b.ReceiveLinkId, linkId);
        var plaintext = new byte[LinkDatagram.MaxSize];
        for (var bit = 0; bit < datagram.Length * 8; bit++)
        {
            var flipped = datagram.ToArray();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(DropReason.None, LinkDatagram.Open(b.Keys, flipped, plaintext, out _, out _, out _));
        }
        Assert.Equal(DropReason.None, LinkDatagram.Open(b.Keys, datagram, plaintext, out _, out _, out _));
        Assert.Equal(DropReason.Replay, LinkDatagram.Open(b.Keys, datagram, plaintext, out _, out _, out _));
    }

    [Theory]
    [InlineData(MediaDatagram.MaxPlaintext + 1)]
    [InlineData(1185)]
    public void LinkDatagram_AuthenticButLongerThanAMediaDatagramCanCarry_IsMalformed(int plaintextLength)
    {
        using var peers = new TestPeers();
        using var link = LinkEnds.Connect(peers);
        var (a, b) = (link.A, link.B);
        var tooLong = new byte[plaintextLength];
        var buffer = new byte[LinkDatagram.MinSize + plaintextLength];
        Assert.Throws<ArgumentException>(() => LinkDatagram.Seal(a.Keys, a.SendLinkId, 1, 4, Header, tooLong, buffer));

        // Sealed by hand with the link's real key: authentic, and still refused before anyone tries to forward it.
        Assert.True(a.Keys.TryPrepareSend(out var epoch, out var packetNumber));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(buffer, a.SendLinkId);
        buffer[4] = epoch.WireEpoch;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(5), packetNumber);
        Header.CopyTo(buffer, 19);
        Assert.True(epoch.Send.Seal(packetNumber, buffer.AsSpan(0, LinkDatagram.PrefixSize), tooLong, buffer.AsSpan(LinkDatagram.PrefixSize)));
        Assert.False(LinkDatagram.TryReadLinkId(buffer, out _));
        Assert.Equal(DropReason.Malformed, LinkDatagram.Open(b.Keys, buffer, new byte[buffer.Length], out _, out _, out _));

        // The longest a link carries opens, and fits one media datagram toward a member.
        var longest = new byte[LinkDatagram.MaxSize];
        var n = LinkDatagram.Seal(a.Keys, a.SendLinkId, 1, 4, Header, new byte[LinkDatagram.MaxPlaintext], longest);
        var plaintext = new byte[LinkDatagram.MaxSize];
        Assert.Equal(DropReason.None, LinkDatagram.Open(b.Keys, longest.AsSpan(0, n), plaintext, out var length, out _, out _));
        Assert.True(MediaDatagram.Seal(b.Keys, 4, Header, plaintext.AsSpan(0, length), new byte[MediaDatagram.MaxSize]) > 0);
    }

    [Fact]
    public void Seal_PacketNumbersExhausted_RefusesToReuseANonce()
    {
        using var peers = new TestPeers();
        var (client, _) = peers.Connect();
        // Drive the counter to the end of the u32 space without sealing 4 billion datagrams.
        var epoch = client.Keys.Current;
        typeof(HopEpoch).GetField("_nextPacketNumber", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .SetValue(epoch, (long)uint.MaxValue);
        Assert.True(RekeyTriggers.IsDue(client.Keys));
        var buffer = new byte[MediaDatagram.MaxSize];
        Assert.True(MediaDatagram.Seal(client.Keys, 0, Header, "last"u8, buffer) > 0);
        Assert.Equal(0, MediaDatagram.Seal(client.Keys, 0, Header, "over"u8, buffer));
    }
}
