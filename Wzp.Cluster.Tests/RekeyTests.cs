using Wzp.Grains;

namespace Wzp.Cluster.Tests;

[Collection(ClusterFixture.Collection)]
public sealed class RekeyTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task GatewayThatNeverReportsTheRekey_HasItsMembersEvicted_ReportingGatewaysStay()
    {
        var data = new TestData(406);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var reporting = await TestGateway.StartAsync(fixture, data.GatewayId());
        await using var stuck = await TestGateway.StartAsync(fixture, data.GatewayId());
        stuck.ReportsRekeys = false;

        var kept = await reporting.JoinAsync(room, data.Member());
        var stuckSlots = new[]
        {
            (await stuck.JoinAsync(room, data.Member())).Slot,
            (await stuck.JoinAsync(room, data.Member())).Slot,
        };
        var epochBefore = (await grain.GetStamp()).Epoch;

        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.All(member => member.GatewayId != stuck.Id),
            Patience,
            "the stuck gateway's members were evicted");

        var snapshot = await grain.GetSnapshot();
        Assert.Contains(snapshot.Members, member => member.Slot == kept.Slot && member.GatewayId == reporting.Id);
        Assert.True(snapshot.Epoch > epochBefore, "the eviction advanced the epoch");
        await Eventually.True(
            () => reporting.EventsOf(room).Any(e => e.Reason == RoomChangeReason.RekeyTimeout && e.Left.Order().SequenceEqual(stuckSlots.Order())),
            Patience,
            "the reporting gateway heard of the eviction");
        await Eventually.True(() => stuck.Rooms.Get(room) is null, Patience, "the stuck gateway learned it lost the room");
    }

    [Fact]
    public async Task EpochTimer_AdvancesTheEpochWithoutMembershipChanges()
    {
        var data = new TestData(412);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture, data.GatewayId());
        var joined = await gateway.JoinAsync(room, data.Member());

        await Eventually.True(
            () => gateway.EventsOf(room).Any(e => e.Reason == RoomChangeReason.PeriodicRekey && e.Epoch > joined.Epoch),
            fixture.Options.EpochPeriod * 5,
            "a periodic rekey was pushed");
        var periodic = gateway.EventsOf(room).First(e => e.Reason == RoomChangeReason.PeriodicRekey);
        Assert.Empty(periodic.Joined);
        Assert.Empty(periodic.Left);
        Assert.Single((await fixture.Client.GetGrain<IRoomGrain>(room).GetSnapshot()).Members);
    }
}
