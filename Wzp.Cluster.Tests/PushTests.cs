using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Wzp.Grains;
using Wzp.Grains.Routing;

namespace Wzp.Cluster.Tests;

[Collection(ClusterFixture.Collection)]
public sealed class PushTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task EveryGatewayHostingMembers_ReceivesEveryChange()
    {
        var data = new TestData(404);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var first = await TestGateway.StartAsync(fixture, data.GatewayId());
        await using var second = await TestGateway.StartAsync(fixture, data.GatewayId());
        var gateways = new[] { first, second };

        await first.JoinAsync(room, data.Member());
        var start = (await second.JoinAsync(room, data.Member())).Snapshot!.Version;
        var own = new Dictionary<TestGateway, List<ushort>> { [first] = [], [second] = [] };
        for (var step = 0; step < 40; step++)
        {
            var gateway = data.Random.ArrayElement(gateways);
            if (own[gateway].Count > 0 && data.Random.Bool(0.4f))
            {
                var slot = data.Random.ListItem(own[gateway]);
                Assert.True(await gateway.Rooms.LeaveAsync(room, slot));
                own[gateway].Remove(slot);
            }
            else
            {
                own[gateway].Add((await gateway.JoinAsync(room, data.Member())).Slot);
            }
        }

        var final = await grain.GetSnapshot();
        foreach (var gateway in gateways)
        {
            // Pushes are one-way and may overtake each other, so wait for the whole range rather than the last one.
            var expected = Enumerable.Range(0, (int)(final.Version - start + 1)).Select(i => start + i).ToList();
            await Eventually.True(
                () => expected.All(gateway.EventsOf(room).Select(e => e.Version).ToHashSet().Contains),
                Patience,
                $"{gateway.Id} received every change from version {start} to {final.Version}");
            await Eventually.True(
                async () => Assertions.SameState(gateway.Rooms.Get(room), await grain.GetSnapshot()),
                Patience,
                $"{gateway.Id}'s table equals the room");
        }
    }

    [Fact]
    public async Task GatewayHostedInsideASilo_ReceivesPushesLikeAClientGateway()
    {
        // The all-in-one mode: the gateway agent uses the silo's own grain factory, not a client's.
        var data = new TestData(418);
        var room = data.RoomName();
        var siloGrains = fixture.Cluster.Silos[0].ServiceProvider.GetRequiredService<IGrainFactory>();
        await using var inSilo = new GatewayAgent(
            siloGrains,
            new GatewayIdentity(data.GatewayId(), "127.0.0.1:0", []),
            Options.Create(fixture.Options));
        var received = new ConcurrentQueue<RoomEvent>();
        inSilo.RoomEventReceived += received.Enqueue;
        inSilo.Rooms.Changed += change =>
        {
            if (change.Current is { } current)
            {
                _ = inSilo.Rooms.ReportRekeyCompleteAsync(change.Room, current.Epoch);
            }
        };
        await inSilo.StartAsync(CancellationToken.None);
        await using var outside = await TestGateway.StartAsync(fixture, data.GatewayId());

        Assert.Equal(JoinStatus.Joined, (await inSilo.Rooms.JoinAsync(room, data.Fingerprint(), data.Alias())).Status);
        var joined = await outside.JoinAsync(room, data.Member());

        await Eventually.True(
            () => inSilo.Rooms.Get(room)?.BySlot.ContainsKey(joined.Slot) == true,
            Patience,
            "the in-silo gateway saw the outside member join");
        Assert.Contains(received, e => e.Joined.Any(member => member.Slot == joined.Slot));
    }

    [Fact]
    public async Task RoomWhosePollHangs_DelaysOnlyItself_TheOtherRoomsArePolledMeanwhile()
    {
        var data = new TestData(418);
        var slow = "slow-" + data.RoomName();
        var fast = data.RoomName();
        await using var source = await TestGateway.StartAsync(fixture, data.GatewayId());
        var lossy = new ManualGateway(fixture.Client, data.GatewayId());
        await lossy.RegisterAsync();
        await using var heartbeats = lossy.StartHeartbeats(fixture.Options.GatewayHeartbeatPeriod);
        Assert.Equal(JoinStatus.Joined, (await lossy.Rooms.JoinAsync(slow, data.Fingerprint(), data.Alias())).Status);
        Assert.Equal(JoinStatus.Joined, (await lossy.Rooms.JoinAsync(fast, data.Fingerprint(), data.Alias())).Status);
        lossy.Drop = _ => true; // only polls can tell this gateway of changes

        // The slow room's stamp answers after SlowRoomFilter.Delay (its silo is dying); the poll waits PollTimeout.
        var first = lossy.Rooms.RefreshAsync();
        var last = await source.JoinAsync(fast, data.Member());
        // Polls as the agent does, every heartbeat: the fast room catches up while the slow one's poll still waits.
        await Eventually.True(async () =>
        {
            await lossy.Rooms.RefreshAsync();
            return lossy.Rooms.Get(fast)!.BySlot.ContainsKey(last.Slot);
        }, TimeSpan.FromSeconds(3), "the fast room was polled again and is current");

        Assert.False(first.IsCompleted, "the slow room's poll is still waiting, and held no other room up");
        await first;
    }

    [Fact]
    public async Task DroppedPushes_TheTableStillConvergesThroughSnapshots()
    {
        var data = new TestData(405);
        var room = data.RoomName();
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        await using var source = await TestGateway.StartAsync(fixture, data.GatewayId());
        var lossy = new ManualGateway(fixture.Client, data.GatewayId());
        await lossy.RegisterAsync();
        await using var heartbeats = lossy.StartHeartbeats(fixture.Options.GatewayHeartbeatPeriod);
        var start = (await lossy.Rooms.JoinAsync(room, data.Fingerprint(), data.Alias())).Snapshot!.Version;

        // Which pushes are lost is decided by their version, not by when they arrive (pushes are one-way and
        // may land after the churn below has finished): a seeded 40 % of the churn's versions.
        const int Churn = 40;
        var lost = Enumerable.Range(1, Churn).Where(_ => data.Random.Bool(0.4f)).Select(offset => start + offset).ToHashSet();
        Assert.NotEmpty(lost);
        lossy.Drop = e => lost.Contains(e.Version);
        var own = new List<ushort>();
        for (var step = 0; step < Churn; step++)
        {
            if (own.Count > 0 && data.Random.Bool(0.3f))
            {
                var slot = data.Random.ListItem(own);
                Assert.True(await source.Rooms.LeaveAsync(room, slot));
                own.Remove(slot);
            }
            else
            {
                own.Add((await source.JoinAsync(room, data.Member())).Slot);
            }
        }

        // Later changes arrive intact: the first one after a lost version makes the table fetch a snapshot.
        await source.JoinAsync(room, data.Member());
        await Eventually.True(
            async () => Assertions.SameState(lossy.Rooms.Get(room), await grain.GetSnapshot()),
            Patience,
            "the lossy table converged after the next push");
        await Eventually.True(() => lossy.Dropped > 0, Patience, "pushes were dropped on the way");

        // The last change lost with nothing after it: polling the room's stamp repairs the table.
        lossy.Drop = _ => true;
        var last = await source.JoinAsync(room, data.Member());
        Assert.False(lossy.Rooms.Get(room)!.BySlot.ContainsKey(last.Slot), "the push was dropped, so the table is stale");
        await lossy.Rooms.RefreshAsync();
        var routing = lossy.Rooms.Get(room);
        Assert.NotNull(routing);
        Assert.True(routing.BySlot.ContainsKey(last.Slot), "the refreshed table has the member whose push was dropped");
        Assert.True(routing.Version >= last.Snapshot!.Version);
    }
}
