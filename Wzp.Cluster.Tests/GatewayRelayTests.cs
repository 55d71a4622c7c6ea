using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;

namespace Wzp.Cluster.Tests;

/// <summary>
/// The relay path end to end: TestingHost silos, in-process gateways, real clients over QUIC on loopback.
/// Every recipient must decrypt every frame of every other member with its own hop keys, byte for byte.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayRelayTests(ClusterFixture fixture)
{
    private const int Frames = 150;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static string NewRoom() => $"room-{Guid.NewGuid():N}";

    private static Task AllSeeEachOther(IReadOnlyList<WzpClient> clients) =>
        Eventually.True(() => Task.FromResult(clients.All(c => c.Others.Count == clients.Count - 1)), Patience, "every member sees every other");

    /// <summary>Each client talks and listens at once; each must hear exactly the others' frames, intact.</summary>
    private static async Task AssertEveryoneHearsEveryone(IReadOnlyList<WzpClient> clients, IReadOnlyList<string> names)
    {
        var listening = clients.Select(c => Speech.ListenAsync(c, Frames * (clients.Count - 1), Patience)).ToArray();
        await Task.WhenAll(clients.Select((c, i) => Speech.TalkAsync(c, names[i], Frames)));
        var heard = await Task.WhenAll(listening);
        for (var i = 0; i < clients.Count; i++)
        {
            Assert.DoesNotContain(heard[i], f => f.Source == clients[i].Slot); // never its own media
            for (var j = 0; j < clients.Count; j++)
            {
                if (i == j) continue;
                var fromJ = heard[i].Where(f => f.Source == clients[j].Slot).OrderBy(f => f.Header.Sequence).ToList();
                Assert.True(Frames == fromJ.Count, $"{names[i]} heard {fromJ.Count} of {Frames} frames from {names[j]}");
                for (var n = 0; n < Frames; n++)
                {
                    Assert.Equal(Speech.Header(n), fromJ[n].Header);
                    Assert.Equal(Speech.Payload(names[j], n), fromJ[n].Payload.ToArray());
                }
            }
        }
    }

    [Fact]
    public async Task MultiClientRelayPath_OneGateway_BothDirectionsByteIdentical()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = NewRoom();
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await AllSeeEachOther([alice, bob]);
        await AssertEveryoneHearsEveryone([alice, bob], ["alice", "bob"]);
        Assert.True(gateway.Counters.Forwarded >= 2 * Frames);
    }

    [Fact]
    public async Task MultiClientRelayPath_TwoGateways_BothDirectionsByteIdentical()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync();
        var g2 = await harness.StartGatewayAsync();
        var room = NewRoom();
        var alice = await harness.JoinAsync(g1, room, "alice");
        var bob = await harness.JoinAsync(g2, room, "bob");
        await AllSeeEachOther([alice, bob]);
        await Eventually.True(() => Task.FromResult(g1.HasLinkTo(g2.Options.GatewayId) && g2.HasLinkTo(g1.Options.GatewayId)),
            Patience, "the two gateways have a link");
        await AssertEveryoneHearsEveryone([alice, bob], ["alice", "bob"]);
        Assert.True(g1.Counters.LinkForwarded >= Frames);
        Assert.True(g2.Counters.LinkForwarded >= Frames);
    }

    [Fact]
    public async Task FiveMembersOnThreeGateways_EachHearsTheOtherFourWithTheirSlots()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateways = new[] { await harness.StartGatewayAsync(), await harness.StartGatewayAsync(), await harness.StartGatewayAsync() };
        var room = NewRoom();
        var names = new[] { "ann", "ben", "cat", "dan", "eve" };
        var clients = new List<WzpClient>();
        for (var i = 0; i < names.Length; i++) clients.Add(await harness.JoinAsync(gateways[i % 3], room, names[i]));
        await AllSeeEachOther(clients);
        await Eventually.True(() => Task.FromResult(gateways.All(g => gateways.Where(o => o != g).All(o => g.HasLinkTo(o.Options.GatewayId)))),
            Patience, "every pair of gateways has a link");
        Assert.Equal(names.Length, clients.Select(c => c.Slot).Distinct().Count());
        await AssertEveryoneHearsEveryone(clients, names);
    }

    [Fact]
    public async Task JoinAndLeaveMidCall_RemainingMembersRekeyWithoutLosingAFrame()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = NewRoom();
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await AllSeeEachOther([alice, bob]);
        var aliceEpoch = alice.GetStatistics().Epoch;
        var bobEpoch = bob.GetStatistics().Epoch;

        // Bob listens while Alice talks throughout a join and a leave.
        var listening = Speech.ListenAsync(bob, 3 * Frames, Patience);
        var talking = Speech.TalkAsync(alice, "alice", 3 * Frames);
        var carol = await harness.JoinAsync(gateway, room, "carol");
        await Eventually.True(() => Task.FromResult(alice.GetStatistics().Epoch > aliceEpoch && bob.GetStatistics().Epoch > bobEpoch),
            Patience, "alice's and bob's hop epochs advance after carol joins");
        var afterJoin = (alice.GetStatistics().Epoch, bob.GetStatistics().Epoch);
        await carol.LeaveAsync();
        await Eventually.True(() => Task.FromResult(alice.GetStatistics().Epoch > afterJoin.Item1 && bob.GetStatistics().Epoch > afterJoin.Item2),
            Patience, "alice's and bob's hop epochs advance again after carol leaves");
        await talking;
        var heard = await listening;
        var sequences = heard.Where(f => f.Source == alice.Slot).Select(f => (int)f.Header.Sequence).Order().ToList();
        Assert.Equal(Enumerable.Range(0, 3 * Frames), sequences); // not one frame lost across two rekeys
    }

    [Fact]
    public async Task GarbageAndReplays_AreCountedDrops_AndTheRoomKeepsTalking()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = NewRoom();
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await AllSeeEachOther([alice, bob]);

        // An intruder completes QUIC but never the Wzp handshake, then sprays datagrams.
        await using (var intruder = await Quic.QuicClient.ConnectAsync("127.0.0.1", gateway.ClientEndPoint.Port, new Quic.QuicClientOptions()))
        {
            var random = new Random(1);
            var junk = new byte[200];
            for (var i = 0; i < 500; i++)
            {
                random.NextBytes(junk.AsSpan(0, random.Next(1, junk.Length)));
                intruder.SendDatagram(junk.AsSpan(0, random.Next(1, junk.Length)));
            }
            await Eventually.True(() => Task.FromResult(gateway.Counters.Drops(GatewayDrop.UnknownSession) > 0), Patience, "intruder datagrams are counted");
        }
        await AssertEveryoneHearsEveryone([alice, bob], ["alice", "bob"]);
    }
}

/// <summary>What the gateway does with hostile or departed clients, seen from raw clients that keep every key.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayAdversaryTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static byte[] Payload(int n) => System.Text.Encoding.ASCII.GetBytes($"frame-{n:D4}-".PadRight(80, '.'));

    private static async Task<List<byte[]>> OpenAll(RawClient client, int expected, List<byte[]>? raw = null)
    {
        var opened = new List<byte[]>();
        var plaintext = new byte[MediaDatagram.MaxSize];
        await Eventually.True(() =>
        {
            while (client.Captured.TryDequeue(out var datagram))
            {
                raw?.Add(datagram);
                if (MediaDatagram.Open(client.Keys, datagram, plaintext, out var length, out _) == DropReason.None) opened.Add(plaintext[..length]);
            }
            return Task.FromResult(opened.Count >= expected);
        }, Patience, $"{expected} datagrams arrive and open");
        return opened;
    }

    [Fact]
    public async Task ReplayedAndForgedUplinks_AreCountedDrops_AndForwardedOnlyOnce()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var clusterKey = gateway.Keys.Credential.ClusterKey;
        await using var sender = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        await using var listener = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        // Both hold the keys of the epoch after the second join.
        await Eventually.True(() => Task.FromResult(sender.Keys.Current.Number >= 1 && sender.Keys.Next is null), Patience, "the sender finished its rekey");

        var genuine = sender.Seal(Speech.Header(1), Payload(1));
        var forged = genuine.ToArray();
        forged[^1] ^= 0x01;
        var replays = gateway.Counters.Drops(GatewayDrop.Replay);
        var forgeries = gateway.Counters.Drops(GatewayDrop.Authentication);
        Assert.True(sender.Send(genuine));
        Assert.True(sender.Send(genuine));
        Assert.True(sender.Send(forged));
        Assert.True(sender.Send(sender.Seal(Speech.Header(2), Payload(2))));

        var opened = await OpenAll(listener, 2);
        await Eventually.True(() => Task.FromResult(gateway.Counters.Drops(GatewayDrop.Replay) > replays && gateway.Counters.Drops(GatewayDrop.Authentication) > forgeries),
            Patience, "the replay and the forgery are counted");
        Assert.Equal([Payload(1), Payload(2)], opened);
        Assert.Empty(listener.Captured); // nothing else was forwarded
    }

    [Fact]
    public async Task DepartedMember_HoldingEveryKeyItHad_OpensNothingSentAfterItLeft()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var clusterKey = gateway.Keys.Credential.ClusterKey;
        await using var speaker = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        await using var listener = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        var departed = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        await departed.LeaveAsync();
        await Eventually.True(() => Task.FromResult(gateway.LocalMembers.GetValueOrDefault(room) == 2), Patience, "the departed member is gone");
        var listenerEpoch = listener.Keys.Current.Number;
        await Eventually.True(() => Task.FromResult(listener.Keys.Current.Number > listenerEpoch), Patience, "the listener ratchets after the leave");
        while (listener.Captured.TryDequeue(out _)) { }
        var capturedByDeparted = departed.Captured.Count;

        // Everything on the wire after the leave: the speaker's uplink and the listener's downlink.
        var captured = new List<byte[]>();
        for (var i = 0; i < 20; i++)
        {
            var uplink = speaker.Seal(Speech.Header(i), Payload(i));
            captured.Add(uplink);
            Assert.True(speaker.Send(uplink));
        }
        var opened = await OpenAll(listener, 20, captured);
        Assert.Equal(20, opened.Count);
        Assert.Equal(40, captured.Count);

        // The departed member kept every chain key it ever held; none of them opens any of it,
        // and the gateway sent the departed member nothing more.
        var plaintext = new byte[MediaDatagram.MaxSize];
        Assert.Equal(capturedByDeparted, departed.Captured.Count);
        foreach (var chain in departed.Chains)
        {
            foreach (var label in new[] { "up", "down" })
            {
                using var key = DirectionalKey.Derive(chain, label);
                foreach (var datagram in captured) Assert.False(MediaDatagram.TryOpen(key, datagram, plaintext, out _));
            }
        }
        await departed.DisposeAsync();
    }
}

/// <summary>A flood of connections that never finish the handshake is bounded and never starves media.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayHandshakeLimitTests(ClusterFixture fixture)
{
    [Fact]
    public async Task HelloFlood_BeyondThePerAddressLimit_IsRefused_AndMediaKeepsFlowing()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: o =>
        {
            o.MaxPendingHandshakesPerAddress = 3;
            o.HandshakeTimeout = TimeSpan.FromSeconds(2);
        });
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await Eventually.True(() => Task.FromResult(alice.Others.Count == 1 && bob.Others.Count == 1), TimeSpan.FromSeconds(20), "both joined");

        var failures = gateway.Counters.HandshakeFailures;
        var listening = Speech.ListenAsync(bob, 100, TimeSpan.FromSeconds(20));
        var talking = Speech.TalkAsync(alice, "alice", 100);
        // Ten connections from one address that complete QUIC and then say nothing.
        var flood = new List<Quic.QuicConnection>();
        for (var i = 0; i < 10; i++)
            flood.Add(await Quic.QuicClient.ConnectAsync("127.0.0.1", gateway.ClientEndPoint.Port, new Quic.QuicClientOptions()));
        // Seven are refused at once; the three admitted time out later.
        await Eventually.True(() => Task.FromResult(gateway.Counters.HandshakeFailures - failures >= 7), TimeSpan.FromSeconds(20), "the excess is refused");
        await Eventually.True(() => Task.FromResult(gateway.Counters.HandshakeFailures - failures == 10), TimeSpan.FromSeconds(20), "the silent ones time out");
        await Task.WhenAll(flood.Select(c => c.Closed.WaitAsync(TimeSpan.FromSeconds(20))));
        foreach (var connection in flood) await connection.DisposeAsync();

        await talking;
        var heard = await listening;
        Assert.Equal(Enumerable.Range(0, 100), heard.Select(f => (int)f.Header.Sequence).Order());
        // And a newcomer gets in once the flood is gone.
        var carol = await harness.JoinAsync(gateway, room, "carol");
        Assert.NotEqual(0, carol.Slot);
    }
    [Fact]
    public async Task ClientsThatNeverFinishAHello_FromManyAddresses_CannotKeepANewcomerOut()
    {
        await using var harness = new GatewayHarness(fixture);
        // Limits of 8 in total and 2 per address instead of 512 and 16, so that the table fills with 8 connections
        // rather than 512; the rule is the same at any size. HelloTimeout stays at its default (5 s), which the
        // test outlives.
        var gateway = await harness.StartGatewayAsync(configure: o =>
        {
            o.MaxPendingHandshakes = 8;
            o.MaxPendingHandshakesPerAddress = 2;
        });
        var room = $"room-{Guid.NewGuid():N}";
        var failures = gateway.Counters.HandshakeFailures;

        // Four addresses, two connections each, that send one byte of a hello and then nothing.
        var tricklers = new List<Quic.QuicConnection>();
        for (var address = 2; address <= 5; address++)
        {
            for (var i = 0; i < 2; i++)
            {
                var connection = await Quic.QuicClient.ConnectAsync("127.0.0.1", gateway.ClientEndPoint.Port,
                    new Quic.QuicClientOptions { LocalEndPoint = new System.Net.IPEndPoint(System.Net.IPAddress.Parse($"127.0.0.{address}"), 0) });
                await connection.WriteAsync(new byte[] { 0 });
                tricklers.Add(connection);
            }
        }
        await Eventually.True(() => Task.FromResult(gateway.Admissions.Count == 8), TimeSpan.FromSeconds(20), "the tricklers fill the table");

        // On the code before the fix this join was refused 'busy' until the tricklers timed out.
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        Assert.NotEqual(alice.Slot, bob.Slot);
        // Alice took the oldest trickler's place; once she had joined, her place was free for bob.
        Assert.Equal(1, gateway.Admissions.PushedOut);

        // The rest are closed at the hello deadline; nothing of them stays in the table.
        await Task.WhenAll(tricklers.Select(c => c.Closed.WaitAsync(TimeSpan.FromSeconds(20))));
        foreach (var connection in tricklers) await connection.DisposeAsync();
        Assert.Equal(8, gateway.Counters.HandshakeFailures - failures);
        await Eventually.True(() => Task.FromResult(gateway.Admissions.Count == 0), TimeSpan.FromSeconds(20), "the table empties");
    }
}

/// <summary>Gateway links under rekey and under loss of one side's state.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayLinkTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static async Task<(GatewayHarness, GatewayServer, GatewayServer, WzpClient, WzpClient)> TwoGatewaysAsync(ClusterFixture fixture)
    {
        var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: o => o.LinkIdleTimeout = TimeSpan.FromSeconds(2));
        var g2 = await harness.StartGatewayAsync(configure: o => o.LinkIdleTimeout = TimeSpan.FromSeconds(2));
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(g1, room, "alice");
        var bob = await harness.JoinAsync(g2, room, "bob");
        await Eventually.True(() => Task.FromResult(alice.Others.Count == 1 && bob.Others.Count == 1 &&
            g1.HasLinkTo(g2.Options.GatewayId) && g2.HasLinkTo(g1.Options.GatewayId)), Patience, "joined and linked");
        return (harness, g1, g2, alice, bob);
    }

    [Fact]
    public async Task LinkRekey_DuringACall_LosesNoFrame()
    {
        var (harness, g1, g2, alice, bob) = await TwoGatewaysAsync(fixture);
        await using var _ = harness;
        var offerer = LinkHandshake.ShouldOffer(g1.Options.GatewayId, g2.Options.GatewayId) ? g1 : g2;
        var peer = offerer == g1 ? g2 : g1;
        var before = offerer.Links.Get(peer.Options.GatewayId)!.Session.Keys.Current.Number;
        var listening = Speech.ListenAsync(bob, 200, Patience);
        var talking = Speech.TalkAsync(alice, "alice", 200);
        offerer.Links.RekeyOfferedLinks();
        await Eventually.True(() => Task.FromResult(peer.Links.Get(offerer.Options.GatewayId)!.Session.Keys.Current.Number > before &&
            offerer.Links.Get(peer.Options.GatewayId)!.Session.Keys.Current.Number > before), Patience, "both ends of the link switched epochs");
        await talking;
        var heard = await listening;
        Assert.Equal(Enumerable.Range(0, 200), heard.Select(f => (int)f.Header.Sequence).Order());
    }

    [Fact]
    public async Task LinkLostOnOneSide_IsRenegotiated_AndMediaFlowsAgain()
    {
        var (harness, g1, g2, alice, bob) = await TwoGatewaysAsync(fixture);
        await using var _ = harness;
        var old = g1.Links.Get(g2.Options.GatewayId)!;
        g2.Links.ForgetLink(g1.Options.GatewayId); // as if g2 had restarted its link state
        await Eventually.True(() => Task.FromResult(g1.Links.Get(g2.Options.GatewayId) is { } now && now != old && g2.HasLinkTo(g1.Options.GatewayId)),
            Patience, "a fresh link replaces the lost one");
        var listening = new[] { Speech.ListenAsync(bob, 50, Patience), Speech.ListenAsync(alice, 50, Patience) };
        await Task.WhenAll(Speech.TalkAsync(alice, "alice", 50), Speech.TalkAsync(bob, "bob", 50));
        var heard = await Task.WhenAll(listening);
        Assert.All(heard, frames => Assert.Equal(Enumerable.Range(0, 50), frames.Select(f => (int)f.Header.Sequence).Order()));
    }
}

/// <summary>What operators and users see: refusals as error messages, drops as metrics.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayObservabilityTests(ClusterFixture fixture)
{
    [Fact]
    public async Task WrongToken_IsRefusedWithAnUnauthorizedErrorBeforeTheClose()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: o => o.Token = "open-sesame");
        var room = $"room-{Guid.NewGuid():N}";
        var error = await Assert.ThrowsAsync<GatewayErrorException>(() => harness.JoinAsync(gateway, room, "mallory", token: "open-barley"));
        Assert.Equal(ErrorCodes.Unauthorized, error.Code);
        Assert.Equal(1, gateway.Counters.HandshakeFailures);
        // The right token, carried in the confirm, admits.
        var alice = await harness.JoinAsync(gateway, room, "alice", token: "open-sesame");
        Assert.Equal(ClientState.Joined, alice.State);
    }

    [Fact]
    public async Task Drops_AreExportedThroughTheMeter_ByReason()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var clusterKey = gateway.Keys.Credential.ClusterKey;
        await using var sender = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        var datagram = sender.Seal(Speech.Header(1), new byte[40]);
        Assert.True(sender.Send(datagram));
        Assert.True(sender.Send(datagram));
        await Eventually.True(() => Task.FromResult(gateway.Counters.Drops(GatewayDrop.Replay) == 1), TimeSpan.FromSeconds(20), "the replay is counted");

        var measured = new Dictionary<string, long>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == GatewayCounters.MeterName) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? gatewayTag = null, reason = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "gateway") gatewayTag = tag.Value as string;
                if (tag.Key == "reason") reason = tag.Value as string;
            }
            if (gatewayTag == gateway.Options.GatewayId) measured[$"{instrument.Name}/{reason}"] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(1, measured["wzp.gateway.datagrams.dropped/replay"]);
        Assert.Equal(0, measured["wzp.gateway.datagrams.dropped/aead"]);
        Assert.Equal(1, measured["wzp.gateway.sessions/"]);
        // No room name, fingerprint or key is a label: only the gateway id and the drop reason.
        Assert.DoesNotContain(measured.Keys, k => k.Contains(room, StringComparison.Ordinal));
    }
}

/// <summary>A gateway that dies mid-call.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayFailureTests(ClusterFixture fixture)
{
    [Fact]
    public async Task GatewayKilledMidCall_ItsMembersLeave_OthersRekeyAndKeepTalking()
    {
        await using var harness = new GatewayHarness(fixture);
        var doomed = await harness.StartGatewayAsync();
        var survivor = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(doomed, room, "alice");
        var bob = await harness.JoinAsync(survivor, room, "bob");
        var carol = await harness.JoinAsync(survivor, room, "carol");
        await Eventually.True(() => Task.FromResult(bob.Others.Count == 2 && carol.Others.Count == 2), TimeSpan.FromSeconds(20), "all three joined");
        await Eventually.True(() => Task.FromResult(bob.GetStatistics().Epoch >= 1), TimeSpan.FromSeconds(20), "bob rekeyed for carol's join");
        var epochs = (bob.GetStatistics().Epoch, carol.GetStatistics().Epoch);

        // Bob and Carol talk for ~8 s while Alice's gateway dies silently (no unregister, no leave).
        const int frames = 1000;
        var listening = new[] { Speech.ListenAsync(bob, frames, TimeSpan.FromSeconds(40)), Speech.ListenAsync(carol, frames, TimeSpan.FromSeconds(40)) };
        var talking = Task.WhenAll(TalkSlowlyAsync(bob, "bob", frames), TalkSlowlyAsync(carol, "carol", frames));
        await doomed.CrashAsync();
        await Eventually.True(() => Task.FromResult(bob.Others.Count == 1 && carol.Others.Count == 1), fixture.Options.GatewayExpiry * 4,
            "alice leaves the room within the directory expiry");
        await Eventually.True(() => Task.FromResult(bob.GetStatistics().Epoch > epochs.Item1 && carol.GetStatistics().Epoch > epochs.Item2),
            TimeSpan.FromSeconds(20), "bob and carol rekey after alice is evicted");
        await talking;
        var heard = await Task.WhenAll(listening);
        Assert.Equal(Enumerable.Range(0, frames), heard[0].Where(f => f.Source == carol.Slot).Select(f => (int)f.Header.Sequence).Order());
        Assert.Equal(Enumerable.Range(0, frames), heard[1].Where(f => f.Source == bob.Slot).Select(f => (int)f.Header.Sequence).Order());
    }

    private static async Task TalkSlowlyAsync(WzpClient client, string name, int frames)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(8));
        for (var i = 0; i < frames; i++)
        {
            Assert.True(client.TrySend(Speech.Header(i), Speech.Payload(name, i)));
            await timer.WaitForNextTickAsync();
        }
    }
}

/// <summary>Malformed and hostile control traffic through a real gateway: refused with the right error, room unharmed.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayBadInputTests(ClusterFixture fixture)
{
    private static async Task<(Quic.QuicConnection Connection, Framing Framing)> ConnectAsync(GatewayServer gateway)
    {
        var connection = await Quic.QuicClient.ConnectAsync("127.0.0.1", gateway.ClientEndPoint.Port, new Quic.QuicClientOptions());
        return (connection, new Framing(connection));
    }

    private static async Task<string> ErrorCodeAsync(Framing framing)
    {
        var message = await framing.ReadAsync().WaitAsync(TimeSpan.FromSeconds(20));
        return Assert.IsType<Error>(message).Code;
    }

    [Fact]
    public async Task HostileControlTraffic_GetsTheRightErrors_AndTheRoomKeepsTalking()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync();
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(gateway, room, "alice");
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await Eventually.True(() => Task.FromResult(alice.Others.Count == 1 && bob.Others.Count == 1), TimeSpan.FromSeconds(20), "both joined");
        var clusterKey = gateway.Keys.Credential.ClusterKey;
        var failures = gateway.Counters.HandshakeFailures;

        // A hello whose signature does not cover its room.
        using (var identity = Identity.Generate())
        using (var handshake = new ClientHandshake(identity, room, "eve", "", clusterKey))
        {
            var (connection, framing) = await ConnectAsync(gateway);
            await framing.SendAsync(handshake.Hello with { Room = room + "-other" });
            Assert.Equal(ErrorCodes.BadSignature, await ErrorCodeAsync(framing));
            await connection.Closed.WaitAsync(TimeSpan.FromSeconds(20));
            await connection.DisposeAsync();
        }

        // A genuine hello, then a confirm with a wrong MAC; then the same hello replayed on a new connection with
        // the confirm an eavesdropper saw.
        using (var identity = Identity.Generate())
        using (var handshake = new ClientHandshake(identity, room, "eve", "", clusterKey))
        {
            var (connection, framing) = await ConnectAsync(gateway);
            await framing.SendAsync(handshake.Hello);
            var welcome = Assert.IsType<Welcome>(await framing.ReadAsync());
            var session = handshake.OnWelcome(welcome).Value!;
            var wrong = session.Confirm.Mac.ToArray();
            wrong[0] ^= 1;
            await framing.SendAsync(new Confirm(wrong, ""));
            Assert.Equal(ErrorCodes.BadMac, await ErrorCodeAsync(framing));
            await connection.DisposeAsync();

            var (replay, replayFraming) = await ConnectAsync(gateway);
            await replayFraming.SendAsync(handshake.Hello);
            Assert.IsType<Welcome>(await replayFraming.ReadAsync());
            await replayFraming.SendAsync(session.Confirm);
            Assert.Equal(ErrorCodes.BadMac, await ErrorCodeAsync(replayFraming));
            await replay.DisposeAsync();
            session.Dispose();
        }

        // An oversized control frame, and a frame that is not JSON.
        foreach (var frame in new[] { new byte[] { 0x00, 0x01, 0x00, 0x01 }, new byte[] { 0, 0, 0, 3, (byte)'n', (byte)'o', (byte)'!' } })
        {
            var (connection, framing) = await ConnectAsync(gateway);
            await connection.WriteAsync(frame);
            Assert.Equal(ErrorCodes.BadRequest, await ErrorCodeAsync(framing));
            await connection.DisposeAsync();
        }
        Assert.Equal(5, gateway.Counters.HandshakeFailures - failures);

        // A member's datagram under an epoch that does not exist.
        await using var raw = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, room, clusterKey);
        var unknownEpoch = raw.Seal(Speech.Header(1), new byte[20]);
        unknownEpoch[12] ^= 0x40;
        var before = gateway.Counters.Drops(GatewayDrop.UnknownEpoch);
        Assert.True(raw.Send(unknownEpoch));
        await Eventually.True(() => Task.FromResult(gateway.Counters.Drops(GatewayDrop.UnknownEpoch) > before), TimeSpan.FromSeconds(20), "unknown epoch counted");

        var listening = Speech.ListenAsync(bob, 100, TimeSpan.FromSeconds(20));
        await Speech.TalkAsync(alice, "alice", 100);
        Assert.Equal(Enumerable.Range(0, 100), (await listening).Where(f => f.Source == alice.Slot).Select(f => (int)f.Header.Sequence).Order());
    }

    [Fact]
    public async Task Version1Hello_WithItsToken_GetsUnsupportedVersion()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: o => o.Token = "open-sesame");
        // What a version-1 client writes: its token inside the hello, signed under the version-1 label.
        using var identity = Identity.Generate();
        using var ephemeral = EphemeralKey.Generate();
        var v1 = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["type"] = "hello", ["version"] = 1, ["identityKey"] = identity.PublicKey.ToArray(), ["ephemeralKey"] = ephemeral.PublicKey.ToArray(),
            ["nonce"] = new byte[32], ["room"] = "room", ["alias"] = "old", ["token"] = "open-sesame", ["signature"] = new byte[64],
        });
        var frame = new byte[4 + v1.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)v1.Length);
        v1.CopyTo(frame, 4);
        var (connection, framing) = await ConnectAsync(gateway);
        await connection.WriteAsync(frame);
        Assert.Equal(ErrorCodes.UnsupportedVersion, await ErrorCodeAsync(framing));
        await connection.DisposeAsync();
    }
}

/// <summary>A member behind a path that loses, duplicates and reorders 30 % of its packets each.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GatewayImpairedPathTests(ClusterFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task LossReorderDuplication_EveryArrivingFrameDecryptsOnce_AndTheSessionSurvivesARekey()
    {
        await using var harness = new GatewayHarness(fixture);
        using var logs = TestOutputLoggerProvider.Factory(output);
        var gateway = await harness.StartGatewayAsync(loggerFactory: logs);
        await using var proxy = new Quic.Tests.ImpairedUdpProxy(gateway.ClientEndPoint, drop: 0.3, duplicate: 0.3, reorder: 0.3, seed: 5);
        var room = $"room-{Guid.NewGuid():N}";
        // Handshake packets are lost too: QUIC's retransmission backoff needs more than the default 10 s at times.
        // Known defect (closing note): on this path the server occasionally gives up a handshake (handshake timeout)
        // that the client already completed, and the client then gets a stateless reset; a real client reconnects,
        // and so does this one, at most twice.
        WzpClient? alice = null;
        for (var attempt = 0; alice is null; attempt++)
        {
            try
            {
                alice = await harness.JoinAsync(gateway, room, "alice", port: proxy.EndPoint.Port, connectTimeout: TimeSpan.FromSeconds(60), loggerFactory: logs);
            }
            catch (ConnectionLostException) when (attempt < 2)
            {
            }
        }
        var bob = await harness.JoinAsync(gateway, room, "bob");
        await Eventually.True(() => Task.FromResult(alice.Others.Count == 1 && bob.Others.Count == 1), TimeSpan.FromSeconds(30), "both joined");
        var aliceEpoch = alice.GetStatistics().Epoch;

        const int frames = 400;
        var aliceHears = Speech.ListenAsync(alice, frames, TimeSpan.FromSeconds(15));
        var bobHears = Speech.ListenAsync(bob, frames, TimeSpan.FromSeconds(15));
        var talking = Task.WhenAll(Speech.TalkAsync(alice, "alice", frames, lossy: true), Speech.TalkAsync(bob, "bob", frames, lossy: true));
        // A third member mid-call makes Alice rekey over the impaired path.
        var carol = await harness.JoinAsync(gateway, room, "carol");
        var rekeyClock = System.Diagnostics.Stopwatch.StartNew();
        await Eventually.True(() => Task.FromResult(alice.GetStatistics().Epoch > aliceEpoch), TimeSpan.FromSeconds(30), "alice rekeys over the lossy path");
        output.WriteLine($"alice rekeyed {rekeyClock.Elapsed.TotalMilliseconds:F0} ms after carol joined; alice's ping RTT {alice.GetStatistics().PingRtt?.TotalMilliseconds:F0} ms");
        await talking;
        var heard = await Task.WhenAll(aliceHears, bobHears);

        Assert.True(proxy.Dropped > 0 && proxy.Duplicated > 0 && proxy.Reordered > 0);
        foreach (var (frames_, speaker, name) in new[] { (heard[0], bob, "bob"), (heard[1], alice, "alice") })
        {
            var fromSpeaker = frames_.Where(f => f.Source == speaker.Slot).ToList();
            Assert.NotEmpty(fromSpeaker);
            Assert.Equal(fromSpeaker.Count, fromSpeaker.Select(f => f.Header.Sequence).Distinct().Count()); // none twice
            Assert.All(fromSpeaker, f => Assert.Equal(Speech.Payload(name, f.Header.Sequence), f.Payload.ToArray())); // each intact
        }
        Assert.Equal(0, alice.GetStatistics().DroppedAuthentication);
        Assert.Equal(0, gateway.Counters.Drops(GatewayDrop.Authentication));
        Assert.True(alice.State == ClientState.Joined,
            $"alice's session ended ({alice.State}): {(alice.Completion.IsFaulted ? alice.Completion.Exception!.GetBaseException().Message : "no error")}");
        Assert.NotEqual(0, carol.Slot);
    }
}
