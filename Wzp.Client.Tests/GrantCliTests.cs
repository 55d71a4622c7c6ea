using Wzp.Cli;
using Wzp.Client.Audio;
using Wzp.Protocol;
using Wzp.Protocol.Grants;

namespace Wzp.Client.Tests;

/// <summary><c>wzp grant key new</c> and <c>wzp grant issue</c> through the command's entry point.</summary>
public sealed class GrantCliTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("grant", "--help")]
    [InlineData("grant", "key", "new", "--help")]
    [InlineData("grant", "issue", "--help")]
    public async Task Help_ExplainsTheGrantCommands(params string[] args)
    {
        var result = await CliTests.RunAsync(args);
        Assert.Equal(ExitCodes.Success, result.Code);
        Assert.Contains("Usage:", result.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyNew_Ed25519_WritesAPrivateKeyFileAndItsPublicHalf_AndPrintsTheGatewaySetting()
    {
        var path = _dir.File("issuer.jwk");
        var result = await CliTests.RunAsync("grant", "key", "new", "--out", path, "--kid", "ops-2026");
        Assert.True(result.Code == 0, result.Error);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var key = GrantKey.Parse(File.ReadAllText(path));
        Assert.Equal(GrantKeyKind.Ed25519, key.Kind);
        Assert.Equal("ops-2026", key.KeyId);
        Assert.True(key.CanSign);
        using var pub = GrantKey.Parse(File.ReadAllText(path + ".pub"));
        Assert.False(pub.CanSign);
        Assert.Equal(key.PublicKey, pub.PublicKey);
        Assert.Contains($"Gateway__Grants__Ed25519PublicKeys__ops-2026={Convert.ToHexStringLower(key.PublicKey!)}", result.Out, StringComparison.Ordinal);

        var again = await CliTests.RunAsync("grant", "key", "new", "--out", path);
        Assert.Equal(ExitCodes.Failure, again.Code);
        Assert.Contains("already exists", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyNew_Hs256_WritesASecretFile_AndPrintsTheGatewaySetting()
    {
        var path = _dir.File("api.jwk");
        var result = await CliTests.RunAsync("grant", "key", "new", "--out", path, "--kind", "hs256", "--kid", "api-1");
        Assert.True(result.Code == 0, result.Error);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var key = GrantKey.Parse(File.ReadAllText(path));
        Assert.Equal(GrantKeyKind.Hs256, key.Kind);
        Assert.False(File.Exists(path + ".pub"));
        Assert.Contains($"Gateway__Grants__Hs256KeyFiles__api-1={path}", result.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hs256")]
    [InlineData("ed25519")]
    public async Task Issue_ForAnIdentityFile_PrintsAGrantTheGatewayAccepts(string kind)
    {
        var keyPath = _dir.File($"{kind}.jwk");
        Assert.Equal(0, (await CliTests.RunAsync("grant", "key", "new", "--out", keyPath, "--kind", kind, "--kid", "k1")).Code);
        Assert.Equal(0, (await CliTests.RunAsync("keygen", "--out", _dir.File("alice.id"))).Code);
        using var alice = SeedFile.Load(_dir.File("alice.id"));

        var result = await CliTests.RunAsync("grant", "issue", "--room", "team-*", "--identity", _dir.File("alice.id"), "--ttl", "10m",
            "--listen-only", "--admin", "--name", "Alice", "--key", keyPath);
        Assert.True(result.Code == 0, result.Error);
        var token = result.Out.Trim();
        using var key = GrantKey.Parse(File.ReadAllText(keyPath));
        using var checking = kind == "hs256" ? GrantKey.Parse(File.ReadAllText(keyPath)) : key.ToPublic();
        var check = new GrantValidator([checking]).Validate(token, alice.Fingerprint, "team-blue");
        Assert.True(check.Succeeded, check.Failure);
        var grant = check.Grant!;
        Assert.Equal("Alice", grant.Name);
        Assert.False(grant.Publish);
        Assert.True(grant.Subscribe);
        Assert.True(grant.Admin);
        Assert.Equal(TimeSpan.FromMinutes(10), grant.Expires - grant.NotBefore);
    }

    [Fact]
    public async Task Issue_ByFingerprint_DefaultsToAnHourOfSpeakingAndListening()
    {
        var keyPath = _dir.File("k.jwk");
        Assert.Equal(0, (await CliTests.RunAsync("grant", "key", "new", "--out", keyPath, "--kid", "k")).Code);
        using var member = Identity.Generate();
        var result = await CliTests.RunAsync("grant", "issue", "--room", "standup", "--fingerprint", member.Fingerprint.ToString(), "--key", keyPath);
        Assert.True(result.Code == 0, result.Error);
        using var key = GrantKey.Parse(File.ReadAllText(keyPath + ".pub"));
        var grant = new GrantValidator([key]).Validate(result.Out.Trim(), member.Fingerprint, "standup").Grant!;
        Assert.Equal(TimeSpan.FromHours(1), grant.Expires - grant.NotBefore);
        Assert.True(grant.Publish && grant.Subscribe && !grant.Admin);
        Assert.Null(grant.Name);
    }

    [Theory]
    [InlineData("neither --fingerprint nor --identity", "grant", "issue", "--room", "r", "--key", "KEY")]
    [InlineData("both", "grant", "issue", "--room", "r", "--key", "KEY", "--fingerprint", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", "--identity", "x")]
    [InlineData("a bad ttl", "grant", "issue", "--room", "r", "--key", "KEY", "--fingerprint", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", "--ttl", "soon")]
    [InlineData("a bad room", "grant", "issue", "--room", "a*b", "--key", "KEY", "--fingerprint", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384")]
    [InlineData("a bad kind", "grant", "key", "new", "--out", "KEY", "--kind", "rsa")]
    public async Task BadArguments_AreUsageErrors(string why, params string[] args)
    {
        var keyPath = _dir.File("k.jwk");
        var result = await CliTests.RunAsync(args.Select(a => a == "KEY" ? keyPath : a).ToArray());
        Assert.True(result.Code == ExitCodes.Usage, $"{why}: exit {result.Code} {result.Error}");
        Assert.StartsWith("wzp: ", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Issue_WithThePublicKeyFile_FailsSayingSo()
    {
        var keyPath = _dir.File("k.jwk");
        Assert.Equal(0, (await CliTests.RunAsync("grant", "key", "new", "--out", keyPath)).Code);
        var result = await CliTests.RunAsync("grant", "issue", "--room", "r", "--fingerprint", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", "--key", keyPath + ".pub");
        Assert.Equal(ExitCodes.Failure, result.Code);
        Assert.Contains("only a public key", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("admin", "--help")]
    [InlineData("admin", "rooms", "--help")]
    [InlineData("admin", "kick", "--help")]
    [InlineData("admin", "mute", "--help")]
    public async Task Help_ExplainsTheAdminCommands(params string[] args)
    {
        var result = await CliTests.RunAsync(args);
        Assert.Equal(ExitCodes.Success, result.Code);
        Assert.Contains("Usage:", result.Out, StringComparison.Ordinal);
        Assert.Contains("--key-file", result.Out, StringComparison.Ordinal);
        Assert.Contains("--grant", result.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a slot of 0", "admin", "kick", "r", "0")]
    [InlineData("no slot", "admin", "mute", "r")]
    [InlineData("a grant without identity", "admin", "rooms", "--grant", "a.b.c")]
    [InlineData("a bad url", "admin", "rooms", "--api", "ftp://x")]
    public async Task Admin_BadArguments_AreUsageErrors(string why, params string[] args)
    {
        var result = await CliTests.RunAsync(args);
        Assert.True(result.Code == ExitCodes.Usage, $"{why}: exit {result.Code} {result.Error}");
        Assert.StartsWith("wzp: ", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_ApiUnreachable_ExitsOneSayingSo()
    {
        var port = RelayFixture.FreePort(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        var keyFile = _dir.File("admin.key");
        File.WriteAllText(keyFile, "0123456789abcdef0123\n");
        var result = await CliTests.RunAsync("admin", "rooms", "--api", $"http://127.0.0.1:{port}/", "--key-file", keyFile);
        Assert.Equal(ExitCodes.Failure, result.Code);
        Assert.Contains("is unreachable", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Relay_GrantKeySetWithoutRequireGrants_IsAUsageError()
    {
        var result = await CliTests.RunAsync("relay", "--grant-keys", _dir.File("keys.json"), "--data-dir", _dir.File("relay"));
        Assert.Equal(ExitCodes.Usage, result.Code);
        Assert.Contains("only used with --require-grants", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Relay_RequireGrantsWithoutAKey_IsAUsageError()
    {
        var result = await CliTests.RunAsync("relay", "--require-grants", "--data-dir", _dir.File("relay"));
        Assert.Equal(ExitCodes.Usage, result.Code);
        Assert.Contains("--grant-key", result.Error, StringComparison.Ordinal);
    }
}

/// <summary>A <c>wzp relay --require-grants</c> process with one Ed25519 and one HS256 issuer key.</summary>
public sealed class GrantedRelayFixture : RelayFixture
{
    public string Ed25519KeyFile => Folder.File("issuer.jwk");

    public string Hs256KeyFile => Folder.File("api.jwk");

    protected override async Task<string[]> ExtraArgumentsAsync()
    {
        Assert.Equal(0, (await CliTests.RunAsync("grant", "key", "new", "--out", Ed25519KeyFile, "--kid", "issuer-1")).Code);
        Assert.Equal(0, (await CliTests.RunAsync("grant", "key", "new", "--out", Hs256KeyFile, "--kind", "hs256", "--kid", "api-1")).Code);
        // The gateway gets only the public half of the Ed25519 key.
        return ["--require-grants", "--grant-key", Ed25519KeyFile + ".pub", "--grant-key", Hs256KeyFile];
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GrantedRelayCollection : ICollectionFixture<GrantedRelayFixture>
{
    public const string Name = "granted-relay";
}

/// <summary>End to end through <c>wzp relay --require-grants</c>.</summary>
[Collection(GrantedRelayCollection.Name)]
public sealed class GrantedRelayTests(GrantedRelayFixture relay) : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<Identity> _identities = [];

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
        _dir.Dispose();
    }

    private WzpClientOptions Options(string room, string alias, string token, Identity? identity = null)
    {
        if (identity is null)
        {
            identity = Identity.Generate();
            _identities.Add(identity);
        }
        return new WzpClientOptions
        {
            Gateway = relay.Address,
            Identity = identity,
            Room = room,
            Alias = alias,
            Token = token,
            PinnedClusterFingerprint = relay.ClusterFingerprint,
            Reconnect = false,
        };
    }

    private static async Task<string> IssueAsync(string keyFile, string room, Fingerprint fingerprint, params string[] more)
    {
        var result = await CliTests.RunAsync(["grant", "issue", "--room", room, "--fingerprint", fingerprint.ToString(), "--key", keyFile, .. more]);
        Assert.True(result.Code == 0, result.Error);
        return result.Out.Trim();
    }

    [Fact]
    public async Task Relay_RequiringGrants_SaysSoAtStart()
    {
        // Printed right after the fingerprint line the fixture waits for.
        await Eventually.TrueAsync(() => relay.Output.Contains("grants required: members need a grant signed by issuer-1, api-1", StringComparison.Ordinal),
            $"the relay says grants are required: {relay.Output}");
    }

    [Fact]
    public async Task TwoMembersWithGrantsOfEitherKey_JoinAndHearEachOther_UnderTheGrantedNames()
    {
        var room = "granted-" + Guid.NewGuid().ToString("N");
        var a = Options(room, "chosen-a", "");
        var b = Options(room, "", "");
        a.Token = await IssueAsync(relay.Ed25519KeyFile, room, a.Identity!.Fingerprint, "--name", "Alice");
        b.Token = await IssueAsync(relay.Hs256KeyFile, room, b.Identity!.Fingerprint);
        await using var alice = await WzpClient.ConnectAsync(a);
        await using var bob = await WzpClient.ConnectAsync(b);
        await Eventually.TrueAsync(() => alice.Others.Count == 1 && bob.Others.Count == 1, "both see each other");
        // The grant's name overrides the alias Alice asked for.
        Assert.Equal("Alice", Assert.Single(bob.Others).Alias);

        await using var atBob = bob.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(alice.TrySend(AudioTests.Header(1), "hello bob"u8));
        Assert.True(await atBob.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(alice.Slot, atBob.Current.Source);
        Assert.Equal("hello bob"u8.ToArray(), atBob.Current.Payload.ToArray());
    }

    [Fact]
    public async Task MemberWithoutAGrant_IsRefusedUnauthorized()
    {
        var e = await Assert.ThrowsAnyAsync<WzpClientException>(() => WzpClient.ConnectAsync(Options("no-grant", "x", "")));
        Assert.Equal(ErrorCodes.Unauthorized, CodeOf(e));
        Assert.Contains("no grant", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GrantStolenFromItsOwner_IsRefusedUnauthorized()
    {
        using var owner = Identity.Generate();
        var stolen = await IssueAsync(relay.Ed25519KeyFile, "stolen", owner.Fingerprint);
        var e = await Assert.ThrowsAnyAsync<WzpClientException>(() => WzpClient.ConnectAsync(Options("stolen", "thief", stolen)));
        Assert.Equal(ErrorCodes.Unauthorized, CodeOf(e));
        Assert.Contains($"issued to identity {owner.Fingerprint}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GrantForAnotherRoom_IsRefusedUnauthorized()
    {
        var options = Options("room-b", "x", "");
        options.Token = await IssueAsync(relay.Hs256KeyFile, "room-a", options.Identity!.Fingerprint);
        var e = await Assert.ThrowsAnyAsync<WzpClientException>(() => WzpClient.ConnectAsync(options));
        Assert.Equal(ErrorCodes.Unauthorized, CodeOf(e));
        Assert.Contains("is for room 'room-a', not 'room-b'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Listener_HearsTheRoom_ButItsDatagramsNeverReachAnyone()
    {
        var room = "listen-" + Guid.NewGuid().ToString("N");
        var s = Options(room, "speaker", "");
        var l = Options(room, "listener", "");
        s.Token = await IssueAsync(relay.Ed25519KeyFile, room, s.Identity!.Fingerprint);
        l.Token = await IssueAsync(relay.Ed25519KeyFile, room, l.Identity!.Fingerprint, "--listen-only");
        await using var speaker = await WzpClient.ConnectAsync(s);
        await using var listener = await WzpClient.ConnectAsync(l);
        await Eventually.TrueAsync(() => speaker.Others.Count == 1 && listener.Others.Count == 1, "both see each other");

        var heardBySpeaker = new List<MediaFrame>();
        using var stop = new CancellationTokenSource();
        var collecting = Task.Run(async () =>
        {
            await foreach (var frame in speaker.ReceiveAsync(stop.Token)) lock (heardBySpeaker) heardBySpeaker.Add(frame);
        });
        for (var i = 0; i < 20; i++) Assert.True(listener.TrySend(AudioTests.Header((ushort)i), "from the listener"u8));

        // The listener still hears: its downlink works while its uplink goes nowhere. The speaker's frame comes
        // after all of the listener's were sent, on the same gateway, so anything of theirs would be there by now.
        await using var atListener = listener.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(speaker.TrySend(AudioTests.Header(100), "from the speaker"u8));
        Assert.True(await atListener.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("from the speaker"u8.ToArray(), atListener.Current.Payload.ToArray());
        await stop.CancelAsync();
        await collecting.ContinueWith(_ => { }, TaskScheduler.Default);
        lock (heardBySpeaker) Assert.Empty(heardBySpeaker);
    }

    [Fact]
    public async Task Cli_JoinWithAnIssuedToken_Joins_AndWithoutOne_ExitsOneSayingUnauthorized()
    {
        var room = "cli-grant-" + Guid.NewGuid().ToString("N");
        Assert.Equal(0, (await CliTests.RunAsync("keygen", "--out", _dir.File("carol.id"))).Code);
        var issued = await CliTests.RunAsync("grant", "issue", "--room", room, "--identity", _dir.File("carol.id"), "--key", relay.Hs256KeyFile, "--name", "Carol");
        Assert.True(issued.Code == 0, issued.Error);
        string[] Join(params string[] more) =>
        [
            "join", room, "--gateway", relay.Address.ToString(), "--pin", relay.ClusterFingerprint.ToString(),
            "--identity", _dir.File("carol.id"), "--duration", "1", .. more,
        ];
        var joined = await CliTests.RunProcessAsync(Join("--token", issued.Out.Trim()));
        Assert.True(joined.Code == 0, $"exit {joined.Code}: {joined.Error}{joined.Out}");
        Assert.Contains($"joined '{room}'", joined.Out, StringComparison.Ordinal);

        var refused = await CliTests.RunProcessAsync(Join());
        Assert.Equal(ExitCodes.Failure, refused.Code);
        Assert.Contains("unauthorized", refused.Error, StringComparison.Ordinal);
        Assert.Contains("no grant", refused.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MemberWithoutSubscribe_ReceivesNothing_WhileOthersHearIt()
    {
        var room = "deaf-" + Guid.NewGuid().ToString("N");
        var s = Options(room, "speaker", "");
        var d = Options(room, "publisher-only", "");
        s.Token = await IssueAsync(relay.Hs256KeyFile, room, s.Identity!.Fingerprint);
        using (var key = GrantKey.Parse(File.ReadAllText(relay.Hs256KeyFile)))
        {
            // The CLI has no switch for it; an issuer built on the library can leave 'subscribe' out.
            d.Token = GrantIssuer.Issue(Grant.For(d.Identity!.Fingerprint, room, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5), key.KeyId) with { Subscribe = false }, key);
        }
        await using var speaker = await WzpClient.ConnectAsync(s);
        await using var deaf = await WzpClient.ConnectAsync(d);
        await Eventually.TrueAsync(() => speaker.Others.Count == 1 && deaf.Others.Count == 1, "both see each other");

        var heardByDeaf = 0;
        using var stop = new CancellationTokenSource();
        var collecting = Task.Run(async () =>
        {
            await foreach (var frame in deaf.ReceiveAsync(stop.Token)) Interlocked.Increment(ref heardByDeaf);
        });
        for (var i = 0; i < 20; i++) Assert.True(speaker.TrySend(AudioTests.Header((ushort)i), "to nobody"u8));
        // Its own media still reaches the speaker, after all of the speaker's frames went out through the same gateway.
        await using var atSpeaker = speaker.ReceiveAsync().GetAsyncEnumerator();
        Assert.True(deaf.TrySend(AudioTests.Header(1), "i can speak"u8));
        Assert.True(await atSpeaker.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("i can speak"u8.ToArray(), atSpeaker.Current.Payload.ToArray());
        await stop.CancelAsync();
        await collecting.ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Equal(0, Volatile.Read(ref heardByDeaf));
    }

    [Fact]
    public async Task Admin_KicksAMember_WhoIsToldKickedAndLeavesTheRoom()
    {
        var room = "kick-" + Guid.NewGuid().ToString("N");
        var a = Options(room, "admin", "");
        var m = Options(room, "member", "");
        a.Token = await IssueAsync(relay.Ed25519KeyFile, room, a.Identity!.Fingerprint, "--admin");
        m.Token = await IssueAsync(relay.Ed25519KeyFile, room, m.Identity!.Fingerprint);
        await using var admin = await WzpClient.ConnectAsync(a);
        await using var member = await WzpClient.ConnectAsync(m);
        await Eventually.TrueAsync(() => admin.Others.Count == 1 && member.Others.Count == 1, "both see each other");

        await admin.KickAsync(member.Slot);
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => member.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Kicked, failure.Code);
        Assert.Contains("an administrator removed this member", failure.Message, StringComparison.Ordinal);
        await Eventually.TrueAsync(() => admin.Others.Count == 0, "the admin sees the member gone");
        Assert.Equal(ClientState.Joined, admin.State);

        // Its grant is still valid, but the room refuses the identity while it stays open.
        var again = await Assert.ThrowsAnyAsync<WzpClientException>(() => WzpClient.ConnectAsync(m));
        Assert.Equal(ErrorCodes.Kicked, CodeOf(again));
        Assert.Contains("cannot rejoin while the room is open", again.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KickWithoutAnAdminGrant_ClosesTheSenderUnauthorized_AndRemovesNobody()
    {
        var room = "nokick-" + Guid.NewGuid().ToString("N");
        var a = Options(room, "a", "");
        var b = Options(room, "b", "");
        a.Token = await IssueAsync(relay.Hs256KeyFile, room, a.Identity!.Fingerprint);
        b.Token = await IssueAsync(relay.Hs256KeyFile, room, b.Identity!.Fingerprint);
        await using var alice = await WzpClient.ConnectAsync(a);
        await using var bob = await WzpClient.ConnectAsync(b);
        await Eventually.TrueAsync(() => alice.Others.Count == 1 && bob.Others.Count == 1, "both see each other");

        await bob.KickAsync(alice.Slot);
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => bob.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Unauthorized, failure.Code);
        Assert.Contains("'kick' needs a grant with 'admin'", failure.Message, StringComparison.Ordinal);
        await Eventually.TrueAsync(() => alice.Others.Count == 0, "bob is gone");
        Assert.Equal(ClientState.Joined, alice.State);
    }

    private string[] Admin(params string[] args) => ["admin", .. args, "--api", relay.AdminApi.ToString(), "--key-file", relay.AdminKeyFile];

    [Fact]
    public async Task Relay_SaysWhereItsAdministrationApiIs()
    {
        await Eventually.TrueAsync(() => relay.Output.Contains($"room administration API on {relay.AdminApi}", StringComparison.Ordinal),
            $"the relay says where its API is: {relay.Output}");
    }

    [Fact]
    public async Task Cli_Admin_ListsRoomsAndMembers_KicksAMember_AndSaysWhenTheSlotIsGone()
    {
        var room = "admin-cli-" + Guid.NewGuid().ToString("N");
        var s = Options(room, "speaker", "");
        var l = Options(room, "listener", "");
        s.Token = await IssueAsync(relay.Ed25519KeyFile, room, s.Identity!.Fingerprint, "--name", "Speaker");
        l.Token = await IssueAsync(relay.Hs256KeyFile, room, l.Identity!.Fingerprint, "--listen-only");
        await using var speaker = await WzpClient.ConnectAsync(s);
        await using var listener = await WzpClient.ConnectAsync(l);
        await Eventually.TrueAsync(() => speaker.Others.Count == 1 && listener.Others.Count == 1, "both see each other");
        Assert.True(speaker.Others.Single().Listener, "the member list marks the listener");

        // As a process, as an operator runs it.
        var rooms = await CliTests.RunProcessAsync(Admin("rooms"));
        Assert.True(rooms.Code == 0, $"exit {rooms.Code}: {rooms.Error}");
        var line = Assert.Single(rooms.Out.Split('\n'), row => row.StartsWith(room, StringComparison.Ordinal));
        Assert.Matches($@"^{room}\s+2\s+gateway-1\s+\d+\s+\d+s", line);

        var members = await CliTests.RunAsync(Admin("members", room));
        Assert.True(members.Code == 0, members.Error);
        Assert.Contains($"room '{room}': 2 members", members.Out, StringComparison.Ordinal);
        var listenerLine = Assert.Single(members.Out.Split('\n'), row => row.Contains(FingerprintOf(listener), StringComparison.Ordinal));
        Assert.Contains("listener", listenerLine, StringComparison.Ordinal);
        var speakerLine = Assert.Single(members.Out.Split('\n'), row => row.Contains(FingerprintOf(speaker), StringComparison.Ordinal));
        Assert.Contains("Speaker", speakerLine, StringComparison.Ordinal);

        var kick = await CliTests.RunProcessAsync(Admin("kick", room, listener.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(kick.Code == 0, $"exit {kick.Code}: {kick.Error}");
        Assert.Contains($"kicked slot {listener.Slot} of room '{room}'", kick.Out, StringComparison.Ordinal);
        var failure = await Assert.ThrowsAsync<GatewayErrorException>(() => listener.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(ErrorCodes.Kicked, failure.Code);
        await Eventually.TrueAsync(() => speaker.Others.Count == 0, "the speaker sees it gone");

        var again = await CliTests.RunAsync(Admin("kick", room, listener.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(ExitCodes.NotFound, again.Code);
        Assert.Contains($"room '{room}' has no member in slot {listener.Slot}", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_Admin_WithAWrongOperatorKey_ExitsThreeRefused()
    {
        var wrong = _dir.File("wrong.key");
        File.WriteAllText(wrong, "not-the-relays-key-0123456789\n");
        var result = await CliTests.RunAsync("admin", "rooms", "--api", relay.AdminApi.ToString(), "--key-file", wrong);
        Assert.Equal(ExitCodes.Refused, result.Code);
        Assert.Contains("refused (401", result.Error, StringComparison.Ordinal);
        Assert.Contains("the operator key is not valid", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_Admin_WithAnAdminGrantAndItsIdentity_MutesAMember_AndWithoutAdminIsRefused()
    {
        var room = "admin-grant-" + Guid.NewGuid().ToString("N");
        var m = Options(room, "member", "");
        m.Token = await IssueAsync(relay.Ed25519KeyFile, room, m.Identity!.Fingerprint);
        await using var member = await WzpClient.ConnectAsync(m);
        Assert.Equal(0, (await CliTests.RunAsync("keygen", "--out", _dir.File("ops.id"))).Code);
        var adminGrant = await CliTests.RunAsync("grant", "issue", "--room", room, "--identity", _dir.File("ops.id"), "--key", relay.Ed25519KeyFile, "--admin");
        var plainGrant = await CliTests.RunAsync("grant", "issue", "--room", room, "--identity", _dir.File("ops.id"), "--key", relay.Ed25519KeyFile);
        string[] WithGrant(string grant, params string[] args) =>
            ["admin", .. args, "--api", relay.AdminApi.ToString(), "--grant", grant.Trim(), "--identity", _dir.File("ops.id")];

        var muted = await CliTests.RunAsync(WithGrant(adminGrant.Out, "mute", room, member.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(muted.Code == 0, muted.Error);
        Assert.Contains($"muted slot {member.Slot} of room '{room}'", muted.Out, StringComparison.Ordinal);
        await Eventually.TrueAsync(() => member.Members.Single(x => x.Slot == member.Slot).Muted, "the member sees itself muted");

        var refused = await CliTests.RunAsync(WithGrant(plainGrant.Out, "unmute", room, member.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(ExitCodes.Refused, refused.Code);
        Assert.Contains("the grant has no 'admin'", refused.Error, StringComparison.Ordinal);
        // Listing every room needs a grant for every room.
        var listing = await CliTests.RunAsync(WithGrant(adminGrant.Out, "rooms"));
        Assert.Equal(ExitCodes.Refused, listing.Code);
        Assert.Contains($"is for room '{room}'", listing.Error, StringComparison.Ordinal);
    }

    private static string FingerprintOf(WzpClient client) => client.Members.Single(x => x.Slot == client.Slot).Fingerprint.ToString();

    private static string? CodeOf(Exception e) => e switch
    {
        GatewayErrorException g => g.Code,
        HandshakeFailedException h => h.Code,
        _ => e.InnerException is { } inner ? CodeOf(inner) : null,
    };
}
