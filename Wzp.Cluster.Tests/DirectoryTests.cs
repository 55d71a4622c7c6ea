using System.Collections.Immutable;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

[Collection(ClusterFixture.Collection)]
public sealed class DirectoryTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private IGatewayDirectoryGrain Directory => fixture.Client.GetGatewayDirectory();

    [Fact]
    public async Task RegisteredGateway_IsListedWithItsEndpointCredentialAndLoad()
    {
        var data = new TestData(413);
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());
        gateway.Agent.LoadProvider = () => 42;

        var info = (await Directory.List()).Single(g => g.GatewayId == gateway.Id);
        Assert.Equal("127.0.0.1:0", info.Registration.LinkEndpoint);
        Assert.Equal(new byte[] { 1, 2, 3 }, info.Registration.Credential.ToArray());
        // One gateway by id, as a link negotiation asks, without the list.
        var one = await Directory.Get(gateway.Id);
        Assert.NotNull(one);
        Assert.Equal(info.Registration.LinkEndpoint, one.Registration.LinkEndpoint);
        Assert.Null(await Directory.Get(data.GatewayId()));
        await Eventually.True(
            async () => (await Directory.List()).Single(g => g.GatewayId == gateway.Id).Registration.Load == 42,
            Patience,
            "the heartbeat carried the load");
    }

    [Fact]
    public async Task Heartbeat_OfAnUnknownGateway_AsksItToRegisterAgain()
    {
        var data = new TestData(414);
        Assert.False(await Directory.Heartbeat(new GatewayHeartbeat(data.GatewayId(), Guid.NewGuid(), 0)));

        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());
        // Dropping the registration behind the agent's back (as a re-activated directory would have): the agent's
        // next heartbeat is refused and it registers again.
        await Directory.Unregister(gateway.Id);
        await Eventually.True(
            async () => (await Directory.List()).Any(g => g.GatewayId == gateway.Id),
            Patience,
            "the agent registered again");
    }

    [Fact]
    public async Task SilentGateway_ExpiresAndItsMembersLeaveEveryRoom()
    {
        var data = new TestData(407);
        var rooms = new[] { data.RoomName(), data.RoomName() };
        await using var watcher = await TestGateway.StartAsync(fixture, data.GatewayId());
        var silent = new ManualGateway(fixture.Client, data.GatewayId());
        await silent.RegisterAsync();
        foreach (var room in rooms)
        {
            await watcher.JoinAsync(room, data.Member());
            Assert.Equal(JoinStatus.Joined, (await silent.Rooms.JoinAsync(room, data.Fingerprint(), data.Alias())).Status);
        }

        await Eventually.True(
            async () => (await Directory.List()).All(g => g.GatewayId != silent.Id),
            Patience,
            "the silent gateway expired from the directory");
        foreach (var room in rooms)
        {
            var grain = fixture.Client.GetGrain<IRoomGrain>(room);
            await Eventually.True(
                async () => (await grain.GetSnapshot()).Members.All(member => member.GatewayId != silent.Id),
                Patience,
                $"the silent gateway's member left {room}");
            await Eventually.True(
                () => watcher.EventsOf(room).Any(e => e.Reason == RoomChangeReason.GatewayGone),
                Patience,
                $"the watcher heard of the eviction in {room}");
            Assert.Single((await grain.GetSnapshot()).Members);
        }
    }

    [Fact]
    public async Task RestartedGateway_KeepsTheMembersOfItsNewProcess_ThroughALateEvictionOfTheOldOne_AndPastTheRekeyDeadline()
    {
        var data = new TestData(415);
        var room = data.RoomName();
        var gatewayId = data.GatewayId();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var watcher = await TestGateway.StartAsync(fixture, data.GatewayId());
        await watcher.JoinAsync(room, data.Member());
        var old = new ManualGateway(fixture.Client, gatewayId);
        await old.RegisterAsync();
        Assert.Equal(JoinStatus.Joined, (await old.Rooms.JoinAsync(room, data.Fingerprint(), "before-restart")).Status);

        // The old process dies (no more heartbeats); the new one gets the id once the directory let go of it.
        var restarted = new ManualGateway(fixture.Client, gatewayId);
        await Task.Delay(fixture.Options.GatewayHeartbeatPeriod * 3);
        await restarted.RegisterAsync();
        await using var heartbeats = restarted.StartHeartbeats(fixture.Options.GatewayHeartbeatPeriod);
        Assert.Equal(JoinStatus.Joined, (await restarted.Rooms.JoinAsync(room, data.Fingerprint(), "after-restart")).Status);
        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.Where(m => m.GatewayId == gatewayId).Select(m => m.Alias).SequenceEqual(["after-restart"]),
            Patience,
            "the room lists the new process's member and not the old one's");

        // The eviction meant for the old process, delivered late (it is one-way, through another silo).
        await grain.EvictGateway(gatewayId, old.InstanceId);
        // Longer than the rekey deadline: the new process's reports count, so the room keeps it.
        await Task.Delay(fixture.Options.RekeyTimeout * 2 + TimeSpan.FromSeconds(1));
        var members = (await grain.GetSnapshot()).Members;
        Assert.Equal(["after-restart"], members.Where(m => m.GatewayId == gatewayId).Select(m => m.Alias));
        Assert.Equal(2, members.Length);
        Assert.True(restarted.Rooms.Get(room)?.Members.Any(m => m.Alias == "after-restart"), "the new process still routes its member");
    }

    [Fact]
    public async Task RekeyReport_OfAnEarlierProcessOrRoomActivation_DoesNotCountForTheCurrentOne()
    {
        var data = new TestData(416);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var watcher = await TestGateway.StartAsync(fixture, data.GatewayId());
        await watcher.JoinAsync(room, data.Member());
        // A gateway that never reports a rekey itself: only the forged reports below could save it.
        var silent = new ManualGateway(fixture.Client, data.GatewayId()) { Drop = _ => true };
        await silent.RegisterAsync();
        await using var heartbeats = silent.StartHeartbeats(fixture.Options.GatewayHeartbeatPeriod);
        Assert.Equal(JoinStatus.Joined, (await silent.Rooms.JoinAsync(room, data.Fingerprint(), data.Alias())).Status);
        // A newcomer elsewhere starts an epoch the silent gateway owes (it drops the push that announces it). The
        // room's periodic rekey is due EpochPeriod after its first join, a moment before this one.
        await watcher.JoinAsync(room, data.Member());
        var stamp = await grain.GetStamp();
        await grain.ReportRekeyComplete(new RekeyReport(silent.Id, long.MaxValue, Guid.NewGuid(), stamp.Incarnation));
        await grain.ReportRekeyComplete(new RekeyReport(silent.Id, long.MaxValue, silent.InstanceId, Guid.NewGuid()));

        // Evicted at the deadline of the epoch it owes. Had a forged report counted, it would owe only the next
        // periodic epoch and be evicted one EpochPeriod later: the wait stops short of that.
        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.All(m => m.GatewayId != silent.Id),
            fixture.Options.RekeyTimeout + fixture.Options.EpochPeriod / 2,
            "the gateway that owed the rekey was evicted at that epoch's deadline");
        Assert.Contains(watcher.EventsOf(room), e => e.Reason == RoomChangeReason.RekeyTimeout);
    }

    [Fact]
    public async Task GatewayJoiningWithItsObserver_IsAttachedWithoutTheDirectory_AndEvictedWhenTheDirectoryDoesNotKnowIt()
    {
        var data = new TestData(417);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var watcher = await TestGateway.StartAsync(fixture, data.GatewayId());
        await watcher.JoinAsync(room, data.Member());
        // Never registered: the room takes the gateway at its word (a join does not wait on the directory), and
        // the directory, told one-way, has it evicted.
        var stranger = new ManualGateway(fixture.Client, data.GatewayId());
        var observer = fixture.Client.CreateObjectReference<IGatewayObserver>(stranger);
        var joined = await grain.Join(new JoinRequest(data.Fingerprint(), data.Alias(), stranger.Id, default, stranger.InstanceId, observer));
        Assert.Equal(JoinStatus.Joined, joined.Status);

        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.All(m => m.GatewayId != stranger.Id),
            Patience,
            "the unregistered gateway's member was evicted");
        Assert.Contains(watcher.EventsOf(room), e => e.Reason == RoomChangeReason.GatewayGone && e.Left.Contains(joined.Slot));
        Assert.Single((await grain.GetSnapshot()).Members);
    }

    [Fact]
    public async Task StoppedGateway_Unregisters_AndItsMembersAreEvicted()
    {
        var data = new TestData(415);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var watcher = await TestGateway.StartAsync(fixture, data.GatewayId());
        var leaving = await TestGateway.StartAsync(fixture, data.GatewayId());
        await watcher.JoinAsync(room, data.Member());
        await leaving.JoinAsync(room, data.Member());

        await leaving.DisposeAsync();

        Assert.DoesNotContain(await Directory.List(), g => g.GatewayId == leaving.Id);
        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.All(member => member.GatewayId != leaving.Id),
            Patience,
            "the stopped gateway's member was evicted");
    }

    [Fact]
    public async Task DirectoryLosingItsState_GatewaysRegisterAgain_AndRoomsKeepTheirMembers()
    {
        var data = new TestData(417);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var first = await TestGateway.StartAsync(fixture, data.GatewayId());
        var second = await TestGateway.StartAsync(fixture, data.GatewayId());
        await first.JoinAsync(room, data.Member());
        await second.JoinAsync(room, data.Member());
        var before = await grain.GetSnapshot();

        // What a silo failure does to the directory: its registrations and room lists are gone.
        await fixture.Cluster.DeactivateAsync(Directory);

        await Eventually.True(
            async () => (await Directory.List()).Count(g => g.GatewayId == first.Id || g.GatewayId == second.Id) == 2,
            Patience,
            "both gateways registered again");
        // After one expiry period the new directory treats unknown gateways as gone; nobody was evicted meanwhile.
        var stranger = data.GatewayId();
        await Eventually.True(
            async () => (await Directory.CheckGateways(room, [stranger])).Gone.Contains(stranger),
            Patience,
            "the re-activated directory finished its grace period");
        Assert.Equal(before.Members.AsEnumerable(), (await grain.GetSnapshot()).Members.AsEnumerable());

        // And the room is tied to its gateways again: one leaving still evicts its member.
        await second.DisposeAsync();
        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.All(member => member.GatewayId != second.Id),
            Patience,
            "the departed gateway's member was evicted");
    }

    [Fact]
    public async Task LinkMessages_AreRelayedToTheTargetGatewayUnchanged()
    {
        var data = new TestData(416);
        await using var offerer = await TestGateway.StartAsync(fixture, data.GatewayId());
        await using var accepter = await TestGateway.StartAsync(fixture, data.GatewayId());
        var offer = data.Random.Bytes(data.Random.Int(100, 400)).ToImmutableArray();
        var accept = data.Random.Bytes(data.Random.Int(100, 400)).ToImmutableArray();

        Assert.Equal(LinkDelivery.Sent, await offerer.Agent.SendLinkMessageAsync(accepter.Id, LinkMessageKind.Offer, offer));
        Assert.Equal(LinkDelivery.Sent, await accepter.Agent.SendLinkMessageAsync(offerer.Id, LinkMessageKind.Accept, accept));

        await Eventually.True(() => accepter.LinkMessages.Count == 1 && offerer.LinkMessages.Count == 1, Patience, "both messages arrived");
        var received = accepter.LinkMessages.Single();
        Assert.Equal((offerer.Id, accepter.Id, LinkMessageKind.Offer), (received.FromGatewayId, received.ToGatewayId, received.Kind));
        Assert.Equal(offer.ToArray(), received.Payload.ToArray());
        Assert.Equal(accept.ToArray(), offerer.LinkMessages.Single().Payload.ToArray());

        Assert.Equal(LinkDelivery.UnknownTarget, await offerer.Agent.SendLinkMessageAsync(data.GatewayId(), LinkMessageKind.Offer, offer));
        Assert.Equal(
            LinkDelivery.UnknownSender,
            await Directory.RelayLinkMessage(new LinkMessage(data.GatewayId(), accepter.Id, LinkMessageKind.Offer, offer)));
    }
}
