using Wzp.Client;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A room at the default member limit (1,000) whose aliases are 64 characters the default JSON encoder escapes:
/// its member lists are several control frames long, and a real gateway must still deliver them whole.
/// Most members are joined through a stand-in gateway, so the test needs two real clients, not a thousand.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class LargeRoomTests(ClusterFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    /// <summary>64 characters, each six bytes under the default JSON encoder; two of them JSON must escape anyway.</summary>
    private static string EscapedAlias(int i) => string.Concat(Enumerable.Range(0, 64).Select(k => "é\"<日ß>&\\"[(i + k) % 8]));

    [Fact]
    public async Task RoomAtTheMemberLimit_WithEscapedAliases_NewcomerGetsEveryone_AndMembersKeepReceivingUpdates()
    {
        var data = new TestData(1201);
        var room = data.RoomName();
        var limit = fixture.Options.MembersPerRoom;
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        await using var standIn = await TestGateway.StartAsync(fixture, data.GatewayId());

        var first = await harness.JoinAsync(gateway, room, EscapedAlias(0));

        // Everyone but the first member and the newcomer, through the stand-in, a few joins at a time.
        var started = DateTime.UtcNow;
        var others = Enumerable.Range(1, limit - 2).Select(i => (Fingerprint: data.Fingerprint(), Alias: EscapedAlias(i))).ToList();
        var slots = new System.Collections.Concurrent.ConcurrentBag<ushort>();
        await Parallel.ForEachAsync(others, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (member, _) =>
        {
            var result = await standIn.JoinAsync(room, member);
            Assert.Equal(JoinStatus.Joined, result.Status);
            slots.Add(result.Slot);
        });
        output.WriteLine($"{others.Count} stand-in joins in {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
        await Eventually.True(() => first.Members.Count == limit - 1, Patience, $"the first member hears all {limit - 2} joins");

        var newcomer = await harness.JoinAsync(gateway, room, EscapedAlias(limit));
        Assert.Equal(limit, newcomer.Members.Count);
        Assert.Equal(ClientState.Joined, newcomer.State);
        var expected = others.Select(o => o.Alias).Append(EscapedAlias(0)).Append(EscapedAlias(limit)).Order(StringComparer.Ordinal);
        Assert.Equal(expected, newcomer.Members.Select(m => m.Alias).Order(StringComparer.Ordinal));
        await Eventually.True(() => first.Members.Count == limit, Patience, "the first member hears the newcomer");

        // Updates keep flowing both ways at the limit: a leave reaches both real members.
        var leaving = slots.First();
        Assert.True(await standIn.Rooms.LeaveAsync(room, leaving));
        await Eventually.True(() => first.Members.All(m => m.Slot != leaving) && newcomer.Members.All(m => m.Slot != leaving), Patience,
            "both real members hear the leave");
        Assert.Equal(ClientState.Joined, first.State);
        Assert.Equal(0, gateway.Counters.LoopFailures(Gateway.GatewayLoop.ControlWriter));

        // And media still flows between them.
        var listening = Speech.ListenAsync(newcomer, 20, TimeSpan.FromSeconds(30));
        await Speech.TalkAsync(first, "first", 20);
        Assert.Equal(20, (await listening).Count(f => f.Source == first.Slot));
    }

    [Fact]
    public async Task RoomAtTheMemberLimit_AfterTheSiloHostingItDies_IsRestored_AndNewcomersStillGetEveryone()
    {
        var data = new TestData(1202);
        var limit = fixture.Options.MembersPerRoom;
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        await using var standIn = await TestGateway.StartAsync(fixture, data.GatewayId());
        var doomed = await fixture.Cluster.StartAdditionalSiloAsync();
        await fixture.Cluster.WaitForLivenessToStabilizeAsync();

        // A room placed on the doomed silo (placement is the runtime's choice: try fresh rooms until one lands there).
        var management = fixture.Client.GetGrain<Orleans.Runtime.IManagementGrain>(0);
        string? room = null;
        for (var attempt = 0; attempt < 100 && room is null; attempt++)
        {
            var candidate = data.RoomName();
            var anchor = await standIn.JoinAsync(candidate, (data.Fingerprint(), EscapedAlias(1)));
            if (doomed.SiloAddress.Equals(await management.GetActivationAddress(fixture.Client.GetGrain<IRoomGrain>(candidate)))) room = candidate;
            else await standIn.Rooms.LeaveAsync(candidate, anchor.Slot);
        }
        Assert.NotNull(room);
        var first = await harness.JoinAsync(gateway, room, EscapedAlias(0));
        await Parallel.ForEachAsync(Enumerable.Range(2, limit - 3), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            Assert.Equal(JoinStatus.Joined, (await standIn.JoinAsync(room, (data.Fingerprint(), EscapedAlias(i)))).Status));
        await Eventually.True(() => first.Members.Count == limit - 1, Patience, "the first member hears every join");
        var grain = fixture.Client.GetGrain<IRoomGrain>(room);
        var before = await grain.GetSnapshot();

        await fixture.Cluster.KillSiloAsync(doomed);
        await Eventually.True(async () => (await grain.GetSnapshot()).Incarnation != before.Incarnation, Patience, "the room re-activated");

        var newcomer = await harness.JoinAsync(gateway, room, EscapedAlias(limit));
        Assert.Equal(limit, newcomer.Members.Count);
        await Eventually.True(() => first.Members.Count == limit, Patience, "the first member hears the newcomer after the restore");
        Assert.Equal(ClientState.Joined, first.State);
        Assert.Equal(0, gateway.Counters.LoopFailures(Gateway.GatewayLoop.ControlWriter));
        var listening = Speech.ListenAsync(first, 20, TimeSpan.FromSeconds(30));
        await Speech.TalkAsync(newcomer, "newcomer", 20);
        Assert.Equal(20, (await listening).Count(f => f.Source == newcomer.Slot));
    }

    [Fact]
    public async Task ControlWriterFailure_IsCountedAndClosesTheConnectionWithAnError_OthersCarryOn()
    {
        var room = $"room-{Guid.NewGuid():N}";
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var victim = await harness.JoinAsync(gateway, room, "victim");
        var other = await harness.JoinAsync(gateway, room, "other");
        await Eventually.True(() => victim.Others.Count == 1 && other.Others.Count == 1, Patience, "both joined");

        // A message no frame can hold, queued for one member: its writer must not die quietly.
        var member = gateway.MembersOf(room).Single(m => m.Slot == victim.Slot);
        Assert.True(member.Control.TrySend(new Protocol.Error(Protocol.ErrorCodes.Internal, new string('x', Protocol.ControlCodec.MaxFrameLength))));
        var e = await Assert.ThrowsAsync<GatewayErrorException>(() => victim.Completion.WaitAsync(Patience));
        Assert.Equal(Protocol.ErrorCodes.Internal, e.Code);
        Assert.Equal(1, gateway.Counters.LoopFailures(Gateway.GatewayLoop.ControlWriter));

        // The gateway and the other member carry on: the victim's departure reaches it, and a newcomer joins.
        await Eventually.True(() => other.Others.Count == 0, Patience, "the other member hears the victim leave");
        var newcomer = await harness.JoinAsync(gateway, room, "newcomer");
        await Eventually.True(() => other.Others.Count == 1, Patience, "the other member hears the newcomer");
        var listening = Speech.ListenAsync(newcomer, 20, TimeSpan.FromSeconds(30));
        await Speech.TalkAsync(other, "other", 20);
        Assert.Equal(20, (await listening).Count(f => f.Source == other.Slot));
    }
}
