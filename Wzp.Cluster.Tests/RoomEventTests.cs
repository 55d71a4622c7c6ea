using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

[Collection(RoomEventsFixture.Collection)]
public sealed class RoomEventTests(RoomEventsFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ScriptedCall_ReceiverGetsEveryEventInOrder_Signed()
    {
        var data = new TestData(1701);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture.Client, fixture.Options, data.GatewayId());
        var (alice, bob, carol) = (data.Member(), data.Member(), data.Member());

        var a = await gateway.JoinAsync(room, alice);
        var b = await gateway.JoinAsync(room, bob);
        var c = await gateway.JoinAsync(room, carol);
        Assert.True(await gateway.Rooms.LeaveAsync(room, b.Slot));
        Assert.True(await gateway.Rooms.KickAsync(room, a.Slot, c.Slot));
        Assert.True(await gateway.Rooms.LeaveAsync(room, a.Slot));

        await Eventually.True(() => fixture.Receiver.Of(room).Count >= 9, Patience, "the receiver got the call's nine events");
        var events = fixture.Receiver.Of(room);
        Assert.Equal(
            [
                "room_started 0",
                $"participant_joined {a.Slot}", $"participant_joined {b.Slot}", $"participant_joined {c.Slot}",
                $"participant_left {b.Slot} left",
                $"participant_kicked {c.Slot}", $"participant_left {c.Slot} kicked",
                $"participant_left {a.Slot} left",
                "room_finished 0",
            ],
            events.Select(e => $"{e.Event} {e.Slot}{(e.Reason is null ? "" : " " + e.Reason)}"));
        Assert.All(events.Zip(events.Skip(1)), pair => Assert.Equal(pair.First.Sequence + 1, pair.Second.Sequence));
        Assert.All(events, AssertSigned);

        var joined = events[1].Json.GetProperty("participant");
        Assert.Equal(alice.Fingerprint.ToString(), joined.GetProperty("fingerprint").GetString());
        Assert.Equal(alice.Alias, joined.GetProperty("alias").GetString());
        Assert.Equal(a.Slot, events[5].Json.GetProperty("by_slot").GetUInt16());
        Assert.Equal(a.Slot, events[6].Json.GetProperty("by_slot").GetUInt16());
        Assert.Equal([1, 1, 2, 3, 2, 1, 1, 0, 0], events.Select(e => e.Json.GetProperty("members").GetInt32()));
        var times = events.Select(e => DateTimeOffset.Parse(e.Json.GetProperty("timestamp").GetString()!, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(times.Order(), times);
        Assert.All(events, e => Assert.Equal(events[0].Json.GetProperty("room_instance").GetString(), e.Json.GetProperty("room_instance").GetString()));
    }

    [Fact]
    public async Task RejoinAndGatewayLoss_LeaveWithReasonsReplacedAndGatewayGone()
    {
        var data = new TestData(1704);
        var room = data.RoomName();
        await using var first = await TestGateway.StartAsync(fixture.Client, fixture.Options, data.GatewayId());
        await using var second = await TestGateway.StartAsync(fixture.Client, fixture.Options, data.GatewayId());
        var (alice, bob) = (data.Member(), data.Member());

        var a = await first.JoinAsync(room, alice);
        var b = await second.JoinAsync(room, bob);
        var again = await first.JoinAsync(room, alice); // the same identity: replaces its former self
        await fixture.Client.GetGrain<IRoomGrain>(room).EvictGateway(second.Id, Guid.Empty);

        await Eventually.True(() => fixture.Receiver.Of(room).Count >= 6, Patience, "the receiver got the six events");
        var events = fixture.Receiver.Of(room);
        Assert.Equal(
            [
                "room_started 0", $"participant_joined {a.Slot}", $"participant_joined {b.Slot}",
                $"participant_left {a.Slot} replaced", $"participant_joined {again.Slot}", $"participant_left {b.Slot} gateway_gone",
            ],
            events.Select(e => $"{e.Event} {e.Slot}{(e.Reason is null ? "" : " " + e.Reason)}"));
        Assert.All(events.Zip(events.Skip(1)), pair => Assert.Equal(pair.First.Sequence + 1, pair.Second.Sequence));
        Assert.Equal(bob.Fingerprint.ToString(), events[5].Json.GetProperty("participant").GetProperty("fingerprint").GetString());
    }

    [Fact]
    public async Task ReceiverDownForAWhile_GetsTheEventsAfterItRecovers_InOrder()
    {
        var data = new TestData(1702);
        var room = data.RoomName();
        var dispatcher = fixture.Client.GetGrain<IRoomWebhookGrain>(RoomActivity.StreamKey(room));
        await using var gateway = await TestGateway.StartAsync(fixture.Client, fixture.Options, data.GatewayId());
        await fixture.Receiver.DownAsync();
        try
        {
            var a = await gateway.JoinAsync(room, data.Member());
            var b = await gateway.JoinAsync(room, data.Member());
            Assert.True(await gateway.Rooms.LeaveAsync(room, b.Slot));

            // The dispatcher holds all four events and has been refused at least twice (a retry happened).
            await Eventually.True(
                async () => await dispatcher.GetStatus() is { Pending: 4, FailedAttempts: >= 2 },
                Patience,
                "the dispatcher retries against the dead receiver with every event held");
            Assert.Empty(fixture.Receiver.Of(room));

            await fixture.Receiver.UpAsync();
            await Eventually.True(() => fixture.Receiver.Of(room).Count >= 4, Patience, "the recovered receiver got the held events");
            Assert.True(await gateway.Rooms.LeaveAsync(room, a.Slot));
            await Eventually.True(() => fixture.Receiver.Of(room).Count >= 6, Patience, "and the later ones");

            var events = fixture.Receiver.Of(room);
            Assert.Equal(
                [
                    "room_started 0", $"participant_joined {a.Slot}", $"participant_joined {b.Slot}",
                    $"participant_left {b.Slot}", $"participant_left {a.Slot}", "room_finished 0",
                ],
                events.Select(e => $"{e.Event} {e.Slot}"));
            Assert.All(events.Zip(events.Skip(1)), pair => Assert.Equal(pair.First.Sequence + 1, pair.Second.Sequence));
            Assert.All(events, AssertSigned);
            Assert.Equal(0, (await dispatcher.GetStatus()).Dropped);
        }
        finally
        {
            if (!fixture.Receiver.IsUp)
            {
                // Up again for the other tests, whatever happened here.
                await fixture.Receiver.UpAsync();
            }
        }
    }

    [Fact]
    public async Task StalledReceiver_NeverDelaysJoins()
    {
        var data = new TestData(1703);
        var room = data.RoomName();
        await using var gateway = await TestGateway.StartAsync(fixture.Client, fixture.Options, data.GatewayId());
        fixture.Receiver.Stall();
        try
        {
            var first = await gateway.JoinAsync(room, data.Member());
            await Eventually.True(() => fixture.Receiver.Held >= 1, Patience, "the receiver holds the room's first event");

            // Every join completes while the receiver still holds the room's first event unanswered.
            var slots = new List<ushort> { first.Slot };
            for (var i = 0; i < 10; i++)
            {
                var joined = await gateway.JoinAsync(room, data.Member());
                Assert.Equal(JoinStatus.Joined, joined.Status);
                slots.Add(joined.Slot);
            }

            Assert.Empty(fixture.Receiver.Of(room));
            Assert.Equal(1, fixture.Receiver.Held);

            fixture.Receiver.Release();
            await Eventually.True(() => fixture.Receiver.Of(room).Count >= 12, Patience, "the receiver got every event once released");
            var events = fixture.Receiver.Of(room);
            Assert.Equal(["room_started 0", .. slots.Select(slot => $"participant_joined {slot}")], events.Select(e => $"{e.Event} {e.Slot}"));
            Assert.All(events.Zip(events.Skip(1)), pair => Assert.Equal(pair.First.Sequence + 1, pair.Second.Sequence));
        }
        finally
        {
            fixture.Receiver.Release();
        }
    }

    private void AssertSigned(Received received)
    {
        Assert.StartsWith("application/json", received.ContentType, StringComparison.Ordinal);
        // Recomputed here from the documented rule, independently of the relay's code.
        var signed = Encoding.ASCII.GetBytes(received.Timestamp + ".").Concat(received.Body).ToArray();
        var expected = "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(fixture.Secret, signed));
        Assert.Equal(expected, received.Signature);
        var sentAt = DateTimeOffset.FromUnixTimeSeconds(long.Parse(received.Timestamp, CultureInfo.InvariantCulture));
        Assert.InRange(sentAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));
    }
}
