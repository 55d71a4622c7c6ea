using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Grains;
using Wzp.Protocol;
using Wzp.Protocol.Grants;
using Wzp.Silo;

namespace Wzp.Cluster.Tests;

/// <summary>The room administration API over the test cluster, with members on two real gateways.</summary>
[Collection(ClusterFixture.Collection)]
public sealed class AdminApiTests(ClusterFixture fixture) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("wzp-admin-").FullName;
    private readonly GrantKey _issuer = GrantKey.Generate(GrantKeyKind.Ed25519, "issuer-1");
    private readonly List<Identity> _identities = [];
    private readonly HttpClient _http = new();
    private AdminApi _api = null!;
    private string _operatorKey = "";

    public async Task InitializeAsync()
    {
        var grants = new GatewayGrantOptions();
        grants.Ed25519PublicKeys["issuer-1"] = Convert.ToHexStringLower(_issuer.PublicKey!);
        var options = new AdminApiOptions { ListenAddress = "127.0.0.1:0", OperatorKeyFile = Path.Combine(_dir, "admin.key") };
        _api = await AdminApi.StartAsync(fixture.Client, options, grants);
        _operatorKey = File.ReadAllText(options.OperatorKeyFile).Trim();
    }

    public async Task DisposeAsync()
    {
        await _api.DisposeAsync();
        _http.Dispose();
        _issuer.Dispose();
        foreach (var identity in _identities) identity.Dispose();
        Directory.Delete(_dir, recursive: true);
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

    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path,
        string? bearer = null, Identity? signer = null, long? date = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(_api.Address, path));
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (signer is not null)
        {
            var when = date ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            request.Headers.Add(AdminProof.IdentityHeader, Convert.ToBase64String(signer.PublicKey));
            request.Headers.Add(AdminProof.DateHeader, when.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add(AdminProof.SignatureHeader,
                Convert.ToBase64String(signer.Sign(AdminProof.SigningInput(method.Method, request.RequestUri!.PathAndQuery, when))));
        }
        var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text.Length == 0 ? "{}" : text);
        return (response.StatusCode, document.RootElement.Clone(), response);
    }

    private Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> AsOperator(HttpMethod method, string path) =>
        SendAsync(method, path, _operatorKey);

    private static string ErrorOf(JsonElement body) => body.GetProperty("error").GetString()!;

    [Fact]
    public async Task RequestsWithoutAValidCredential_AreRefused401_AndAGrantThatDoesNotCoverThem403()
    {
        var room = $"room-{Guid.NewGuid():N}";
        var none = await SendAsync(HttpMethod.Get, "v1/rooms");
        Assert.Equal(HttpStatusCode.Unauthorized, none.Status);
        Assert.Contains("Bearer", none.Response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Contains("no credential", ErrorOf(none.Body), StringComparison.Ordinal);

        var wrongKey = await SendAsync(HttpMethod.Get, "v1/rooms", _operatorKey + "x");
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.Status);
        Assert.Equal("the operator key is not valid", ErrorOf(wrongKey.Body));
        var kick = await SendAsync(HttpMethod.Delete, $"v1/rooms/{room}/members/1", "not-the-key-at-all");
        Assert.Equal(HttpStatusCode.Unauthorized, kick.Status);

        var (adminId, adminGrant) = Member("*", g => g with { Admin = true });
        var unsigned = await SendAsync(HttpMethod.Get, "v1/rooms", adminGrant);
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.Status);
        Assert.Contains("Wzp-Identity", ErrorOf(unsigned.Body), StringComparison.Ordinal);

        // A grant copied from its owner is useless: the thief's key cannot sign for the owner's identity.
        using var thief = Identity.Generate();
        var stolen = await SendAsync(HttpMethod.Get, "v1/rooms", adminGrant, thief);
        Assert.Equal(HttpStatusCode.Unauthorized, stolen.Status);
        Assert.Contains($"issued to identity {adminId.Fingerprint}", ErrorOf(stolen.Body), StringComparison.Ordinal);

        var stale = await SendAsync(HttpMethod.Get, "v1/rooms", adminGrant, adminId, DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeSeconds());
        Assert.Equal(HttpStatusCode.Unauthorized, stale.Status);
        Assert.Contains("Wzp-Date", ErrorOf(stale.Body), StringComparison.Ordinal);

        var (memberId, memberGrant) = Member("*");
        var notAdmin = await SendAsync(HttpMethod.Get, "v1/rooms", memberGrant, memberId);
        Assert.Equal(HttpStatusCode.Forbidden, notAdmin.Status);
        Assert.Equal("the grant has no 'admin'", ErrorOf(notAdmin.Body));

        var (otherRoomId, otherRoomGrant) = Member("other-room", g => g with { Admin = true });
        var elsewhere = await SendAsync(HttpMethod.Delete, $"v1/rooms/{room}/members/1", otherRoomGrant, otherRoomId);
        Assert.Equal(HttpStatusCode.Forbidden, elsewhere.Status);
        Assert.Contains("is for room 'other-room'", ErrorOf(elsewhere.Body), StringComparison.Ordinal);
        var listing = await SendAsync(HttpMethod.Get, "v1/rooms", otherRoomGrant, otherRoomId);
        Assert.Equal(HttpStatusCode.Forbidden, listing.Status);

        var admitted = await SendAsync(HttpMethod.Get, "v1/rooms", adminGrant, adminId);
        Assert.Equal(HttpStatusCode.OK, admitted.Status);
    }

    [Theory]
    [InlineData("DELETE", "v1/rooms/ROOM/members/0", "the slot must be a number from 1 to 65535, not '0'")]
    [InlineData("DELETE", "v1/rooms/ROOM/members/70000", "the slot must be a number from 1 to 65535, not '70000'")]
    [InlineData("POST", "v1/rooms/ROOM/members/abc/mute", "the slot must be a number from 1 to 65535, not 'abc'")]
    [InlineData("GET", "v1/rooms/bad%01room/members", "the room name must be 1 to 128 characters without control characters")]
    public async Task BadInput_IsRefused400WithAMessage(string method, string path, string expected)
    {
        var result = await AsOperator(new HttpMethod(method), path.Replace("ROOM", $"room-{Guid.NewGuid():N}", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.BadRequest, result.Status);
        Assert.Equal(expected, ErrorOf(result.Body));
    }

    [Fact]
    public async Task Lists_ShowTheRoomsMembersGatewaysAndFlagsAsTheyAre()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (aliceId, aliceToken) = Member(room, g => g with { Name = "Alice" });
        var (bobId, bobToken) = Member(room, g => g with { Publish = false });
        var alice = await harness.JoinAsync(g1, room, "a", token: aliceToken, identity: aliceId);
        var bob = await harness.JoinAsync(g2, room, "b", token: bobToken, identity: bobId);
        await Eventually.True(() => alice.Others.Count == 1 && bob.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");
        var muted = await AsOperator(HttpMethod.Post, $"v1/rooms/{room}/members/{alice.Slot}/mute");
        Assert.Equal(HttpStatusCode.OK, muted.Status);

        JsonElement listed = default;
        await Eventually.True(async () =>
        {
            var rooms = await AsOperator(HttpMethod.Get, "v1/rooms");
            Assert.Equal(HttpStatusCode.OK, rooms.Status);
            listed = rooms.Body.GetProperty("rooms").EnumerateArray().FirstOrDefault(r => r.GetProperty("room").GetString() == room);
            return listed.ValueKind == JsonValueKind.Object;
        }, TimeSpan.FromSeconds(10), "the room is listed");
        var stamp = await fixture.Client.GetGrain<IRoomGrain>(room).GetStamp();
        Assert.Equal(2, listed.GetProperty("memberCount").GetInt32());
        Assert.Equal(stamp.Epoch, listed.GetProperty("epoch").GetInt64());
        Assert.Equal(new[] { g1.Options.GatewayId, g2.Options.GatewayId }.Order(StringComparer.Ordinal),
            listed.GetProperty("gateways").EnumerateArray().Select(g => g.GetString()!));
        Assert.InRange(listed.GetProperty("ageSeconds").GetInt64(), 0, 600);

        var members = await AsOperator(HttpMethod.Get, $"v1/rooms/{room}/members");
        Assert.Equal(HttpStatusCode.OK, members.Status);
        var bySlot = members.Body.GetProperty("members").EnumerateArray().ToDictionary(m => m.GetProperty("slot").GetInt32());
        Assert.Equal([alice.Slot, bob.Slot], bySlot.Keys.Order());
        var a = bySlot[alice.Slot];
        Assert.Equal(aliceId.Fingerprint.ToString(), a.GetProperty("fingerprint").GetString());
        Assert.Equal("Alice", a.GetProperty("alias").GetString());
        Assert.Equal(g1.Options.GatewayId, a.GetProperty("gateway").GetString());
        Assert.True(a.GetProperty("muted").GetBoolean());
        Assert.False(a.GetProperty("listener").GetBoolean());
        var b = bySlot[bob.Slot];
        Assert.Equal(bobId.Fingerprint.ToString(), b.GetProperty("fingerprint").GetString());
        Assert.Equal(g2.Options.GatewayId, b.GetProperty("gateway").GetString());
        Assert.False(b.GetProperty("muted").GetBoolean());
        Assert.True(b.GetProperty("listener").GetBoolean());
        Assert.Equal(JsonValueKind.String, b.GetProperty("grantExpires").ValueKind);

        var missing = await AsOperator(HttpMethod.Get, $"v1/rooms/never-{Guid.NewGuid():N}/members");
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Contains("is not open", ErrorOf(missing.Body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kick_ThroughTheApi_RemovesTheMemberOnItsGateway_WhichIsRefusedOnRejoin()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (stayId, stayToken) = Member(room);
        var (goId, goToken) = Member(room);
        var stay = await harness.JoinAsync(g1, room, "stay", token: stayToken, identity: stayId);
        var go = await harness.JoinAsync(g2, room, "go", token: goToken, identity: goId);
        await Eventually.True(() => stay.Others.Count == 1 && go.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        var kicked = await AsOperator(HttpMethod.Delete, $"v1/rooms/{room}/members/{go.Slot}");
        Assert.Equal(HttpStatusCode.OK, kicked.Status);
        Assert.Equal("kicked", kicked.Body.GetProperty("action").GetString());
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => go.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Kicked, failure.Code);
        await Eventually.True(() => stay.Others.Count == 0, TimeSpan.FromSeconds(10), "the other member sees it gone");
        Assert.Equal(ClientState.Joined, stay.State);

        var again = await Assert.ThrowsAnyAsync<WzpClientException>(() => harness.JoinAsync(g2, room, "go", token: goToken, identity: goId));
        Assert.Contains("kicked", again.Message, StringComparison.Ordinal);
        var twice = await AsOperator(HttpMethod.Delete, $"v1/rooms/{room}/members/{go.Slot}");
        Assert.Equal(HttpStatusCode.NotFound, twice.Status);
        Assert.Equal($"room '{room}' has no member in slot {go.Slot}", ErrorOf(twice.Body));
    }

    [Fact]
    public async Task MuteAndUnmute_ThroughTheApi_StopAndRestoreAMembersMedia()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync(configure: RequireGrants);
        var g2 = await harness.StartGatewayAsync(configure: RequireGrants);
        var room = $"room-{Guid.NewGuid():N}";
        var (speakerId, speakerToken) = Member(room);
        var (hearerId, hearerToken) = Member(room);
        var speaker = await harness.JoinAsync(g1, room, "speaker", token: speakerToken, identity: speakerId);
        var hearer = await harness.JoinAsync(g2, room, "hearer", token: hearerToken, identity: hearerId);
        await Eventually.True(() => speaker.Others.Count == 1 && hearer.Others.Count == 1, TimeSpan.FromSeconds(10), "both list each other");

        Assert.Equal(HttpStatusCode.OK, (await AsOperator(HttpMethod.Post, $"v1/rooms/{room}/members/{speaker.Slot}/mute")).Status);
        await Eventually.True(() => hearer.Others.Single().Muted, TimeSpan.FromSeconds(10), "the hearer sees it muted");
        for (var i = 0; i < 5; i++) Assert.True(speaker.TrySend(Header((ushort)i), "muted"u8));
        await Eventually.True(() => g1.Counters.Drops(GatewayDrop.Muted) == 5, TimeSpan.FromSeconds(10), "its gateway drops its media");

        Assert.Equal(HttpStatusCode.OK, (await AsOperator(HttpMethod.Post, $"v1/rooms/{room}/members/{speaker.Slot}/unmute")).Status);
        await Eventually.True(() => !hearer.Others.Single().Muted, TimeSpan.FromSeconds(10), "the hearer sees it unmuted");
        await using var atHearer = hearer.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(speaker.TrySend(Header(100), "heard"u8));
        Assert.True(await atHearer.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("heard"u8.ToArray(), atHearer.Current.Payload.ToArray());
    }

    [Fact]
    public async Task Close_ThroughTheApi_RemovesEveryMemberWithRoomClosed_AndTheRoomReopensFresh()
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
        // A kick before the close: the reopened room forgets it.
        Assert.Equal(HttpStatusCode.OK, (await AsOperator(HttpMethod.Delete, $"v1/rooms/{room}/members/{b.Slot}")).Status);
        await Eventually.True(() => a.Others.Count == 0, TimeSpan.FromSeconds(10), "b is gone");

        var closed = await AsOperator(HttpMethod.Delete, $"v1/rooms/{room}");
        Assert.Equal(HttpStatusCode.OK, closed.Status);
        Assert.Equal(1, closed.Body.GetProperty("affected").GetInt32());
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => a.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.RoomClosed, failure.Code);
        Assert.Equal(HttpStatusCode.NotFound, (await AsOperator(HttpMethod.Get, $"v1/rooms/{room}/members")).Status);

        var back = await harness.JoinAsync(g2, room, "b", token: bToken, identity: bId);
        Assert.Equal(ClientState.Joined, back.State);
    }

    private static MediaHeader Header(ushort sequence) =>
        new(false, false, CodecId.Opus24k, false, 0, sequence, (uint)(sequence * 20), 0, 0, 0, 0);
}
