using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;
using Wzp.Protocol.Grants;

namespace Wzp.Cluster.Tests;

/// <summary>Grants across two gateways that hold only the issuer's Ed25519 public key.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class GrantTests(ClusterFixture fixture) : IDisposable
{
    private readonly GrantKey _issuer = GrantKey.Generate(GrantKeyKind.Ed25519, "issuer-1");
    private readonly List<Identity> _identities = [];

    public void Dispose()
    {
        _issuer.Dispose();
        foreach (var identity in _identities) identity.Dispose();
    }

    private void RequireGrants(GatewayOptions options)
    {
        options.Grants.Required = true;
        options.Grants.Ed25519PublicKeys["issuer-1"] = Convert.ToHexStringLower(_issuer.PublicKey!);
    }

    private (Identity Identity, string Token) Member(string room, Func<Grant, Grant>? shape = null)
    {
        var identity = Identity.Generate();
        _identities.Add(identity);
        var grant = Grant.For(identity.Fingerprint, room, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(10), _issuer.KeyId);
        return (identity, GrantIssuer.Issue(shape?.Invoke(grant) ?? grant, _issuer));
    }

    [Fact]
    public async Task Kick_ByAnAdminOnOneGateway_RemovesAMemberOnTheOther()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (adminId, adminToken) = Member(room, g => g with { Admin = true });
        var (memberId, memberToken) = Member(room);
        var (otherId, otherToken) = Member(room);
        var admin = await harness.JoinAsync(g1, room, "admin", token: adminToken, identity: adminId);
        var member = await harness.JoinAsync(g2, room, "member", token: memberToken, identity: memberId);
        var other = await harness.JoinAsync(g2, room, "other", token: otherToken, identity: otherId);
        await Eventually.True(() => admin.Others.Count == 2 && member.Others.Count == 2 && other.Others.Count == 2, TimeSpan.FromSeconds(10), "all list each other");

        await admin.KickAsync(member.Slot);
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => member.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Kicked, failure.Code);
        await Eventually.True(() => admin.Others.Count == 1 && other.Others.Count == 1, TimeSpan.FromSeconds(10), "the others see the member gone");
        Assert.Equal(1, g2.Counters.Evictions);

        // The room goes on: the admin and the other member still hear each other across the link.
        await using var atOther = other.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(admin.TrySend(MediaHeaderFor(1), "still here"u8));
        Assert.True(await atOther.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("still here"u8.ToArray(), atOther.Current.Payload.ToArray());
    }

    [Fact]
    public async Task Listener_OnOneGateway_IsNeverHeardOnTheOther_AndItsDropsAreCounted()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (listenerId, listenerToken) = Member(room, g => g with { Publish = false });
        var (speakerId, speakerToken) = Member(room);
        var listener = await harness.JoinAsync(g1, room, "listener", token: listenerToken, identity: listenerId);
        var speaker = await harness.JoinAsync(g2, room, "speaker", token: speakerToken, identity: speakerId);
        await Eventually.True(() => listener.Others.Count == 1 && speaker.Others.Count == 1 && g1.HasLinkTo(g2.Options.GatewayId),
            TimeSpan.FromSeconds(10), "both list each other, linked");

        var heard = 0;
        using var stop = new CancellationTokenSource();
        var collecting = Task.Run(async () =>
        {
            await foreach (var frame in speaker.ReceiveAsync(stop.Token)) Interlocked.Increment(ref heard);
        });
        for (var i = 0; i < 10; i++) Assert.True(listener.TrySend(MediaHeaderFor((ushort)i), "unheard"u8));
        await Eventually.True(() => g1.Counters.Drops(GatewayDrop.ListenOnly) == 10, TimeSpan.FromSeconds(10), "the listener's gateway dropped all ten");

        await using var atListener = listener.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(speaker.TrySend(MediaHeaderFor(1), "heard"u8));
        Assert.True(await atListener.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        await stop.CancelAsync();
        await collecting.ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Equal(0, Volatile.Read(ref heard));
        Assert.Equal(0, g1.Counters.LinkForwarded);
    }

    [Fact]
    public async Task KickedMember_RejoiningWithTheSameGrantThroughTheOtherGateway_IsRefusedKicked()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (adminId, adminToken) = Member(room, g => g with { Admin = true });
        var (memberId, memberToken) = Member(room);
        var admin = await harness.JoinAsync(g1, room, "admin", token: adminToken, identity: adminId);
        var member = await harness.JoinAsync(g2, room, "member", token: memberToken, identity: memberId);
        await Eventually.True(() => admin.Others.Count == 1 && member.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        await admin.KickAsync(member.Slot);
        var kicked = await Assert.ThrowsAsync<GatewayErrorException>(() => member.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Kicked, kicked.Code);

        // Through the admin's gateway this time: the room, not the gateway that hosted it, refuses the identity.
        var again = await Assert.ThrowsAnyAsync<WzpClientException>(() => harness.JoinAsync(g1, room, "member", token: memberToken, identity: memberId));
        Assert.Equal(ErrorCodes.Kicked, CodeOf(again));
        Assert.Contains("until the grant it was removed with expires", again.Message, StringComparison.Ordinal);
        Assert.Empty(admin.Others);
    }

    [Fact]
    public async Task Mute_ByAnAdminOnOneGateway_SilencesAMemberOnTheOther_CountsItsDrops_AndUnmuteRestoresIt()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (adminId, adminToken) = Member(room, g => g with { Admin = true });
        var (memberId, memberToken) = Member(room);
        var (otherId, otherToken) = Member(room);
        var admin = await harness.JoinAsync(g1, room, "admin", token: adminToken, identity: adminId);
        var member = await harness.JoinAsync(g2, room, "member", token: memberToken, identity: memberId);
        var other = await harness.JoinAsync(g2, room, "other", token: otherToken, identity: otherId);
        await Eventually.True(() => admin.Others.Count == 2 && member.Others.Count == 2 && other.Others.Count == 2 && g1.HasLinkTo(g2.Options.GatewayId),
            TimeSpan.FromSeconds(10), "all list each other, linked");

        await admin.MuteAsync(member.Slot);
        // Every member list marks it, its own included, on both gateways.
        await Eventually.True(() => admin.Others.Single(m => m.Slot == member.Slot).Muted && other.Others.Single(m => m.Slot == member.Slot).Muted
            && member.Members.Single(m => m.Slot == member.Slot).Muted, TimeSpan.FromSeconds(10), "the member lists show it muted");
        Assert.False(admin.Others.Single(m => m.Slot == other.Slot).Muted);
        Assert.Equal(2, admin.Others.Count);

        int mutedHeard = 0, heardByAdmin = 0, heardByOther = 0;
        using var stop = new CancellationTokenSource();
        async Task Collect(WzpClient listener, Action onHeard)
        {
            await foreach (var frame in listener.ReceiveAsync(stop.Token))
            {
                if (frame.Source != member.Slot) continue;
                if (frame.Payload.Span.SequenceEqual("muted"u8)) Interlocked.Increment(ref mutedHeard);
                else onHeard();
            }
        }
        var atAdmin = Task.Run(() => Collect(admin, () => Interlocked.Increment(ref heardByAdmin)));
        var atOther = Task.Run(() => Collect(other, () => Interlocked.Increment(ref heardByOther)));
        for (var i = 0; i < 10; i++) Assert.True(member.TrySend(MediaHeaderFor((ushort)i), "muted"u8));
        await Eventually.True(() => g2.Counters.Drops(GatewayDrop.Muted) == 10, TimeSpan.FromSeconds(10), "the member's gateway dropped all ten");
        var linkSentWhileMuted = g2.Counters.LinkForwarded;

        await admin.MuteAsync(member.Slot, muted: false);
        await Eventually.True(() => !admin.Others.Single(m => m.Slot == member.Slot).Muted && !other.Others.Single(m => m.Slot == member.Slot).Muted,
            TimeSpan.FromSeconds(10), "the member lists show it unmuted");
        // Heard again by both, across the link and on its own gateway; none of the muted frames ever arrived.
        var sequence = (ushort)100;
        await Eventually.True(() =>
        {
            member.TrySend(MediaHeaderFor(sequence++), "heard"u8);
            return Volatile.Read(ref heardByAdmin) > 0 && Volatile.Read(ref heardByOther) > 0;
        }, TimeSpan.FromSeconds(10), "the unmuted member is heard by both");
        await stop.CancelAsync();
        await Task.WhenAll(atAdmin, atOther).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Equal(0, Volatile.Read(ref mutedHeard));
        Assert.Equal(10, g2.Counters.Drops(GatewayDrop.Muted));
        Assert.True(g2.Counters.LinkForwarded > linkSentWhileMuted, "the unmuted member's media crossed the link");
    }

    [Fact]
    public async Task MuteWithoutAnAdminGrant_ClosesTheSenderUnauthorized_AndMutesNobody()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (aId, aToken) = Member(room);
        var (bId, bToken) = Member(room);
        var a = await harness.JoinAsync(g1, room, "a", token: aToken, identity: aId);
        var b = await harness.JoinAsync(g2, room, "b", token: bToken, identity: bId);
        await Eventually.True(() => a.Others.Count == 1 && b.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        await b.MuteAsync(a.Slot);
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => b.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Unauthorized, failure.Code);
        Assert.Contains("'mute' needs a grant with 'admin'", failure.Message, StringComparison.Ordinal);
        Assert.False(a.Members.Single(m => m.Slot == a.Slot).Muted);
    }

    [Fact]
    public async Task MutedMember_RejoiningTheOpenRoom_IsStillMuted()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (adminId, adminToken) = Member(room, g => g with { Admin = true });
        var (memberId, memberToken) = Member(room);
        var admin = await harness.JoinAsync(g1, room, "admin", token: adminToken, identity: adminId);
        var member = await harness.JoinAsync(g2, room, "member", token: memberToken, identity: memberId);
        await Eventually.True(() => admin.Others.Count == 1 && member.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");
        await admin.MuteAsync(member.Slot);
        await Eventually.True(() => admin.Others.Single().Muted, TimeSpan.FromSeconds(10), "muted");

        await member.DisposeAsync();
        await Eventually.True(() => admin.Others.Count == 0, TimeSpan.FromSeconds(10), "the member left");
        var back = await harness.JoinAsync(g1, room, "member", token: memberToken, identity: memberId);
        Assert.True(back.Members.Single(m => m.Slot == back.Slot).Muted, "a muted identity that rejoins is muted again");
        Assert.True(back.TrySend(MediaHeaderFor(1), "still muted"u8));
        await Eventually.True(() => g1.Counters.Drops(GatewayDrop.Muted) == 1, TimeSpan.FromSeconds(10), "its gateway drops its media");
    }

    [Fact]
    public async Task GrantExpiringWhileInTheRoom_RemovesTheMemberWithGrantExpired_AndAFreshGrantRejoins()
    {
        await using var harness = new GatewayHarness(fixture);
        // No clock skew, so the grant ends at its 'exp'. A real clock and a grant of a few seconds rather than a fake
        // TimeProvider: the gateway's QUIC timers and maintenance loop run on the same clock, and would stall with it.
        void ExactTime(GatewayOptions options)
        {
            RequireGrants(options);
            options.Grants.ClockSkew = TimeSpan.Zero;
        }
        var g1 = await harness.StartGatewayAsync(configure: ExactTime);
        var g2 = await harness.StartGatewayAsync(configure: ExactTime);
        var room = $"room-{Guid.NewGuid():N}";
        var (shortId, shortToken) = Member(room, g => g with { Expires = g.NotBefore + TimeSpan.FromSeconds(6) });
        var (otherId, otherToken) = Member(room);
        var other = await harness.JoinAsync(g1, room, "other", token: otherToken, identity: otherId);
        var brief = await harness.JoinAsync(g2, room, "brief", token: shortToken, identity: shortId);
        await Eventually.True(() => other.Others.Count == 1, TimeSpan.FromSeconds(10), "the other member lists it");

        var expired = await Assert.ThrowsAsync<GatewayErrorException>(() => brief.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(ErrorCodes.GrantExpired, expired.Code);
        Assert.Contains("join again with a fresh grant", expired.Message, StringComparison.Ordinal);
        await Eventually.True(() => other.Others.Count == 0, TimeSpan.FromSeconds(10), "the room no longer lists it");
        Assert.Equal(1, g2.Counters.GrantsExpired);
        Assert.Equal(0, g1.Counters.GrantsExpired);

        // Renewal: the same identity joins again with a fresh grant.
        var fresh = GrantIssuer.Issue(Grant.For(shortId.Fingerprint, room, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(10), _issuer.KeyId), _issuer);
        var renewed = await harness.JoinAsync(g2, room, "brief", token: fresh, identity: shortId);
        await Eventually.True(() => other.Others.Count == 1 && renewed.Others.Count == 1, TimeSpan.FromSeconds(10), "back in the room");
    }

    [Fact]
    public async Task KeyRotationOnDisk_IsAcceptedWithoutARestart_AndABrokenKeySetKeepsThePreviousKeys()
    {
        var dir = Directory.CreateTempSubdirectory("wzp-keyset-").FullName;
        try
        {
            using var oldKey = GrantKey.Generate(GrantKeyKind.Ed25519, "issuer-2025");
            using var newKey = GrantKey.Generate(GrantKeyKind.Hs256, "api-2026");
            var keySet = Path.Combine(dir, "keys.json");
            WriteKeySet(keySet, oldKey);
            await using var harness = new GatewayHarness(fixture);
            var gateway = await harness.StartGatewayAsync(configure: options =>
            {
                options.Grants.Required = true;
                options.Grants.KeySetFile = keySet;
                options.Grants.KeyReloadPeriod = TimeSpan.FromSeconds(1);
            });
            var room = $"room-{Guid.NewGuid():N}";
            async Task<WzpClient> JoinWith(GrantKey key, string alias)
            {
                var identity = Identity.Generate();
                _identities.Add(identity);
                var token = GrantIssuer.Issue(Grant.For(identity.Fingerprint, room, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(10), key.KeyId), key);
                return await harness.JoinAsync(gateway, room, alias, token: token, identity: identity);
            }

            var early = await JoinWith(oldKey, "early");
            var unknown = await Assert.ThrowsAnyAsync<WzpClientException>(() => JoinWith(newKey, "too soon"));
            Assert.Contains("unknown key id 'api-2026'", unknown.Message, StringComparison.Ordinal);

            // Step 1: add the new key next to the old one.
            WriteKeySet(keySet, oldKey, newKey);
            await Eventually.True(() => gateway.Counters.GrantKeyReloads == 1, TimeSpan.FromSeconds(15), "the gateway reloads the key set");
            await JoinWith(newKey, "new issuer");

            // A broken file keeps what was accepted, and says so once.
            File.WriteAllText(keySet, "{\"keys\": [ {\"kty\": \"oct\"");
            await Eventually.True(() => gateway.Counters.GrantKeyReloadFailures == 1, TimeSpan.FromSeconds(15), "the failed reload is counted");
            await JoinWith(newKey, "still new");
            await JoinWith(oldKey, "still old");

            // Step 2: retire the old key. Members admitted under it stay.
            WriteKeySet(keySet, newKey);
            await Eventually.True(() => gateway.Counters.GrantKeyReloads == 2, TimeSpan.FromSeconds(15), "the gateway reloads the key set again");
            var retired = await Assert.ThrowsAnyAsync<WzpClientException>(() => JoinWith(oldKey, "retired"));
            Assert.Contains("unknown key id 'issuer-2025'", retired.Message, StringComparison.Ordinal);
            await JoinWith(newKey, "after rotation");
            Assert.Equal(ClientState.Joined, early.State);
            Assert.Equal(1, gateway.Counters.GrantKeyReloadFailures);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Written beside and renamed over, as an operator should: the gateway never reads half a file.
    private static void WriteKeySet(string path, params GrantKey[] keys)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, "{\"keys\": [" + string.Join(",", keys.Select(k => k.ToJson())) + "]}");
        File.Move(temporary, path, overwrite: true);
    }

    private static string? CodeOf(Exception e) => e switch
    {
        GatewayErrorException g => g.Code,
        HandshakeFailedException h => h.Code,
        _ => e.InnerException is { } inner ? CodeOf(inner) : null,
    };

    [Fact]
    public async Task GatewayRequiringGrants_RefusesAnExpiredGrantUnauthorized()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (id, token) = Member(room, g => g with { NotBefore = DateTimeOffset.UtcNow.AddHours(-2), Expires = DateTimeOffset.UtcNow.AddHours(-1) });
        var e = await Assert.ThrowsAnyAsync<WzpClientException>(() => harness.JoinAsync(gateway, room, "late", token: token, identity: id));
        Assert.Contains("grant refused: the grant expired at", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("no key", "no key is accepted")]
    [InlineData("bad kid", "key id 'a b'")]
    [InlineData("bad public key", "is not an Ed25519 public key")]
    [InlineData("token too", "exclude each other")]
    [InlineData("skew", "ClockSkew")]
    public void Options_BadGrantSettings_AreRefusedAtStartSayingWhich(string what, string expected)
    {
        var options = new GatewayOptions();
        options.Grants.Required = true;
        options.Grants.Ed25519PublicKeys["issuer-1"] = Convert.ToHexStringLower(_issuer.PublicKey!);
        switch (what)
        {
            case "no key": options.Grants.Ed25519PublicKeys.Clear(); break;
            case "bad kid": options.Grants.Ed25519PublicKeys["a b"] = Convert.ToHexStringLower(_issuer.PublicKey!); break;
            case "bad public key": options.Grants.Ed25519PublicKeys["issuer-1"] = "00"; break;
            case "token too": options.Token = "shared"; break;
            case "skew": options.Grants.ClockSkew = TimeSpan.FromHours(1); break;
        }
        var result = new GatewayOptionsValidator().Validate(null, options);
        Assert.True(result.Failed, what);
        Assert.Contains(expected, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_Hs256KeyFileMissingOrOfAnotherKid_StopsTheStartSayingSo()
    {
        var dir = Directory.CreateTempSubdirectory("wzp-grants-").FullName;
        try
        {
            var options = new GatewayGrantOptions { Required = true };
            options.Hs256KeyFiles["api-1"] = Path.Combine(dir, "missing.jwk");
            var missing = Assert.Throws<GatewayStartupException>(() => options.CreateValidator(TimeProvider.System));
            Assert.Contains("grant key 'api-1': cannot read", missing.Message, StringComparison.Ordinal);

            using var other = GrantKey.Generate(GrantKeyKind.Hs256, "api-2");
            File.WriteAllText(options.Hs256KeyFiles["api-1"], other.ToJson());
            var wrongKid = Assert.Throws<GatewayStartupException>(() => options.CreateValidator(TimeProvider.System));
            Assert.Contains("is key id 'api-2'", wrongKid.Message, StringComparison.Ordinal);

            Assert.Null(new GatewayGrantOptions().CreateValidator(TimeProvider.System));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static MediaHeader MediaHeaderFor(ushort sequence) =>
        new(false, false, CodecId.Opus24k, false, 0, sequence, (uint)(sequence * 20), 0, 0, 0, 0);
}
