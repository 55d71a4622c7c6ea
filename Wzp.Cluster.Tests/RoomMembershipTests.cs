using Wzp.Grains;
using Wzp.Grains.Routing;

namespace Wzp.Cluster.Tests;

[Collection(ClusterFixture.Collection)]
public sealed class RoomMembershipTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task JoinLeaveSequence_SlotsAreUniqueAndVersionsAndEpochsGrow_EventsRebuildTheSnapshot()
    {
        var data = new TestData(401);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());

        // The anchor never leaves, so the room stays one incarnation for the whole sequence.
        var anchor = await gateway.JoinAsync(room, data.Member());
        Assert.Equal(JoinStatus.Joined, anchor.Status);
        var first = anchor.Snapshot!;
        var live = new HashSet<ushort> { anchor.Slot };
        var stamp = await grain.GetStamp();

        for (var step = 0; step < 60; step++)
        {
            if (live.Count > 1 && data.Random.Bool(0.4f))
            {
                var slot = data.Random.ArrayElement(live.Where(s => s != anchor.Slot).ToArray());
                Assert.True(await gateway.Rooms.LeaveAsync(room, slot));
                live.Remove(slot);
            }
            else
            {
                var joined = await gateway.JoinAsync(room, data.Member());
                Assert.Equal(JoinStatus.Joined, joined.Status);
                Assert.InRange(joined.Slot, (ushort)1, ushort.MaxValue);
                Assert.DoesNotContain(joined.Slot, live);
                Assert.Contains(joined.Snapshot!.Members, member => member.Slot == joined.Slot);
                live.Add(joined.Slot);
            }

            var next = await grain.GetStamp();
            Assert.Equal(stamp.Incarnation, next.Incarnation);
            Assert.True(next.Version > stamp.Version, $"version {next.Version} after {stamp.Version}");
            Assert.True(next.Epoch > stamp.Epoch, $"epoch {next.Epoch} after {stamp.Epoch}");
            stamp = next;
        }

        var final = await grain.GetSnapshot();
        Assert.Equal(live.Order(), final.Members.Select(member => member.Slot));

        // Pushes are one-way and may overtake each other: wait for every version, not just the last.
        await Eventually.True(
            () => gateway.EventsOf(room).Count(e => e.Version > first.Version && e.Version <= final.Version) == final.Version - first.Version,
            Patience,
            "the gateway received every change");
        var replayed = RoomRouting.FromSnapshot(first);
        foreach (var roomEvent in gateway.EventsOf(room).Where(e => e.Version > first.Version && e.Version <= final.Version))
        {
            replayed = replayed.Apply(roomEvent);
        }

        Assert.True(Assertions.SameState(replayed, final), "events applied to the first snapshot give the last one");
        await Eventually.True(
            async () => Assertions.SameState(gateway.Rooms.Get(room), await grain.GetSnapshot()),
            Patience,
            "the gateway's table equals the room");
    }

    [Fact]
    public async Task Leave_UnknownSlotOrAnotherGatewaysMember_IsRefused()
    {
        var data = new TestData(409);
        var room = data.RoomName();
        await using var first = await TestGateway.StartAsync(fixture, data.GatewayId());
        await using var second = await TestGateway.StartAsync(fixture, data.GatewayId());
        var joined = await first.JoinAsync(room, data.Member());
        await second.JoinAsync(room, data.Member());

        Assert.False(await second.Rooms.LeaveAsync(room, joined.Slot));
        Assert.False(await first.Rooms.LeaveAsync(room, (ushort)(joined.Slot + 1000)));
        Assert.True(await first.Rooms.LeaveAsync(room, joined.Slot));
        Assert.False(await first.Rooms.LeaveAsync(room, joined.Slot));
    }

    [Fact]
    public async Task TwoHundredConcurrentJoins_AllGetDistinctSlots_NoneLost()
    {
        var data = new TestData(402);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());
        var members = Enumerable.Range(0, 200).Select(_ => data.Member()).ToList();

        var results = await Task.WhenAll(members.Select(member => gateway.JoinAsync(room, member)));

        Assert.All(results, result => Assert.Equal(JoinStatus.Joined, result.Status));
        Assert.Equal(200, results.Select(result => result.Slot).Distinct().Count());
        var snapshot = await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot();
        Assert.Equal(
            members.Select(member => member.Fingerprint).OrderBy(f => f.High).ThenBy(f => f.Low),
            snapshot.Members.Select(member => member.Fingerprint).OrderBy(f => f.High).ThenBy(f => f.Low));
        await Eventually.True(
            () => gateway.Rooms.Get(room)?.Members.Length == 200,
            Patience,
            "the gateway sees all 200 members");
    }

    [Fact]
    public async Task DefaultLimit_RefusesThe1001stMember_UntilSomeoneLeaves()
    {
        Assert.Equal(1000, fixture.Options.MembersPerRoom);
        var data = new TestData(403);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());

        var slots = new List<ushort>();
        foreach (var batch in Enumerable.Range(0, 1000).Chunk(50))
        {
            var results = await Task.WhenAll(batch.Select(_ => gateway.JoinAsync(room, data.Member())));
            Assert.All(results, result => Assert.Equal(JoinStatus.Joined, result.Status));
            slots.AddRange(results.Select(result => result.Slot));
        }

        var refused = await gateway.JoinAsync(room, data.Member());
        Assert.Equal(JoinStatus.RoomFull, refused.Status);
        Assert.Equal(0, refused.Slot);
        Assert.Null(refused.Snapshot);
        Assert.Equal(1000, slots.Distinct().Count());

        Assert.True(await gateway.Rooms.LeaveAsync(room, slots[0]));
        Assert.Equal(JoinStatus.Joined, (await gateway.JoinAsync(room, data.Member())).Status);
    }

    [Fact]
    public async Task BadRequestsAndUnregisteredGateways_AreRefusedWithAStatus()
    {
        var data = new TestData(410);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());

        var tooLong = await gateway.JoinAsync(room, (data.Fingerprint(), new string('a', RoomLimits.MaxAliasLength + 1)));
        Assert.Equal(JoinStatus.Invalid, tooLong.Status);

        var stranger = await fixture.Client.GetGrain<IRoomGrain>(room)
            .Join(new JoinRequest(data.Fingerprint(), data.Alias(), data.GatewayId()));
        Assert.Equal(JoinStatus.GatewayNotRegistered, stranger.Status);

        var badRoom = await fixture.Client.GetGrain<IRoomGrain>("bad\nroom")
            .Join(new JoinRequest(data.Fingerprint(), data.Alias(), gateway.Id));
        Assert.Equal(JoinStatus.Invalid, badRoom.Status);
    }

    [Fact]
    public async Task EmptiedRoom_Deactivates_AndComesBackAsANewIncarnation()
    {
        var data = new TestData(411);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());
        var joined = await gateway.JoinAsync(room, data.Member());
        var incarnation = joined.Snapshot!.Incarnation;

        Assert.True(await gateway.Rooms.LeaveAsync(room, joined.Slot));

        await Eventually.True(
            async () => (await grain.GetStamp()).Incarnation != incarnation,
            Patience,
            "the empty room deactivated");
        Assert.Empty((await grain.GetSnapshot()).Members);
        await Eventually.True(() => gateway.Rooms.Get(room) is null, Patience, "the gateway stopped tracking the room");
    }
}
