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
