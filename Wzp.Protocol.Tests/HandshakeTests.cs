namespace Wzp.Protocol.Tests;

public sealed class HandshakeTests
{
    [Fact]
    public void Handshake_RandomKeys_BothSidesAgreeAndMediaFlowsBothWays()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        Assert.Equal(client.Sas, gateway.Sas);
        Assert.Equal("room", gateway.Room);
        Assert.Equal(peers.Credential, client.Credential);
        var header = new MediaHeader(false, false, CodecId.Opus24k, false, 0, 1, 20, 0, 0, 0, 0).ToArray();
        var datagram = new byte[MediaDatagram.MaxSize];
        var plaintext = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(client.Keys, 0, header, "up"u8, datagram);
        Assert.Equal(DropReason.None, MediaDatagram.Open(gateway.Keys, datagram.AsSpan(0, n), plaintext, out var length, out _));
        Assert.Equal("up"u8.ToArray(), plaintext[..length]);
        n = MediaDatagram.Seal(gateway.Keys, 9, header, "down"u8, datagram);
        Assert.Equal(DropReason.None, MediaDatagram.Open(client.Keys, datagram.AsSpan(0, n), plaintext, out length, out var source));
        Assert.Equal(9, source);
        Assert.Equal("down"u8.ToArray(), plaintext[..length]);
    }

    [Fact]
    public void Hello_BadSignature_IsRefusedWithBadSignature()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        var forged = client.Hello with { Room = "another-room" }; // signature covers the room
        var result = gateway.OnHello(forged);
        Assert.False(result.Succeeded);
        Assert.Equal(ErrorCodes.BadSignature, result.Failure!.Code);
    }

    [Fact]
    public void Hello_WrongVersion_IsRefusedWithUnsupportedVersion()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        Assert.Equal(ErrorCodes.UnsupportedVersion, gateway.OnHello(client.Hello with { Version = 1 }).Failure!.Code);
        using var other = peers.GatewaySide();
        Assert.Equal(ErrorCodes.UnsupportedVersion, other.OnHello(client.Hello with { Version = 3 }).Failure!.Code);
    }

    [Fact]
    public void Hello_Version1OnTheWire_WithItsToken_IsRefusedWithUnsupportedVersion()
    {
        // A version-1 hello as such a client writes it: the token travels in the hello.
        var v1 = """{"type":"hello","version":1,"identityKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ephemeralKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","room":"room","alias":"","token":"secret","signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}"""u8;
        var hello = Assert.IsType<Hello>(ControlCodec.Decode(v1));
        using var peers = new TestPeers();
        using var gateway = peers.GatewaySide();
        Assert.Equal(ErrorCodes.UnsupportedVersion, gateway.OnHello(hello).Failure!.Code);
    }

    [Fact]
    public void Hello_CarriesNoToken_TheConfirmDoesUnderItsMac()
    {
        using var peers = new TestPeers();
        using var client = new ClientHandshake(Identity.Generate(), "room", "alias", "grant-7f3a", peers.Cluster.PublicKey, peers.Clock);
        Assert.DoesNotContain("grant-7f3a", System.Text.Encoding.UTF8.GetString(ControlCodec.SerializeBody(client.Hello)), StringComparison.Ordinal);
        using var gateway = new GatewayHandshake(peers.Gateway, peers.Credential, new GatewayHandshakeOptions { TokenValidator = t => t == "grant-7f3a" }, peers.Clock);
        var session = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        Assert.Equal("grant-7f3a", session.Confirm.Token);
        Assert.True(gateway.OnConfirm(session.Confirm).Succeeded);
    }

    [Fact]
    public void Confirm_RefusedToken_IsUnauthorized_AndAnAlteredTokenFailsTheMac()
    {
        using var peers = new TestPeers();
        var validator = new GatewayHandshakeOptions { TokenValidator = t => t == "secret" };
        using var client = peers.Client();
        using var gateway = new GatewayHandshake(peers.Gateway, peers.Credential, validator, peers.Clock);
        var session = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        Assert.Equal(ErrorCodes.Unauthorized, gateway.OnConfirm(session.Confirm).Failure!.Code);

        // A man in the middle who swaps in another token breaks the MAC over it.
        using var client2 = peers.Client();
        using var gateway2 = new GatewayHandshake(peers.Gateway, peers.Credential, validator, peers.Clock);
        var session2 = client2.OnWelcome(gateway2.OnHello(client2.Hello).Value!).Value!;
        Assert.Equal(ErrorCodes.BadMac, gateway2.OnConfirm(session2.Confirm with { Token = "secret" }).Failure!.Code);
    }

    [Fact]
    public void Confirm_WrongMac_IsRefusedWithBadMac()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        var session = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        var mac = session.Confirm.Mac.ToArray();
        mac[0] ^= 0x80;
        var result = gateway.OnConfirm(new Confirm(mac, ""));
        Assert.False(result.Succeeded);
        Assert.Equal(ErrorCodes.BadMac, result.Failure!.Code);
    }

    [Fact]
    public void Hello_ReplayedOnSecondGatewaySession_NeverYieldsAConfirmedMember()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var first = peers.GatewaySide();
        var session = client.OnWelcome(first.OnHello(client.Hello).Value!).Value!;
        Assert.True(first.OnConfirm(session.Confirm).Succeeded);

        // An eavesdropper replays the same hello and the confirm it saw to a second gateway session.
        using var second = peers.GatewaySide();
        Assert.True(second.OnHello(client.Hello).Succeeded);
        var replayed = second.OnConfirm(session.Confirm);
        Assert.False(replayed.Succeeded);
        Assert.Equal(ErrorCodes.BadMac, replayed.Failure!.Code);
    }

    [Fact]
    public void Welcome_AllZeroX25519_IsRefused()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        var welcome = gateway.OnHello(client.Hello).Value!;
        // A gateway that signs a low-order ephemeral key (correctly, over the real transcript) still gets nowhere.
        var zero = new byte[32];
        var transcript = HandshakeKeys.TranscriptHash(client.HelloHash, client.Hello.Signature, peers.Credential, zero, welcome.Nonce);
        var signature = peers.Gateway.Sign(HandshakeKeys.Labelled(HandshakeKeys.WelcomeLabel, transcript));
        var result = client.OnWelcome(welcome with { EphemeralKey = zero, Signature = signature });
        Assert.False(result.Succeeded);
        Assert.Contains("key agreement", result.Failure!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hello_AllZeroX25519_NeverYieldsASession()
    {
        using var peers = new TestPeers();
        using var identity = Identity.Generate();
        // A signed hello whose ephemeral key is a low-order point.
        var zero = new byte[32];
        var nonce = new byte[32];
        var helloHash = HandshakeKeys.HelloHash(HelloLimits.Version, identity.PublicKey, zero, nonce, "room", "");
        var hello = new Hello(HelloLimits.Version, identity.PublicKey, zero, nonce, "room", "", identity.Sign(HandshakeKeys.Labelled(HandshakeKeys.HelloLabel, helloHash)));
        using var gateway = peers.GatewaySide();
        Assert.True(gateway.OnHello(hello).Succeeded);
        var result = gateway.OnConfirm(new Confirm(new byte[32], ""));
        Assert.False(result.Succeeded);
    }

    [Fact]
    public void Welcome_ExpiredCredential_IsRefused()
    {
        using var peers = new TestPeers();
        var expired = GatewayCredential.Issue(peers.Cluster, "gw-old", peers.Gateway.PublicKey,
            peers.Clock.GetUtcNow().AddDays(-10), peers.Clock.GetUtcNow().AddSeconds(-1));
        using var client = peers.Client();
        using var gateway = new GatewayHandshake(peers.Gateway, expired, null, peers.Clock);
        var result = client.OnWelcome(gateway.OnHello(client.Hello).Value!);
        Assert.False(result.Succeeded);
        Assert.Equal(ErrorCodes.Unauthorized, result.Failure!.Code);
        Assert.Contains(nameof(CredentialStatus.Expired), result.Failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Welcome_CredentialOfAnotherCluster_IsRefused()
    {
        using var peers = new TestPeers();
        using var otherCluster = Identity.Generate();
        var foreign = GatewayCredential.Issue(otherCluster, "gw-test", peers.Gateway.PublicKey,
            peers.Clock.GetUtcNow().AddHours(-1), peers.Clock.GetUtcNow().AddDays(1));
        using var client = peers.Client(); // pins peers.Cluster
        using var gateway = new GatewayHandshake(peers.Gateway, foreign, null, peers.Clock);
        var result = client.OnWelcome(gateway.OnHello(client.Hello).Value!);
        Assert.False(result.Succeeded);
        Assert.Contains(nameof(CredentialStatus.WrongCluster), result.Failure!.Message, StringComparison.Ordinal);

        // Claiming the pinned cluster key with another cluster's signature fails the signature check instead.
        var claimed = foreign with { ClusterKey = peers.Cluster.PublicKey };
        Assert.Equal(CredentialStatus.BadSignature, claimed.Verify(peers.Cluster.PublicKey, peers.Clock.GetUtcNow()));
    }

    [Fact]
    public void Welcome_SignatureOverADifferentTranscript_IsRefused()
    {
        using var peers = new TestPeers();
        using var victim = peers.Client();
        using var other = peers.Client();
        using var gateway = peers.GatewaySide();
        // A welcome genuinely signed by the gateway, but for another client's hello.
        var welcomeForOther = gateway.OnHello(other.Hello).Value!;
        var result = victim.OnWelcome(welcomeForOther);
        Assert.False(result.Succeeded);
        Assert.Equal(ErrorCodes.BadSignature, result.Failure!.Code);
    }

    [Fact]
    public void Confirm_BeforeHello_AndSecondHello_AreRefused()
    {
        using var peers = new TestPeers();
        using var client = peers.Client();
        using var gateway = peers.GatewaySide();
        Assert.Equal(ErrorCodes.BadRequest, gateway.OnConfirm(new Confirm(new byte[32], "")).Failure!.Code);
        using var gateway2 = peers.GatewaySide();
        Assert.True(gateway2.OnHello(client.Hello).Succeeded);
        Assert.Equal(ErrorCodes.BadRequest, gateway2.OnHello(client.Hello).Failure!.Code);
    }

    [Fact]
    public void Rekey_ForgedSignatureOrWrongEpoch_IsRefusedAndKeysStay()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var rekey = gateway.Rekeys.Request()!;
        var forged = rekey with { Signature = rekey.Signature.Select((b, i) => i == 0 ? (byte)(b ^ 1) : b).ToArray() };
        Assert.Equal(ErrorCodes.BadSignature, client.Rekeys.OnRekey(forged).Failure!.Code);
        Assert.Equal(ErrorCodes.BadRequest, client.Rekeys.OnRekey(rekey with { Epoch = 5 }).Failure!.Code);
        Assert.Null(client.Keys.Next);
        var ack = client.Rekeys.OnRekey(rekey).Value!;
        var badAck = ack with { Mac = new byte[32] };
        Assert.Equal(ErrorCodes.BadMac, gateway.Rekeys.OnAck(badAck).Failure!.Code);
        Assert.Equal(0u, gateway.Keys.Current.Number);
    }

    [Fact]
    public void Rekey_RequestsDuringARekey_CoalesceIntoOneMore()
    {
        using var peers = new TestPeers();
        var (client, gateway) = peers.Connect();
        var first = gateway.Rekeys.Request()!;
        Assert.Null(gateway.Rekeys.Request());
        Assert.Null(gateway.Rekeys.Request());
        var ack = client.Rekeys.OnRekey(first).Value!;
        var completion = gateway.Rekeys.OnAck(ack).Value!;
        Assert.Equal(1u, completion.Done.Epoch);
        Assert.NotNull(completion.Next);
        Assert.Equal(2u, completion.Next!.Epoch);
        Assert.Null(client.Rekeys.OnRekeyDone(completion.Done));
        var second = gateway.Rekeys.OnAck(client.Rekeys.OnRekey(completion.Next).Value!).Value!;
        Assert.Null(second.Next); // the two extra requests became exactly one more rekey
        Assert.Null(client.Rekeys.OnRekeyDone(second.Done));
        Assert.Equal(2u, client.Keys.Current.Number);
        Assert.Equal(2u, gateway.Keys.Current.Number);
    }

    [Fact]
    public void Link_AcceptFromAnotherCluster_IsRefused()
    {
        using var peers = new TestPeers();
        using var other = Identity.Generate();
        using var gatewayB = Identity.Generate();
        var foreignB = GatewayCredential.Issue(other, "gw-b", gatewayB.PublicKey, peers.Clock.GetUtcNow().AddHours(-1), peers.Clock.GetUtcNow().AddDays(1));
        using var offerer = new LinkOfferer(peers.Gateway, peers.Credential, peers.Clock);
        var refused = LinkAcceptor.Accept(gatewayB, foreignB, offerer.Offer, 1, 2, peers.Clock);
        Assert.Equal(ErrorCodes.Unauthorized, refused.Failure!.Code);
    }

    [Theory]
    [InlineData(-61, false)]
    [InlineData(-60, true)]
    [InlineData(60, true)]
    [InlineData(61, false)]
    public void LinkOffer_IssuedOutsideSixtySecondsOfTheAcceptorsClock_IsRefused(int offerAgeSeconds, bool accepted)
    {
        using var peers = new TestPeers();
        using var gatewayB = Identity.Generate();
        var credentialB = GatewayCredential.Issue(peers.Cluster, "gw-b", gatewayB.PublicKey, peers.Clock.GetUtcNow().AddHours(-1), peers.Clock.GetUtcNow().AddDays(1));
        var offererClock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(peers.Clock.GetUtcNow().AddSeconds(-offerAgeSeconds));
        using var offerer = new LinkOfferer(peers.Gateway, peers.Credential, offererClock);
        var result = LinkAcceptor.Accept(gatewayB, credentialB, offerer.Offer, 1, 2, peers.Clock, new LinkOfferNonces());
        Assert.Equal(accepted, result.Succeeded);
        if (!accepted) Assert.Equal(ErrorCodes.Unauthorized, result.Failure!.Code);
        result.Value?.Session.Dispose();
    }

    [Fact]
    public void LinkOffer_ReplayedWithinTheWindow_IsRefused_AndItsIssuedAtCannotBeRewritten()
    {
        using var peers = new TestPeers();
        using var gatewayB = Identity.Generate();
        var credentialB = GatewayCredential.Issue(peers.Cluster, "gw-b", gatewayB.PublicKey, peers.Clock.GetUtcNow().AddHours(-1), peers.Clock.GetUtcNow().AddDays(1));
        var seen = new LinkOfferNonces();
        using var offerer = new LinkOfferer(peers.Gateway, peers.Credential, peers.Clock);
        var first = LinkAcceptor.Accept(gatewayB, credentialB, offerer.Offer, 1, 2, peers.Clock, seen);
        Assert.True(first.Succeeded, first.Failure?.Message);
        first.Value!.Session.Dispose();

        peers.Clock.Advance(TimeSpan.FromSeconds(30));
        var replay = LinkAcceptor.Accept(gatewayB, credentialB, LinkOffer.TryParse(offerer.Offer.ToBytes())!, 3, 4, peers.Clock, seen);
        Assert.Equal(ErrorCodes.Unauthorized, replay.Failure!.Code);
        Assert.Contains("already seen", replay.Failure.Message, StringComparison.Ordinal);

        // Refreshing the timestamp of an old offer breaks its signature.
        peers.Clock.Advance(TimeSpan.FromSeconds(60));
        var refreshed = offerer.Offer with { IssuedAt = (ulong)peers.Clock.GetUtcNow().ToUnixTimeSeconds() };
        Assert.Equal(ErrorCodes.BadSignature, LinkAcceptor.Accept(gatewayB, credentialB, refreshed, 5, 6, peers.Clock, seen).Failure!.Code);
    }

    [Fact]
    public void LinkOfferNonces_ForgetOffersPastTheWindow_AndStayBounded()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1_850_000_000);
        var issued = (ulong)now.ToUnixTimeSeconds();
        var seen = new LinkOfferNonces(capacity: 3);
        byte[] Nonce(int i) => [.. Enumerable.Repeat((byte)i, 32)];
        Assert.True(seen.TryRecord(Nonce(1), issued, now));
        Assert.False(seen.TryRecord(Nonce(1), issued, now));
        Assert.True(seen.TryRecord(Nonce(2), issued, now));
        Assert.True(seen.TryRecord(Nonce(3), issued, now));
        // Full of nonces still inside the window: refused rather than forgetting one a replay could reuse.
        Assert.False(seen.TryRecord(Nonce(4), issued, now));
        Assert.Equal(3, seen.Count);
        // Once they are older than any acceptable offer they are forgotten.
        var later = now.AddSeconds(61);
        Assert.True(seen.TryRecord(Nonce(4), issued + 61, later));
        Assert.Equal(1, seen.Count);
    }
}
