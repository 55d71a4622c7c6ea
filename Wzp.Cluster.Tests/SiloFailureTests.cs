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
