using Wzp.Client;
using Wzp.Grains;
using Wzp.Protocol;

namespace Wzp.Cluster.Tests;

/// <summary>
/// Membership over the durations real calls have: members stay longer than the timeouts membership depends on
/// (the cluster's <c>RekeyTimeout</c> here is the production 5 s), and a member the room removes is told so.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class LongCallTests(ClusterFixture fixture)
{
    private TimeSpan PastTheRekeyDeadline => fixture.Options.RekeyTimeout * 2 + TimeSpan.FromSeconds(1);

    [Fact]
    public async Task FirstMemberOfARoomOnAGateway_StaysPastTheRekeyDeadline_AndHearsTheNextMemberWithAnotherSlot()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(gateway, room, "alice");

        // Alone for longer than the room waits for a gateway's rekey report: before the fix the gateway never
        // acknowledged the epoch of its first member's join, and the room evicted it at the deadline.
        await Task.Delay(PastTheRekeyDeadline);
        Assert.False(alice.Completion.IsCompleted, "alice is still connected");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");
        Assert.NotEqual(alice.Slot, bob.Slot);
        Assert.Equal(bob.Slot, Assert.Single(alice.Others).Slot);
        Assert.Equal(alice.Slot, Assert.Single(bob.Others).Slot);
        var members = (await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot()).Members;
        Assert.Equal([alice.Slot, bob.Slot], members.Select(m => (int)m.Slot).Order());

        // And they keep talking past the deadline of Bob's join too.
        await Task.Delay(PastTheRekeyDeadline);
        await AssertHearsAsync(alice, "alice", bob, frames: 200, bothWays: true);
        Assert.False(alice.Completion.IsCompleted || bob.Completion.IsCompleted, "nobody was cut off");
    }

    [Fact]
    public async Task FirstMembersOnTwoGateways_StayPastTheRekeyDeadline_AndHearEachOther()
    {
        await using var harness = new GatewayHarness(fixture);
        var first = await harness.StartGatewayAsync();
        var second = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(first, room, "alice");
        await Task.Delay(TimeSpan.FromSeconds(2));
        var bob = await harness.JoinAsync(second, room, "bob");
        await Task.Delay(PastTheRekeyDeadline);
        Assert.False(alice.Completion.IsCompleted || bob.Completion.IsCompleted, "nobody was cut off");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");
        await Eventually.True(() => first.HasLinkTo(second.Options.GatewayId) && second.HasLinkTo(first.Options.GatewayId),
            TimeSpan.FromSeconds(10), "the gateways linked");

        await AssertHearsAsync(alice, "alice", bob, frames: 200, bothWays: true);
    }

    [Fact]
    public async Task MemberTheRoomRemoves_IsDisconnectedWithAnErrorThatSaysWhy_AndForwardedNothingMore()
    {
        await using var harness = new GatewayHarness(fixture);
        var evicted = await harness.StartGatewayAsync();
        var other = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(evicted, room, "alice");
        var bob = await harness.JoinAsync(other, room, "bob");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        // What the room does to a gateway the directory declared gone.
        await fixture.Client.GetGrain<IRoomGrain>(room).EvictGateway(evicted.Options.GatewayId, Guid.Empty);

        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => alice.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Unauthorized, failure.Code);
        Assert.Contains("removed from room", failure.Message, StringComparison.Ordinal);
        Assert.Contains("gateway gone", failure.Message, StringComparison.Ordinal);
        Assert.Equal(1, evicted.Counters.Evictions);
        await Eventually.True(() => !evicted.LocalMembers.ContainsKey(room), TimeSpan.FromSeconds(5), "the gateway forwards nothing to or from alice");
        await Eventually.True(() => bob.Others.Count == 0, TimeSpan.FromSeconds(10), "bob sees alice leave");
        Assert.False(bob.Completion.IsCompleted, "bob stays");
    }

    [Fact]
    public async Task ClientGivenSeveralGateways_SkipsOneThatDoesNotAnswer_AndMovesToTheNextWhenItsGatewayGoes()
    {
        await using var harness = new GatewayHarness(fixture);
        var first = await harness.StartGatewayAsync();
        var second = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var bob = await harness.JoinAsync(second, room, "bob");
        var nobody = new GatewayAddress("127.0.0.1", FreeUdpPort());
        var alice = await harness.JoinAnyAsync(
            [nobody, new("127.0.0.1", first.ClientEndPoint.Port), new("127.0.0.1", second.ClientEndPoint.Port)], room, "alice");
        Assert.Equal(first.ClientEndPoint.Port, alice.Gateway.Port);
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        // Alice's gateway shuts down: she is back in the room through the next one (any gateway serves any room).
        await harness.StopAsync(first);
        await Eventually.True(() => alice.State == ClientState.Joined && alice.Gateway.Port == second.ClientEndPoint.Port,
            TimeSpan.FromSeconds(15), "alice reconnected through the second gateway");
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other again");
        await AssertHearsAsync(alice, "alice", bob, frames: 100, bothWays: false);
    }

    [Fact]
    public async Task SecondGatewayWithAnIdInUse_RefusesToStart_AndTheFirstKeepsItsMembers()
    {
        await using var harness = new GatewayHarness(fixture);
        var id = $"gw-{Guid.NewGuid():N}"[..12];
        var first = await harness.StartGatewayAsync(id);
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(first, room, "alice");

        var refused = await Assert.ThrowsAsync<Wzp.Grains.Routing.GatewayIdInUseException>(
            () => harness.StartGatewayAsync(id, options => options.DataDirectory += "-second"));
        Assert.Contains(id, refused.Message, StringComparison.Ordinal);

        // Several heartbeats later the first gateway's member is still in the room and connected.
        await Task.Delay(fixture.Options.GatewayHeartbeatPeriod * 8);
        Assert.False(alice.Completion.IsCompleted, "alice is still connected");
        var members = (await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot()).Members;
        Assert.Equal(alice.Slot, Assert.Single(members).Slot);
    }

    [Fact]
    public async Task FlowMovedToAnotherGateway_SharingTheResetKey_TheClientIsBackInTheRoomWithinTwoSeconds()
    {
        await using var harness = new GatewayHarness(fixture);
        var resetKey = Path.Combine(Path.GetTempPath(), $"wzp-reset-{Guid.NewGuid():N}.seed");
        try
        {
            var first = await harness.StartGatewayAsync(configure: o => o.StatelessResetKeyFile = resetKey);
            var second = await harness.StartGatewayAsync(configure: o => o.StatelessResetKeyFile = resetKey);
            var room = $"room-{Guid.NewGuid():N}";
            var bob = await harness.JoinAsync(second, room, "bob");
            await using var balancer = new SwitchingUdpForwarder(first.ClientEndPoint);
            var alice = await harness.JoinAnyAsync([new("127.0.0.1", balancer.EndPoint.Port)], room, "alice");
            await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");
            Assert.Equal(1, first.Counters.Sessions);

            // Alice talks (20 ms frames) while the balancer moves her flow. The first gateway keeps running, so
            // only the second gateway's stateless reset, answering her next packet, can tell her.
            using var talking = new CancellationTokenSource();
            var talker = Task.Run(async () =>
            {
                for (var i = 0; !talking.IsCancellationRequested; i++)
                {
                    alice.TrySend(Speech.Header(i), Speech.Payload("alice", i));
                    await Task.Delay(20);
                }
            });
            var moved = System.Diagnostics.Stopwatch.StartNew();
            balancer.Target = second.ClientEndPoint;
            await Eventually.True(() => second.Counters.Sessions == 2 && alice.State == ClientState.Joined && alice.Others.Count == 1,
                TimeSpan.FromSeconds(10), "alice is back in the room through the second gateway");
            var back = moved.Elapsed;
            await talking.CancelAsync();
            await talker;
            Assert.True(back < TimeSpan.FromSeconds(2), $"alice was back after {back.TotalSeconds:0.00} s (goal: 2 s)");
            Assert.Equal(1, alice.GetStatistics().Reconnects);
            // Her former self on the first gateway is replaced in the room (one identity, one member) and cut off there.
            await Eventually.True(() => first.Counters.Sessions == 0, TimeSpan.FromSeconds(5), "the first gateway let go of alice");
            Assert.Single((await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot()).Members, m => m.Alias == "alice");
            await AssertHearsAsync(alice, "alice", bob, frames: 100, bothWays: false);
        }
        finally
        {
            File.Delete(resetKey);
        }
    }

    [Fact]
    public async Task SameIdentityJoiningAgain_ReplacesItsFormerSelf_WhichIsToldWhy()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        using var identity = Identity.Generate();
        var bob = await harness.JoinAsync(gateway, room, "bob");
        WzpClientOptions Options() => new()
        {
            Gateway = new GatewayAddress("127.0.0.1", gateway.ClientEndPoint.Port),
            Identity = identity,
            Room = room,
            Alias = "alice",
            PinnedClusterFingerprint = gateway.Keys.ClusterFingerprint,
            KnownClustersPath = Path.Combine(Path.GetTempPath(), $"wzp-known-{Guid.NewGuid():N}"),
            Reconnect = false,
        };
        await using var before = await WzpClient.ConnectAsync(Options());
        await using var again = await WzpClient.ConnectAsync(Options());

        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => before.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("same identity joined the room again", failure.Message, StringComparison.Ordinal);
        await Eventually.True(() => bob.Others.Count == 1 && bob.Others[0].Slot == again.Slot, TimeSpan.FromSeconds(10), "bob lists alice once, at her new slot");
        var members = (await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot()).Members;
        Assert.Equal([bob.Slot, again.Slot], members.Select(m => (int)m.Slot).Order());
    }

    // Alice sends `frames` frames and Bob receives every one of them (and the other way round when asked, Bob
    // answering as "bob" at the same time).
    private static async Task AssertHearsAsync(WzpClient alice, string aliceName, WzpClient bob, int frames, bool bothWays)
    {
        var heardByBob = Speech.ListenAsync(bob, frames, TimeSpan.FromSeconds(20));
        var heardByAlice = bothWays ? Speech.ListenAsync(alice, frames, TimeSpan.FromSeconds(20)) : null;
        await Task.WhenAll(Speech.TalkAsync(alice, aliceName, frames), bothWays ? Speech.TalkAsync(bob, "bob", frames) : Task.CompletedTask);
        Assert.Equal(frames, (await heardByBob).Count(f => f.Source == alice.Slot));
        if (heardByAlice is not null) Assert.Equal(frames, (await heardByAlice).Count(f => f.Source == bob.Slot));
    }

    private static int FreeUdpPort()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
