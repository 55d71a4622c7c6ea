using System.Buffers.Binary;
using Microsoft.Extensions.Time.Testing;

namespace Wzp.Protocol.Tests;

/// <summary>Every case of shared/vectors/protocol-v2.json, byte for byte.</summary>
public sealed class VectorTests
{
    private static readonly System.Text.Json.JsonElement Id = Vectors.Case("identity");
    private static readonly System.Text.Json.JsonElement Cred = Vectors.Case("credential");
    private static readonly System.Text.Json.JsonElement Hs = Vectors.Case("handshake");
    private static readonly System.Text.Json.JsonElement Media = Vectors.Case("media");
    private static readonly System.Text.Json.JsonElement Rk = Vectors.Case("rekey");
    private static readonly System.Text.Json.JsonElement Link = Vectors.Case("link");

    // Inside the vector credential's validity window [1.8e9, 1.9e9].
    private static FakeTimeProvider Clock() => new(DateTimeOffset.FromUnixTimeSeconds(1_850_000_000));

    private static GatewayCredential Credential()
    {
        using var cluster = Identity.FromSeed(Cred.Hex("clusterSeed"));
        using var gateway = Identity.FromSeed(Cred.Hex("gatewaySeed"));
        return GatewayCredential.Issue(cluster, Cred.Str("gatewayId"), gateway.PublicKey,
            DateTimeOffset.FromUnixTimeSeconds(Cred.GetProperty("notBefore").GetInt64()),
            DateTimeOffset.FromUnixTimeSeconds(Cred.GetProperty("notAfter").GetInt64()));
    }

    [Fact]
    public void Identity_FromSeed_MatchesPrivateSeedPublicKeyAndFingerprint()
    {
        using var identity = Identity.FromSeed(Id.Hex("seed"));
        Span<byte> prk = stackalloc byte[32];
        Span<byte> privateSeed = stackalloc byte[32];
        Primitives.Extract([], Id.Hex("seed"), prk);
        Primitives.Expand(prk, "warzone-ed25519"u8, privateSeed);
        Assert.Equal(Id.Str("ed25519PrivateSeed"), privateSeed.ToHex());
        Assert.Equal(Id.Str("ed25519Public"), identity.PublicKey.ToHex());
        Assert.Equal(Id.Str("fingerprint"), identity.Fingerprint.ToHex());
        Assert.Equal(Id.Str("fingerprintDisplay"), identity.Fingerprint.ToString());
    }

    [Fact]
    public void Credential_Issue_MatchesSignedBytesSignatureAndCanonicalBytes()
    {
        var credential = Credential();
        Assert.Equal(Cred.Str("clusterPublic"), credential.ClusterKey.ToHex());
        Assert.Equal(Cred.Str("clusterFingerprintDisplay"), credential.ClusterFingerprint.ToString());
        Assert.Equal(Cred.Str("gatewayPublic"), credential.GatewayKey.ToHex());
        Assert.Equal(Cred.Str("signedBytes"), credential.SignedBytes().ToHex());
        Assert.Equal(Cred.Str("signature"), credential.Signature.ToHex());
        Assert.Equal(Cred.Str("canonicalBytes"), credential.CanonicalBytes().ToHex());
        Assert.Equal(CredentialStatus.Valid, credential.Verify(credential.ClusterKey, Clock().GetUtcNow()));
    }

    /// <summary>Runs both state machines with the vector's fixed ephemerals and nonces.</summary>
    internal static (ClientSession Client, GatewaySession Gateway, Hello Hello, Welcome Welcome) Handshake()
    {
        var clock = Clock();
        using var clientIdentity = Identity.FromSeed(Id.Hex("seed"));
        var gatewayIdentity = Identity.FromSeed(Cred.Hex("gatewaySeed"));
        var credential = Credential();
        using var client = new ClientHandshake(clientIdentity, Hs.Str("room"), Hs.Str("alias"), Hs.Str("token"), credential.ClusterKey, clock,
            EphemeralKey.FromPrivateKey(Hs.Hex("clientEphemeralPrivate")), Hs.Hex("clientNonce"));
        using var gateway = new GatewayHandshake(gatewayIdentity, credential, null, clock,
            EphemeralKey.FromPrivateKey(Hs.Hex("gatewayEphemeralPrivate")), Hs.Hex("gatewayNonce"));
        var welcome = gateway.OnHello(client.Hello);
        Assert.True(welcome.Succeeded, welcome.Failure?.Message);
        var clientSession = client.OnWelcome(welcome.Value!);
        Assert.True(clientSession.Succeeded, clientSession.Failure?.Message);
        var gatewaySession = gateway.OnConfirm(clientSession.Value!.Confirm);
        Assert.True(gatewaySession.Succeeded, gatewaySession.Failure?.Message);
        return (clientSession.Value, gatewaySession.Value!, client.Hello, welcome.Value!);
    }

    [Fact]
    public void Handshake_BothSides_MatchEveryIntermediateValue()
    {
        var (client, gateway, hello, welcome) = Handshake();
        Assert.Equal(Hs.Str("clientEphemeralPublic"), hello.EphemeralKey.ToHex());
        Assert.Equal(Hs.Str("gatewayEphemeralPublic"), welcome.EphemeralKey.ToHex());
        Assert.Equal(Hs.GetProperty("version").GetInt32(), hello.Version);
        Assert.Equal(Hs.Str("helloHash"), HandshakeKeys.HelloHash(hello.Version, hello.IdentityKey, hello.EphemeralKey, hello.Nonce, hello.Room, hello.Alias).ToHex());
        Assert.Equal(Hs.Str("clientSignature"), hello.Signature.ToHex());
        Assert.Equal(Hs.Str("transcriptHash"), client.TranscriptHash.ToHex());
        Assert.Equal(Hs.Str("transcriptHash"), gateway.TranscriptHash.ToHex());
        Assert.Equal(Hs.Str("gatewaySignature"), welcome.Signature.ToHex());
        Assert.Equal(Hs.Str("confirmMac"), client.Confirm.Mac.ToHex());
        Assert.Equal(Hs.Str("token"), client.Confirm.Token);
        Assert.Equal(Hs.Str("sas"), client.Sas);
        Assert.Equal(Hs.Str("sas"), gateway.Sas);
        Assert.Equal(Hs.Str("chain0"), client.Keys.Current.Chain.ToHex());
        Assert.Equal(Hs.Str("chain0"), gateway.Keys.Current.Chain.ToHex());
    }

    [Fact]
    public void Handshake_SharedSecretPrkAndConfirmKey_MatchVector()
    {
        using var ours = EphemeralKey.FromPrivateKey(Hs.Hex("clientEphemeralPrivate"));
        var shared = new byte[32];
        Assert.True(Primitives.X25519Agree(ours, Hs.Hex("gatewayEphemeralPublic"), shared));
        Assert.Equal(Hs.Str("sharedSecret"), shared.ToHex());
        var prk = new byte[32];
        Primitives.Extract(Hs.Hex("transcriptHash"), shared, prk);
        Assert.Equal(Hs.Str("prk"), prk.ToHex());
        Assert.True(HandshakeKeys.Derive(ours, Hs.Hex("gatewayEphemeralPublic"), Hs.Hex("transcriptHash"), out var chain0, out var confirmKey, out var sas));
        Assert.Equal(Hs.Str("chain0"), chain0.ToHex());
        Assert.Equal(Hs.Str("confirmKey"), confirmKey.ToHex());
        Assert.Equal(Hs.Str("sas"), sas);
    }

    [Theory]
    [InlineData("handshake", "epoch0", "chain0")]
    [InlineData("rekey", "epoch1", "chain1")]
    public void EpochKeys_FromChain_MatchVector(string caseName, string epochName, string chainName)
    {
        var chain = (caseName == "rekey" ? Rk : Hs).Hex(chainName);
        var expected = (caseName == "rekey" ? Rk : Hs).GetProperty(epochName);
        foreach (var direction in new[] { "up", "down" })
        {
            var key = new byte[32];
            var iv = new byte[12];
            DirectionalKey.DeriveBytes(chain, direction, key, iv);
            Assert.Equal(expected.Str(direction + "Key"), key.ToHex());
            Assert.Equal(expected.Str(direction + "Iv"), iv.ToHex());
        }
        Assert.Equal(expected.Str("rekeyMacKey"), Primitives.Expand(chain, "wzp/1 rekey mac"u8, 32).ToHex());
    }

    [Theory]
    [InlineData("header_codec0_fec13_seq1_ts20", CodecId.Opus24k, false, 13, 1, 20u, 0, 0)]
    [InlineData("header_codec2_q_fec32_seq40000_ts987654_block7_sym3", CodecId.Opus6k, true, 32, 40000, 987654u, 7, 3)]
    public void MediaHeader_ParsesAndSerializes(string name, CodecId codec, bool q, int fec, int seq, uint ts, int block, int symbol)
    {
        var bytes = Media.Hex(name);
        Assert.True(MediaHeader.TryRead(bytes, out var header));
        Assert.Equal(new MediaHeader(false, false, codec, q, (byte)fec, (ushort)seq, ts, (byte)block, (byte)symbol, 0, 0), header);
        Assert.Equal(bytes, header.ToArray());
    }

    [Fact]
    public void QualityReport_RoundTrips()
    {
        var bytes = Media.Hex("qualityReport");
        Assert.True(QualityReport.TryRead(bytes, out var report));
        Assert.Equal(new QualityReport(0x19, 0x14, 0x07, 0xc8), report);
        var written = new byte[4];
        report.Write(written);
        Assert.Equal(bytes, written);
    }

    [Fact]
    public void MediaDatagrams_SealedThroughSessions_MatchUplinkAndDownlinkVectors()
    {
        var (client, gateway, _, _) = Handshake();
        var header0 = Media.Hex("header_codec0_fec13_seq1_ts20");
        var headerQ = Media.Hex("header_codec2_q_fec32_seq40000_ts987654_block7_sym3");
        var payload = Media.Hex("payload");
        var buffer = new byte[MediaDatagram.MaxSize];

        // Uplink pn 0 and pn 1 (with quality report), through the client's schedule.
        var n = MediaDatagram.Seal(client.Keys, 0, header0, payload, buffer);
        Assert.Equal(Media.GetProperty("uplink_epoch0_pn0").Str("datagram"), buffer.AsSpan(0, n).ToHex());
        byte[] withReport = [.. payload, .. Media.Hex("qualityReport")];
        n = MediaDatagram.Seal(client.Keys, 0, headerQ, withReport, buffer);
        Assert.Equal(Media.GetProperty("uplink_epoch0_pn1_withQualityReport").Str("datagram"), buffer.AsSpan(0, n).ToHex());

        // Downlink pn 5 from slot 7, sealed with the gateway's down key directly.
        n = MediaDatagram.Seal(gateway.Keys.Current.Send, 0, 5, 7, header0, payload, buffer);
        Assert.Equal(Media.GetProperty("downlink_epoch0_pn5_source7").Str("datagram"), buffer.AsSpan(0, n).ToHex());

        var nonce = new byte[12];
        client.Keys.Current.Send.Nonce(1, nonce);
        Assert.Equal(Media.GetProperty("uplink_epoch0_pn1_withQualityReport").Str("nonce"), nonce.ToHex());
        gateway.Keys.Current.Send.Nonce(5, nonce);
        Assert.Equal(Media.GetProperty("downlink_epoch0_pn5_source7").Str("nonce"), nonce.ToHex());
    }

    [Fact]
    public void MediaDatagrams_Vectors_OpenOnTheOtherSide()
    {
        var (client, gateway, _, _) = Handshake();
        var plaintext = new byte[MediaDatagram.MaxSize];
        var up = Media.GetProperty("uplink_epoch0_pn1_withQualityReport").Hex("datagram");
        Assert.Equal(DropReason.None, MediaDatagram.Open(gateway.Keys, up, plaintext, out var length, out var source));
        Assert.Equal(0, source);
        Assert.Equal([.. Media.Hex("payload"), .. Media.Hex("qualityReport")], plaintext[..length]);
        var down = Media.GetProperty("downlink_epoch0_pn5_source7").Hex("datagram");
        Assert.Equal(DropReason.None, MediaDatagram.Open(client.Keys, down, plaintext, out length, out source));
        Assert.Equal(7, source);
        Assert.Equal(Media.Hex("payload"), plaintext[..length]);
    }

    [Fact]
    public void Rekey_BothSides_MatchSignatureMacChainAndEpoch1Datagram()
    {
        var (client, gateway, _, _) = Handshake();
        var rekey = gateway.Rekeys.Request(EphemeralKey.FromPrivateKey(Rk.Hex("gatewayEphemeralPrivate")))!;
        Assert.Equal(Rk.Str("gatewayEphemeralPublic"), rekey.EphemeralKey.ToHex());
        Assert.Equal(1u, rekey.Epoch);
        Assert.Equal(Rk.Str("rekeySignature"), rekey.Signature.ToHex());

        var ack = client.Rekeys.OnRekey(rekey, EphemeralKey.FromPrivateKey(Rk.Hex("clientEphemeralPrivate")));
        Assert.True(ack.Succeeded, ack.Failure?.Message);
        Assert.Equal(Rk.Str("clientEphemeralPublic"), ack.Value!.EphemeralKey.ToHex());
        Assert.Equal(Rk.Str("rekeyAckMac"), ack.Value.Mac.ToHex());
        Assert.Equal(Rk.Str("chain1"), client.Keys.Next!.Chain.ToHex());

        var done = gateway.Rekeys.OnAck(ack.Value);
        Assert.True(done.Succeeded, done.Failure?.Message);
        Assert.Equal(1u, done.Value!.Done.Epoch);
        Assert.Equal(Rk.Str("chain1"), gateway.Keys.Current.Chain.ToHex());
        Assert.Null(client.Rekeys.OnRekeyDone(done.Value.Done));

        var buffer = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(client.Keys, 0, Media.Hex("header_codec0_fec13_seq1_ts20"), Media.Hex("payload"), buffer);
        Assert.Equal(Rk.Str("uplink_epoch1_pn0"), buffer.AsSpan(0, n).ToHex());
    }

    [Fact]
    public void Link_OfferAndAccept_MatchEveryValueAndTheA2BDatagram()
    {
        var clock = Clock();
        var credentialA = Credential();
        using var cluster = Identity.FromSeed(Cred.Hex("clusterSeed"));
        var gatewayA = Identity.FromSeed(Cred.Hex("gatewaySeed"));
        var gatewayB = Identity.FromSeed(Link.Hex("gatewayBSeed"));
        Assert.Equal(Link.Str("gatewayBPublic"), gatewayB.PublicKey.ToHex());
        var credentialB = IssueB(cluster, gatewayB);
        Assert.Equal(Link.Str("credentialBSignature"), credentialB.Signature.ToHex());

        using var offerer = new LinkOfferer(gatewayA, credentialA, clock, EphemeralKey.FromPrivateKey(Link.Hex("aEphemeralPrivate")), Link.Hex("aNonce"));
        Assert.Equal((ulong)Link.GetProperty("offerIssuedAt").GetInt64(), offerer.Offer.IssuedAt);
        Assert.Equal(Link.Str("offerHash"), LinkHandshake.OfferHash(credentialA, offerer.Offer.EphemeralKey, offerer.Offer.Nonce, offerer.Offer.IssuedAt).ToHex());
        Assert.Equal(Link.Str("offerSignature"), offerer.Offer.Signature.ToHex());

        // The offer crosses the cluster as opaque bytes.
        var offer = LinkOffer.TryParse(offerer.Offer.ToBytes())!;
        var accepted = LinkAcceptor.Accept(gatewayB, credentialB, offer, (uint)Link.GetProperty("linkIdForA").GetInt32(),
            (uint)Link.GetProperty("linkIdForB").GetInt32(), clock, new LinkOfferNonces(), EphemeralKey.FromPrivateKey(Link.Hex("bEphemeralPrivate")), Link.Hex("bNonce"));
        Assert.True(accepted.Succeeded, accepted.Failure?.Message);
        var (accept, sessionB) = (accepted.Value!.Accept, accepted.Value.Session);
        Assert.Equal(Link.Str("transcriptHash"), sessionB.TranscriptHash.ToHex());
        Assert.Equal(Link.Str("acceptSignature"), accept.Signature.ToHex());

        var sessionA = offerer.OnAccept(LinkAccept.TryParse(accept.ToBytes())!);
        Assert.True(sessionA.Succeeded, sessionA.Failure?.Message);
        Assert.Equal(Link.Str("chain0"), sessionA.Value!.Keys.Current.Chain.ToHex());
        Assert.Equal(Link.Str("chain0"), sessionB.Keys.Current.Chain.ToHex());

        var epoch0 = Link.GetProperty("epoch0");
        foreach (var direction in new[] { "a2b", "b2a" })
        {
            var key = new byte[32];
            var iv = new byte[12];
            DirectionalKey.DeriveBytes(sessionA.Value.Keys.Current.Chain, direction, key, iv);
            Assert.Equal(epoch0.Str(direction + "Key"), key.ToHex());
            Assert.Equal(epoch0.Str(direction + "Iv"), iv.ToHex());
        }
        Assert.Equal(epoch0.Str("rekeyMacKey"), sessionA.Value.Keys.Current.RekeyMacKey.ToHex());

        var roomTag = LinkDatagram.RoomTag("podcast");
        var tagBytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(tagBytes, roomTag);
        Assert.Equal(Link.Str("roomTag_podcast"), tagBytes.ToHex());

        var buffer = new byte[LinkDatagram.MaxSize];
        var n = LinkDatagram.Seal(sessionA.Value.Keys.Current.Send, sessionA.Value.SendLinkId, 0, 9, roomTag, 7,
            Media.Hex("header_codec0_fec13_seq1_ts20"), Media.Hex("payload"), buffer);
        Assert.Equal(Link.Str("a2b_epoch0_pn9_source7"), buffer.AsSpan(0, n).ToHex());

        var plaintext = new byte[LinkDatagram.MaxSize];
        Assert.Equal(DropReason.None, LinkDatagram.Open(sessionB.Keys, buffer.AsSpan(0, n), plaintext, out var length, out var tag, out var source));
        Assert.Equal(roomTag, tag);
        Assert.Equal(7, source);
        Assert.Equal(Media.Hex("payload"), plaintext[..length]);
    }

    /// <summary>
    /// The vectors give B's credential signature but not its id or validity; they are the credential case's
    /// window with the id below, which this test proves by reproducing the signature.
    /// </summary>
    internal static GatewayCredential IssueB(Identity cluster, Identity gatewayB) =>
        GatewayCredential.Issue(cluster, "gw-us-1", gatewayB.PublicKey,
            DateTimeOffset.FromUnixTimeSeconds(Cred.GetProperty("notBefore").GetInt64()),
            DateTimeOffset.FromUnixTimeSeconds(Cred.GetProperty("notAfter").GetInt64()));
}
