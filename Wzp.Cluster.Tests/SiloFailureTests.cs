using Orleans.Runtime;
using Orleans.TestingHost;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

[Collection(ClusterFixture.Collection)]
public sealed class SiloFailureTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task KillingTheSiloHostingARoom_TheRoomComesBackElsewhereWithTheSameMembers()
    {
        var data = new TestData(408);
        // Gateways first, so the directory is active on one of the fixture's silos before the doomed one starts.
        await using var first = await TestGateway.StartAsync(fixture, data.GatewayId());
        await using var second = await TestGateway.StartAsync(fixture, data.GatewayId());
        var doomed = await fixture.Cluster.StartAdditionalSiloAsync();
        await fixture.Cluster.WaitForLivenessToStabilizeAsync();

        var (room, grain) = await PlaceRoomOnAsync(doomed, first, data);
        await second.JoinAsync(room, data.Member());
        await first.JoinAsync(room, data.Member());
        await second.JoinAsync(room, data.Member());
        var before = await grain.GetSnapshot();
        Assert.Equal(4, before.Members.Length);

        await fixture.Cluster.KillSiloAsync(doomed);

        // Nothing but the gateways' own loops (stamp polling, restore invitations) brings the room back.
        await Eventually.True(
            async () =>
            {
                var after = await grain.GetSnapshot();
                return after.Incarnation != before.Incarnation && after.Members.SequenceEqual(before.Members);
            },
            Patience,
            "the room re-activated with the same members, slots, aliases and gateways");
        var restored = await grain.GetSnapshot();
        Assert.True(restored.Version > before.Version, "versions never go backwards across the failure");
        Assert.True(restored.Epoch >= before.Epoch, "epochs never go backwards across the failure");
        var host = await fixture.Client.GetGrain<IManagementGrain>(0).GetActivationAddress(grain);
        Assert.NotEqual(doomed.SiloAddress, host);

        foreach (var gateway in new[] { first, second })
        {
            await Eventually.True(
                async () => Assertions.SameState(gateway.Rooms.Get(room), await grain.GetSnapshot()),
                Patience,
                $"{gateway.Id} follows the new incarnation");
        }
    }

    [Fact]
    public async Task JoinThroughAGatewayThatHasNotRestoredYet_ItsMembersKeepTheirSlots()
    {
        var data = new TestData(409);
        await using var first = await TestGateway.StartAsync(fixture, data.GatewayId());
        // The second gateway neither polls, nor answers restore invitations, nor hears pushes (a push of the new
        // incarnation would make it restore): only the join itself can make it restore its member before the
        // newcomer it brings gets a slot.
        var second = new ManualGateway(fixture.Client, data.GatewayId()) { IgnoresRestoreInvitations = true };
        await second.RegisterAsync();
        await using var heartbeats = second.StartHeartbeats(fixture.Options.GatewayHeartbeatPeriod);
        var doomed = await fixture.Cluster.StartAdditionalSiloAsync();
        await fixture.Cluster.WaitForLivenessToStabilizeAsync();

        var (room, grain) = await PlaceRoomOnAsync(doomed, first, data);
        var resident = await second.Rooms.JoinAsync(room, data.Fingerprint(), "resident");
        Assert.Equal(JoinStatus.Joined, resident.Status);
        var before = await grain.GetSnapshot();
        second.Drop = _ => true;

        await fixture.Cluster.KillSiloAsync(doomed);

        JoinResult? newcomer = null;
        await Eventually.True(
            async () =>
            {
                try
                {
                    newcomer = await second.Rooms.JoinAsync(room, data.Fingerprint(), "newcomer");
                    return true;
                }
                catch (Exception e) when (e is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException)
                {
                    return false; // the dead silo is not declared dead yet
                }
            },
            Patience,
            "a newcomer joins through the second gateway after the room's silo died");
        Assert.Equal(JoinStatus.Joined, newcomer!.Status);
        Assert.DoesNotContain(newcomer.Slot, before.Members.Select(m => m.Slot));

        var after = await grain.GetSnapshot();
        Assert.NotEqual(before.Incarnation, after.Incarnation);
        Assert.Contains(before.Members.Single(m => m.Slot == resident.Slot), after.Members);
        await Eventually.True(
            async () => (await grain.GetSnapshot()).Members.Count(m => before.Members.Contains(m)) == before.Members.Length,
            Patience,
            "the first gateway restored its member too");
        var seen = second.Rooms.Get(room);
        Assert.NotNull(seen);
        Assert.Contains(seen.Members, m => m.Slot == resident.Slot && m.Alias == "resident");
        Assert.Contains(seen.Members, m => m.Slot == newcomer.Slot && m.Alias == "newcomer");
    }

    // Placement is the runtime's choice, so try fresh rooms until one lands on the wanted silo; each try
    // leaves again, which empties and deactivates the room.
    private async Task<(string Room, IRoomGrain Grain)> PlaceRoomOnAsync(InProcessSiloHandle silo, TestGateway gateway, TestData data)
    {
        var management = fixture.Client.GetGrain<IManagementGrain>(0);
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var room = data.RoomName();
            var grain = fixture.Client.GetGrain<IRoomGrain>(room);
            var joined = await gateway.JoinAsync(room, data.Member());
            if (silo.SiloAddress.Equals(await management.GetActivationAddress(grain)))
            {
                return (room, grain);
            }

            await gateway.Rooms.LeaveAsync(room, joined.Slot);
        }

        throw new InvalidOperationException("No room was placed on the new silo in 100 attempts.");
    }
}
