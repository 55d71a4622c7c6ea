using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;

namespace Wzp.Cluster.Tests;

/// <summary>
/// What one authenticated party can do to everyone else on a gateway (issue 12): a link peer that sends what no
/// link datagram may carry or speaks for rooms and slots that are not its own, and a maintenance tick that
/// throws. Each is dropped and counted, and the gateway keeps forwarding.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class HostilePeerTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private sealed record TwoGateways(GatewayHarness Harness, GatewayServer G1, GatewayServer G2, string Room, WzpClient Alice, WzpClient Bob);

    /// <summary>Alice on g1, Bob on g2, in one room, linked.</summary>
    private async Task<TwoGateways> TwoGatewaysAsync()
    {
        var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync();
        var g2 = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(g1, room, "alice");
        var bob = await harness.JoinAsync(g2, room, "bob");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1 &&
            g1.HasLinkTo(g2.Options.GatewayId) && g2.HasLinkTo(g1.Options.GatewayId), Patience, "joined and linked");
        return new TwoGateways(harness, g1, g2, room, alice, bob);
    }

    /// <summary>
    /// A datagram g1 genuinely seals on its link to g2 (the link's keys and next packet number), with any room,
    /// source and plaintext length, even lengths <see cref="LinkDatagram.Seal(HopKeySchedule, uint, ulong, ushort, ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte})"/> refuses.
    /// </summary>
    private static byte[] SealOnLink(GatewayServer from, GatewayServer to, string room, ushort source, int plaintextLength)
    {
        var link = from.Links.Get(to.Options.GatewayId)!;
        Assert.True(link.Session.Keys.TryPrepareSend(out var epoch, out var packetNumber));
        var datagram = new byte[LinkDatagram.MinSize + plaintextLength];
        BinaryPrimitives.WriteUInt32BigEndian(datagram, link.Session.SendLinkId);
        datagram[4] = epoch.WireEpoch;
        BinaryPrimitives.WriteUInt32BigEndian(datagram.AsSpan(5), packetNumber);
        BinaryPrimitives.WriteUInt64BigEndian(datagram.AsSpan(9), LinkDatagram.RoomTag(room));
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(17), source);
        Speech.Header(9_999).Write(datagram.AsSpan(19, MediaHeader.Size));
        var plaintext = new byte[plaintextLength];
        Assert.True(epoch.Send.Seal(packetNumber, datagram.AsSpan(0, LinkDatagram.PrefixSize), plaintext, datagram.AsSpan(LinkDatagram.PrefixSize)));
        return datagram;
    }

    private static void SendTo(GatewayServer gateway, byte[] datagram)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.SendTo(datagram, gateway.LinkEndPoint);
    }

    [Theory]
    [InlineData(MediaDatagram.MaxPlaintext + 1)]
    [InlineData(MediaDatagram.MaxPlaintext + 10)]
    [InlineData(1185)] // the largest a 1232-byte link datagram used to carry
    public async Task AuthenticOversizedLinkDatagram_IsACountedDrop_AndTheLinkKeepsForwarding(int plaintextLength)
    {
        var (harness, g1, g2, room, alice, bob) = await TwoGatewaysAsync();
        await using var _ = harness;
        var malformed = g2.Counters.Drops(GatewayDrop.Malformed);
        // Authentic and from a member of g1: it would pass every other check, and no media datagram can hold it.
        SendTo(g2, SealOnLink(g1, g2, room, (ushort)alice.Slot, plaintextLength));
        await Eventually.True(() => g2.Counters.Drops(GatewayDrop.Malformed) > malformed, Patience, "the oversized datagram is counted");

        var listening = Speech.ListenAsync(bob, 50, Patience);
        await Speech.TalkAsync(alice, "alice", 50);
        Assert.Equal(Enumerable.Range(0, 50), (await listening).Where(f => f.Source == alice.Slot).Select(f => (int)f.Header.Sequence).Order());
        Assert.Equal(0, g2.Counters.LoopFailures(GatewayLoop.LinkReceive));
    }

    [Fact]
    public async Task LinkPeer_SendingForARoomOrSlotItDoesNotServe_IsDroppedAndCounted()
    {
        var (harness, g1, g2, room, alice, bob) = await TwoGatewaysAsync();
        await using var _ = harness;
        // A room with members on g2 only: g1 has nothing to say in it.
        var otherRoom = $"room-{Guid.NewGuid():N}";
        var dave = await harness.JoinAsync(g2, otherRoom, "dave");
        var foreignRoom = g2.Counters.Drops(GatewayDrop.ForeignRoom);
        var foreignSource = g2.Counters.Drops(GatewayDrop.ForeignSource);

        SendTo(g2, SealOnLink(g1, g2, otherRoom, (ushort)alice.Slot, 60)); // a room g1 does not serve
        SendTo(g2, SealOnLink(g1, g2, room, (ushort)bob.Slot, 60)); // posing as g2's own member
        SendTo(g2, SealOnLink(g1, g2, room, 4_242, 60)); // a slot nobody holds
        await Eventually.True(() => g2.Counters.Drops(GatewayDrop.ForeignRoom) == foreignRoom + 1 &&
            g2.Counters.Drops(GatewayDrop.ForeignSource) == foreignSource + 2, Patience, "the three forgeries are counted");

        // The same path with alice's own slot is forwarded: the drops were about who spoke, not how.
        var bobHears = Speech.ListenAsync(bob, 1, Patience);
        SendTo(g2, SealOnLink(g1, g2, room, (ushort)alice.Slot, 60));
        var heard = Assert.Single(await bobHears);
        Assert.Equal((alice.Slot, (ushort)9_999), (heard.Source, heard.Header.Sequence));

        var daveHeard = await Speech.ListenAsync(dave, 1, TimeSpan.FromSeconds(1));
        Assert.Empty(daveHeard);
    }

    [Fact]
    public async Task TickThatThrows_IsCounted_AndRekeysAndReportsGoOn()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, Patience, "both joined");

        var thrown = 0;
        gateway.BeforeTick = () =>
        {
            if (Interlocked.Increment(ref thrown) <= 5) throw new InvalidOperationException("injected tick failure");
        };
        await Eventually.True(() => gateway.Counters.LoopFailures(GatewayLoop.Tick) >= 5, Patience, "five failed ticks counted");

        // A join advances the epoch: only the tick starts the members' rekeys and reports them to the room, which
        // would evict this gateway's members at the deadline if the loop had ended.
        var rekeys = alice.GetStatistics().Rekeys;
        var carol = await harness.JoinAsync(gateway, room, "carol");
        await Eventually.True(() => alice.GetStatistics().Rekeys > rekeys && bob.GetStatistics().Rekeys > 0, Patience, "the members rekeyed");
        var listening = Speech.ListenAsync(carol, 50, Patience);
        await Speech.TalkAsync(alice, "alice", 50);
        Assert.Equal(50, (await listening).Count(f => f.Source == alice.Slot));
        Assert.Equal([ClientState.Joined, ClientState.Joined, ClientState.Joined], new[] { alice.State, bob.State, carol.State });
    }
}
