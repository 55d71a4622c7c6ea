using System.Net;
using System.Net.Sockets;
using Wzp.Client.Audio;
using Wzp.Protocol;

namespace Wzp.Client.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SocketCollection
{
    public const string Name = "sockets";
}

/// <summary>The client over real QUIC on loopback against <see cref="FakeGateway"/>.</summary>
[Collection(SocketCollection.Name)]
public sealed class ClientTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<Identity> _identities = [];

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
        _dir.Dispose();
    }

    private WzpClientOptions Options(FakeGateway gateway, string room = "room", string alias = "", Fingerprint? pin = null)
    {
        var identity = Identity.Generate();
        _identities.Add(identity);
        return new WzpClientOptions
        {
            Gateway = gateway.Address,
            Identity = identity,
            Room = room,
            Alias = alias,
            PinnedClusterFingerprint = pin,
            KnownClustersPath = _dir.File("known_clusters"),
            ReconnectInitialDelay = TimeSpan.FromMilliseconds(50),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
    }

    private static async Task<MediaFrame> NextFrameAsync(WzpClient client)
    {
        await using var frames = client.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(await frames.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)), "a frame arrives");
        return frames.Current;
    }

    [Fact]
    public async Task Connect_FirstUse_JoinsRecordsTheClusterAndListsMembers()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway, alias: "alice"));
        Assert.Equal(ClientState.Joined, alice.State);
        Assert.Equal(TrustDecision.FirstUse, alice.Trust);
        Assert.Equal(gateway.Cluster.Fingerprint, alice.ClusterFingerprint);
        Assert.Equal(gateway.Cluster.Fingerprint, new KnownClusters(_dir.File("known_clusters")).Find(gateway.Address.ToString()));
        Assert.Equal("fake-gateway", alice.GatewayId);
        Assert.Matches("^[0-9]{6}$", alice.Sas);

        await using var bob = await WzpClient.ConnectAsync(Options(gateway, alias: "bob"));
        Assert.Equal(TrustDecision.Known, bob.Trust);
        Assert.Equal(["alice", "bob"], bob.Members.Select(m => m.Alias));
        Assert.Equal("alice", Assert.Single(bob.Others).Alias);
        var joined = await alice.MemberEvents.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((MemberEventKind.Joined, bob.Slot, bob.Fingerprint), (joined.Kind, joined.Member.Slot, joined.Member.Fingerprint));

        await bob.LeaveAsync();
        var left = await alice.MemberEvents.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((MemberEventKind.Left, bob.Slot), (left.Kind, left.Member.Slot));
        Assert.Equal(ClientState.Closed, bob.State);
        await bob.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(alice.Members);
    }

    [Fact]
    public async Task Media_BothWays_ArrivesWithSenderSlotHeaderAndPayload()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        await using var bob = await WzpClient.ConnectAsync(Options(gateway));
        var header = AudioTests.Header(7);
        Assert.True(alice.TrySend(header, "hello bob"u8, new QualityReport(1, 2, 3, 4)));
        var atBob = await NextFrameAsync(bob);
        Assert.Equal(alice.Slot, atBob.Source);
        Assert.Equal(header with { HasQualityReport = true }, atBob.Header);
        Assert.Equal("hello bob"u8.ToArray(), atBob.Payload.ToArray());
        Assert.Equal(new QualityReport(1, 2, 3, 4), atBob.Quality);

        Assert.True(bob.TrySend(AudioTests.Header(1), "hi alice"u8));
        var atAlice = await NextFrameAsync(alice);
        Assert.Equal((bob.Slot, "hi alice"), (atAlice.Source, System.Text.Encoding.UTF8.GetString(atAlice.Payload.Span)));
        Assert.Null(atAlice.Quality);

        var stats = alice.GetStatistics();
        Assert.Equal((1L, 1L, 1L, 0L), (stats.DatagramsSent, stats.DatagramsReceived, stats.FramesDelivered, stats.DroppedTotal));
    }

    [Fact]
    public async Task Rekey_IsHandledTransparently_AndMediaFlowsUnderTheNewEpoch()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        var session = await gateway.NextSessionAsync();
        for (uint epoch = 1; epoch <= 3; epoch++)
        {
            Assert.Equal(epoch, await session.RekeyAsync());
            await Eventually.TrueAsync(() => alice.GetStatistics().Epoch == epoch, $"the client switches to epoch {epoch}");
            Assert.True(alice.TrySend(AudioTests.Header((ushort)epoch), [1, 2, 3]));
            var up = await session.Uplink.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal((ushort)epoch, up.Header.Sequence);
            Assert.True(session.SendMedia(9, AudioTests.Header(100).ToArray(), [4, 5]));
            Assert.Equal(9, (await NextFrameAsync(alice)).Source);
        }
        Assert.Equal(3, alice.GetStatistics().Rekeys);
        Assert.Equal(0, session.Dropped);
    }

    [Fact]
    public async Task ForgedAndReplayedDatagrams_AreDroppedAndCounted_WithoutClosing()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        var session = await gateway.NextSessionAsync();
        var header = AudioTests.Header(1).ToArray();
        Span<byte> datagram = stackalloc byte[MediaDatagram.MaxSize];
        var size = MediaDatagram.Seal(session.Session.Keys, 3, header, [1, 2, 3], datagram);
        var sealedCopy = datagram[..size].ToArray();
        Assert.True(session.SendRaw(sealedCopy));
        await NextFrameAsync(alice);
        Assert.True(session.SendRaw(sealedCopy));
        sealedCopy[^1] ^= 1;
        Assert.True(session.SendRaw(sealedCopy));
        Assert.True(session.SendRaw(new byte[10]));
        await Eventually.TrueAsync(() => alice.GetStatistics().DroppedTotal == 3, "three drops");
        var stats = alice.GetStatistics();
        Assert.Equal((1L, 1L, 1L), (stats.DroppedReplay, stats.DroppedAuthentication, stats.DroppedMalformed));
        Assert.Equal(ClientState.Joined, alice.State);
    }

    [Fact]
    public async Task Ping_IsSentAndItsPongMeasured()
    {
        await using var gateway = FakeGateway.Start();
        var options = Options(gateway);
        options.PingInterval = TimeSpan.FromMilliseconds(100);
        options.MaintenanceInterval = TimeSpan.FromMilliseconds(50);
        await using var alice = await WzpClient.ConnectAsync(options);
        var session = await gateway.NextSessionAsync();
        Assert.IsType<Ping>(await session.Messages.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        await Eventually.TrueAsync(() => alice.GetStatistics().PingRtt is not null, "a pong");
        Assert.True(alice.GetStatistics().SmoothedRtt > TimeSpan.Zero);
    }

    [Fact]
    public async Task Leave_SendsLeaveThenCloses()
    {
        await using var gateway = FakeGateway.Start();
        var alice = await WzpClient.ConnectAsync(Options(gateway));
        var session = await gateway.NextSessionAsync();
        await alice.LeaveAsync();
        while (await session.Messages.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)) is not Leave)
        {
            // Pings may come first on a slow machine.
        }
        await Eventually.TrueAsync(() => gateway.Members.Count == 0, "the member is gone");
        Assert.False(alice.TrySend(AudioTests.Header(1), [1]));
        await alice.DisposeAsync();
        Assert.True(alice.Completion.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task WrongPin_IsRefusedWithBothFingerprints()
    {
        await using var gateway = FakeGateway.Start();
        var wrong = Fingerprint.Parse("518e:b935:62fa:9e34:e59c:28b6:7fc2:d384");
        var e = await Assert.ThrowsAsync<ClusterPinMismatchException>(() => WzpClient.ConnectAsync(Options(gateway, pin: wrong)));
        Assert.Contains(wrong.ToString(), e.Message);
        Assert.Contains(gateway.Cluster.Fingerprint.ToString(), e.Message);
        Assert.Empty(gateway.Members);
    }

    [Fact]
    public async Task RightPin_IsAcceptedWithoutTouchingKnownClusters()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway, pin: gateway.Cluster.Fingerprint));
        Assert.Equal(TrustDecision.Pinned, alice.Trust);
        Assert.False(File.Exists(_dir.File("known_clusters")));
    }

    [Fact]
    public async Task ChangedClusterKey_IsRefused_UnlessExplicitlyAllowed()
    {
        GatewayAddress address;
        await using (var first = FakeGateway.Start())
        {
            address = first.Address;
            await using var client = await WzpClient.ConnectAsync(Options(first));
        }
        // Same host:port, another cluster: what an impersonator looks like.
        await using var second = StartOnPort(address.Port);
        var options = Options(second);
        var e = await Assert.ThrowsAsync<ClusterKeyChangedException>(() => WzpClient.ConnectAsync(options));
        Assert.Contains("CHANGED", e.Message);
        Assert.Empty(second.Members);

        options.AllowClusterKeyChange = true;
        await using var accepted = await WzpClient.ConnectAsync(options);
        Assert.Equal(TrustDecision.Replaced, accepted.Trust);
        Assert.Equal(second.Cluster.Fingerprint, new KnownClusters(_dir.File("known_clusters")).Find(address.ToString()));
    }

    /// <summary>A fake gateway on a given port; the freed port may be taken meanwhile, so retry a few times.</summary>
    private static FakeGateway StartOnPort(int port)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return FakeGateway.Start(port: port);
            }
            catch (Exception) when (attempt < 20)
            {
                Thread.Yield();
            }
        }
    }

    [Fact]
    public async Task GatewayError_RoomFull_IsATypedExceptionWithCodeAndMessage()
    {
        await using var gateway = FakeGateway.Start();
        gateway.JoinAdmission = _ => new Error(ErrorCodes.RoomFull, "room 'room' has 1000 members");
        var e = await Assert.ThrowsAsync<GatewayErrorException>(() => WzpClient.ConnectAsync(Options(gateway)));
        Assert.Equal(ErrorCodes.RoomFull, e.Code);
        Assert.Equal("room 'room' has 1000 members", e.GatewayMessage);
        Assert.Equal("gateway refused: room-full: room 'room' has 1000 members", e.Message);
    }

    [Fact]
    public async Task GatewayError_BeforeWelcome_IsTyped()
    {
        await using var gateway = FakeGateway.Start();
        gateway.Admission = _ => new Error(ErrorCodes.Unauthorized, "token refused");
        Assert.Equal(ErrorCodes.Unauthorized, (await Assert.ThrowsAsync<GatewayErrorException>(() => WzpClient.ConnectAsync(Options(gateway)))).Code);
    }

    [Fact]
    public async Task Token_TravelsInTheConfirm_ToTheVerifiedGateway()
    {
        await using var gateway = FakeGateway.Start();
        gateway.RequiredToken = "grant-1";
        var refused = Options(gateway);
        refused.Token = "grant-2";
        Assert.Equal(ErrorCodes.Unauthorized, (await Assert.ThrowsAsync<GatewayErrorException>(() => WzpClient.ConnectAsync(refused))).Code);
        var admitted = Options(gateway);
        admitted.Token = "grant-1";
        await using var client = await WzpClient.ConnectAsync(admitted);
        Assert.Equal(ClientState.Joined, client.State);
    }

    [Fact]
    public async Task GatewaySpeakingVersion1_RefusesTheHello_WithUnsupportedVersion_AndTheClientDoesNotRetry()
    {
        await using var gateway = FakeGateway.Start();
        var hellos = 0;
        // What a version-1 gateway answers to any other version.
        gateway.Admission = hello =>
        {
            Interlocked.Increment(ref hellos);
            return hello.Version == 1 ? null : new Error(ErrorCodes.UnsupportedVersion, $"version {hello.Version} is not supported; this gateway speaks 1");
        };
        var options = Options(gateway);
        var e = await Assert.ThrowsAsync<GatewayErrorException>(() => WzpClient.ConnectAsync(options));
        Assert.Equal(ErrorCodes.UnsupportedVersion, e.Code);
        Assert.Equal(1, Volatile.Read(ref hellos));
    }

    [Fact]
    public async Task GatewayError_AfterJoining_EndsTheClientWithIt()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        var session = await gateway.NextSessionAsync();
        await session.FailAsync(ErrorCodes.Unauthorized, "evicted");
        var e = await Assert.ThrowsAsync<GatewayErrorException>(() => alice.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(ErrorCodes.Unauthorized, e.Code);
        Assert.Equal(ClientState.Closed, alice.State);
    }

    [Fact]
    public async Task Unreachable_IsATypedException()
    {
        // A UDP port that nobody answers on: bound here and never read.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var gateway = FakeGateway.Start();
        var options = Options(gateway);
        options.Gateway = new GatewayAddress("127.0.0.1", ((IPEndPoint)silent.LocalEndPoint!).Port);
        options.ConnectTimeout = TimeSpan.FromMilliseconds(500);
        var e = await Assert.ThrowsAsync<GatewayUnreachableException>(() => WzpClient.ConnectAsync(options));
        Assert.StartsWith($"cannot reach gateway 127.0.0.1:{options.Gateway.Port}", e.Message);
    }

    [Fact]
    public async Task DroppedConnection_ReconnectsAndRejoins()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        var first = await gateway.NextSessionAsync();
        var firstSlot = alice.Slot;
        await first.Connection.CloseAsync(7, "gateway restarting");
        var second = await gateway.NextSessionAsync();
        await Eventually.TrueAsync(() => alice.State == ClientState.Joined && alice.Slot == second.Slot, "the client rejoined");
        Assert.NotEqual(firstSlot, alice.Slot);
        Assert.Equal(1, alice.GetStatistics().Reconnects);
        Assert.True(alice.TrySend(AudioTests.Header(1), [1]));
        await second.Uplink.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Voice_ToneThroughTheRelay_IsRecordedExactlyAsDecodedLocally()
    {
        await using var gateway = FakeGateway.Start();
        await using var alice = await WzpClient.ConnectAsync(Options(gateway));
        await using var bob = await WzpClient.ConnectAsync(Options(gateway));
        using var sender = new VoiceSender(alice);
        using var localDecoder = new OpusFrameDecoder();
        var expected = new List<short>();
        var tone = new ToneGenerator(660);
        var pcm = new short[VoiceFormat.FrameSamples];
        const int Frames = 25;
        using (var recorder = VoiceRecorder.ForPath(_dir.File("heard.wav")))
        {
            await using var frames = bob.ReceiveAsync().GetAsyncEnumerator();
            for (var i = 0; i < Frames; i++)
            {
                tone.Fill(pcm);
                var (payload, sent) = sender.Send(pcm);
                Assert.True(sent);
                expected.AddRange(localDecoder.Decode(payload.Span));
                // One at a time: loopback QUIC does not lose, and this keeps the test free of pacing.
                Assert.True(await frames.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
                recorder.Record(frames.Current);
            }
        }
        var recorded = WavFile.ReadMono48k(_dir.File($"heard-slot{alice.Slot}.wav"));
        Assert.Equal(expected, recorded);
        Assert.InRange(Spectrum.DominantFrequency(recorded), 655, 665);
    }
}
