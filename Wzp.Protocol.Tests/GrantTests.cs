using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;
using Wzp.Protocol.Grants;

namespace Wzp.Protocol.Tests;

public sealed class GrantTests : IDisposable
{
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private readonly Identity _member = Identity.Generate();
    private readonly GrantKey _hs = GrantKey.Generate(GrantKeyKind.Hs256, "api-1");
    private readonly GrantKey _ed = GrantKey.Generate(GrantKeyKind.Ed25519, "issuer-1");

    public void Dispose()
    {
        _member.Dispose();
        _hs.Dispose();
        _ed.Dispose();
    }

    public static TheoryData<GrantKeyKind> Kinds => new() { GrantKeyKind.Hs256, GrantKeyKind.Ed25519 };

    private GrantKey Signer(GrantKeyKind kind) => kind == GrantKeyKind.Hs256 ? _hs : _ed;

    // A gateway holds the HS256 secret but only the Ed25519 public key.
    private GrantValidator Gateway(GrantValidationOptions? options = null) => new([_hs, _ed.ToPublic()], options, _clock);

    private Grant GrantFor(GrantKeyKind kind, string room = "standup") =>
        Grant.For(_member.Fingerprint, room, _clock.GetUtcNow(), TimeSpan.FromHours(1), Signer(kind).KeyId);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_GrantForThisIdentityAndRoom_IsAccepted(GrantKeyKind kind)
    {
        var grant = GrantFor(kind) with { Name = "Alice", Publish = false, Admin = true };
        var check = Gateway().Validate(GrantIssuer.Issue(grant, Signer(kind)), _member.Fingerprint, "standup");
        Assert.True(check.Succeeded, check.Failure);
        Assert.Equal(grant, check.Grant);
    }

    [Fact]
    public void Issue_Hs256_IsAStandardJwtWithTheDocumentedClaims()
    {
        var token = GrantIssuer.Issue(GrantFor(GrantKeyKind.Hs256), _hs);
        var parts = token.Split('.');
        Assert.Equal(3, parts.Length);
        var header = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[0]));
        Assert.Contains("\"alg\":\"HS256\"", header, StringComparison.Ordinal);
        Assert.Contains("\"kid\":\"api-1\"", header, StringComparison.Ordinal);
        // RFC 7515 §5.2: the signature is HMAC-SHA256 over the ASCII of "header.payload".
        var expected = HMACSHA256.HashData(Base64UrlEncoder.DecodeBytes(ParseSecret(_hs)), Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"));
        Assert.Equal(expected, Base64UrlEncoder.DecodeBytes(parts[2]));
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1]));
        foreach (var claim in new[] { "\"sub\":", "\"room\":", "\"nbf\":", "\"exp\":", "\"publish\":true", "\"subscribe\":true", "\"admin\":false" })
            Assert.Contains(claim, payload, StringComparison.Ordinal);
        Assert.Contains(_member.Fingerprint.ToString(), payload, StringComparison.Ordinal);
    }

    [Fact]
    public void Issue_EdDsa_VerifiesAsRfc8037Says()
    {
        var token = GrantIssuer.Issue(GrantFor(GrantKeyKind.Ed25519), _ed);
        var parts = token.Split('.');
        Assert.Contains("\"alg\":\"EdDSA\"", Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[0])), StringComparison.Ordinal);
        // RFC 8037 §3.1: Ed25519 over the JWS signing input, with the key's raw public half.
        Assert.True(Identity.Verify(_ed.PublicKey, Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"), Base64UrlEncoder.DecodeBytes(parts[2])));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_Expired_IsRefusedSayingSo(GrantKeyKind kind)
    {
        var token = GrantIssuer.Issue(GrantFor(kind), Signer(kind));
        _clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(31));
        AssertRefused(Gateway().Validate(token, _member.Fingerprint, "standup"), "expired");
    }

    [Fact]
    public void Validate_ExpiredWithinTheSkew_IsAccepted()
    {
        var token = GrantIssuer.Issue(GrantFor(GrantKeyKind.Hs256), _hs);
        _clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(20));
        Assert.True(Gateway().Validate(token, _member.Fingerprint, "standup").Succeeded);
        Assert.False(Gateway(new GrantValidationOptions { ClockSkew = TimeSpan.FromSeconds(5) }).Validate(token, _member.Fingerprint, "standup").Succeeded);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_NotYetValid_IsRefusedSayingSo(GrantKeyKind kind)
    {
        var grant = GrantFor(kind) with { NotBefore = _clock.GetUtcNow().AddMinutes(5), Expires = _clock.GetUtcNow().AddMinutes(30) };
        AssertRefused(Gateway().Validate(GrantIssuer.Issue(grant, Signer(kind)), _member.Fingerprint, "standup"), "not valid before");
    }

    [Fact]
    public void Validate_LifetimeAboveTheMaximum_IsRefused()
    {
        var grant = GrantFor(GrantKeyKind.Hs256) with { Expires = _clock.GetUtcNow().AddDays(2) };
        AssertRefused(Gateway().Validate(GrantIssuer.Issue(grant, _hs), _member.Fingerprint, "standup"), "lifetime");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_WrongRoom_IsRefusedSayingSo(GrantKeyKind kind)
    {
        var token = GrantIssuer.Issue(GrantFor(kind), Signer(kind));
        AssertRefused(Gateway().Validate(token, _member.Fingerprint, "board-meeting"), "is for room 'standup', not 'board-meeting'");
    }

    [Theory]
    [InlineData("team-*", "team-a", true)]
    [InlineData("team-*", "team-", true)]
    [InlineData("team-*", "team", false)]
    [InlineData("team-*", "Team-a", false)]
    [InlineData("*", "anything", true)]
    [InlineData("team-a", "team-ab", false)]
    public void Validate_RoomPrefix_MatchesRoomsStartingWithIt(string pattern, string room, bool accepted)
    {
        var token = GrantIssuer.Issue(GrantFor(GrantKeyKind.Ed25519, pattern), _ed);
        Assert.Equal(accepted, Gateway().Validate(token, _member.Fingerprint, room).Succeeded);
    }

    [Fact]
    public void Validate_GrantOfAnotherIdentity_IsRefused()
    {
        // A grant stolen from its owner: the thief's hello is signed by another key.
        var token = GrantIssuer.Issue(GrantFor(GrantKeyKind.Ed25519), _ed);
        using var thief = Identity.Generate();
        AssertRefused(Gateway().Validate(token, thief.Fingerprint, "standup"), $"issued to identity {_member.Fingerprint}");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_SignedWithAnotherKeyOfTheSameId_IsRefused(GrantKeyKind kind)
    {
        using var impostor = GrantKey.Generate(kind, Signer(kind).KeyId);
        var token = GrantIssuer.Issue(GrantFor(kind), impostor);
        AssertRefused(Gateway().Validate(token, _member.Fingerprint, "standup"), "signature does not verify");
    }

    [Fact]
    public void Validate_UnknownKeyId_IsRefused()
    {
        using var other = GrantKey.Generate(GrantKeyKind.Hs256, "someone-else");
        var token = GrantIssuer.Issue(Grant.For(_member.Fingerprint, "standup", _clock.GetUtcNow(), TimeSpan.FromHours(1), "someone-else"), other);
        AssertRefused(Gateway().Validate(token, _member.Fingerprint, "standup"), "unknown key id 'someone-else'");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Validate_TamperedClaims_AreRefused(GrantKeyKind kind)
    {
        var parts = GrantIssuer.Issue(GrantFor(kind), Signer(kind)).Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("\"admin\":false", "\"admin\":true", StringComparison.Ordinal);
        var tampered = $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
        AssertRefused(Gateway().Validate(tampered, _member.Fingerprint, "standup"), "signature does not verify");
    }

    [Fact]
    public void Validate_AlgNone_IsRefused()
    {
        var header = Base64UrlEncoder.Encode("{\"alg\":\"none\",\"kid\":\"api-1\",\"typ\":\"JWT\"}");
        var payload = Base64UrlEncoder.Encode(Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(GrantIssuer.Issue(GrantFor(GrantKeyKind.Hs256), _hs).Split('.')[1])));
        AssertRefused(Gateway().Validate($"{header}.{payload}.", _member.Fingerprint, "standup"), "not");
        AssertRefused(Gateway().Validate($"{header}.{payload}.AAAA", _member.Fingerprint, "standup"), "algorithm 'none' is not accepted");
    }

    [Fact]
    public void Validate_Hs256SignedWithTheEdDsaPublicKeyAsSecret_IsRefused()
    {
        // The classic algorithm confusion: an attacker knows the public key and uses it as an HMAC secret.
        var header = Base64UrlEncoder.Encode("{\"alg\":\"HS256\",\"kid\":\"issuer-1\",\"typ\":\"JWT\"}");
        var claims = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(GrantIssuer.Issue(GrantFor(GrantKeyKind.Ed25519), _ed).Split('.')[1]));
        var payload = Base64UrlEncoder.Encode(claims);
        var mac = HMACSHA256.HashData(_ed.PublicKey!, Encoding.ASCII.GetBytes($"{header}.{payload}"));
        var forged = $"{header}.{payload}.{Base64UrlEncoder.Encode(mac)}";
        AssertRefused(Gateway().Validate(forged, _member.Fingerprint, "standup"), "key 'issuer-1' is an Ed25519 key, not one for HS256");
    }

    [Theory]
    [InlineData("")]
    [InlineData("not-a-jwt")]
    [InlineData("a.b")]
    [InlineData("a.b.c.d.e")]
    [InlineData("!!!.???.###")]
    public void Validate_Malformed_IsRefused(string token)
    {
        var check = Gateway().Validate(token, _member.Fingerprint, "standup");
        Assert.False(check.Succeeded);
        Assert.False(string.IsNullOrWhiteSpace(check.Failure));
    }

    [Theory]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"standup\",\"exp\":EXP}", "no 'nbf'")]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"standup\",\"nbf\":NBF}", "no 'exp'")]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"standup\",\"nbf\":\"NBF\",\"exp\":EXP}", "'nbf' must be a NumericDate")]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"standup\",\"nbf\":NBF,\"exp\":EXP,\"publish\":\"true\"}", "'publish' must be true or false")]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"standup\",\"room\":\"other\",\"nbf\":NBF,\"exp\":EXP}", "without duplicates")]
    [InlineData("{\"sub\":\"not-a-fingerprint\",\"room\":\"standup\",\"nbf\":NBF,\"exp\":EXP}", "not an identity fingerprint")]
    [InlineData("{\"sub\":\"SUB\",\"room\":\"a*b\",\"nbf\":NBF,\"exp\":EXP}", "'room' is not a room name")]
    public void Validate_BadClaims_AreRefusedSayingWhich(string claims, string expected)
    {
        var now = _clock.GetUtcNow().ToUnixTimeSeconds();
        claims = claims.Replace("SUB", _member.Fingerprint.ToString(), StringComparison.Ordinal)
            .Replace("NBF", now.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("EXP", (now + 600).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        AssertRefused(Gateway().Validate(SignHs256(claims), _member.Fingerprint, "standup"), expected);
    }

    [Fact]
    public void Validate_MissingPermissions_MeanNone()
    {
        var now = _clock.GetUtcNow().ToUnixTimeSeconds();
        var check = Gateway().Validate(SignHs256($"{{\"sub\":\"{_member.Fingerprint}\",\"room\":\"standup\",\"nbf\":{now},\"exp\":{now + 60}}}"),
            _member.Fingerprint, "standup");
        Assert.True(check.Succeeded, check.Failure);
        Assert.False(check.Grant!.Publish);
        Assert.False(check.Grant.Subscribe);
        Assert.False(check.Grant.Admin);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void KeyFile_RoundTrips_AndThePublicHalfHoldsNoSecret(GrantKeyKind kind)
    {
        var key = Signer(kind);
        using var parsed = GrantKey.Parse(key.ToJson());
        Assert.Equal(key.KeyId, parsed.KeyId);
        Assert.Equal(kind, parsed.Kind);
        Assert.True(parsed.CanSign);
        // A grant from the re-read key verifies with the original key set.
        var token = GrantIssuer.Issue(GrantFor(kind), parsed);
        Assert.True(Gateway().Validate(token, _member.Fingerprint, "standup").Succeeded);
        if (kind == GrantKeyKind.Ed25519)
        {
            var json = key.ToPublic().ToJson();
            Assert.DoesNotContain("\"d\"", json, StringComparison.Ordinal);
            using var pub = GrantKey.Parse(json);
            Assert.False(pub.CanSign);
            Assert.Throws<ArgumentException>(() => GrantIssuer.Issue(GrantFor(kind), pub));
        }
    }

    [Theory]
    [InlineData("{}", "no 'kid'")]
    [InlineData("{\"kid\":\"a b\",\"kty\":\"oct\",\"k\":\"AAAA\"}", "'kid' must be")]
    [InlineData("{\"kid\":\"k\",\"kty\":\"oct\",\"k\":\"AAAA\"}", "shorter than 32 bytes")]
    [InlineData("{\"kid\":\"k\",\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAA\"}", "crv")]
    [InlineData("{\"kid\":\"k\",\"kty\":\"RSA\"}", "'kty' must be")]
    [InlineData("[1]", "JSON object")]
    public void KeyFile_Malformed_IsRefusedSayingWhy(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => GrantKey.Parse(json));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PublicKey_ParsesHexAndBase64Url_AndNothingElse()
    {
        Assert.True(GrantKey.TryParsePublicKey(Convert.ToHexStringLower(_ed.PublicKey!), out var fromHex));
        Assert.True(GrantKey.TryParsePublicKey(Base64UrlEncoder.Encode(_ed.PublicKey!), out var fromB64));
        Assert.Equal(_ed.PublicKey, fromHex);
        Assert.Equal(_ed.PublicKey, fromB64);
        Assert.False(GrantKey.TryParsePublicKey("abcd", out _));
        Assert.False(GrantKey.TryParsePublicKey(new string('z', 64), out _));
    }

    [Fact]
    public void Handshake_RequiringGrants_AdmitsWithAGrantAndEnforcesItsName()
    {
        using var peers = new TestPeers();
        using var identity = Identity.Generate();
        var validator = new GrantValidator([_ed.ToPublic()], null, peers.Clock);
        var grant = Grant.For(identity.Fingerprint, "room", peers.Clock.GetUtcNow(), TimeSpan.FromMinutes(10), _ed.KeyId) with { Name = "Granted", Publish = false };
        using var client = new ClientHandshake(identity, "room", "Chosen", GrantIssuer.Issue(grant, _ed), peers.Cluster.PublicKey, peers.Clock);
        using var gateway = new GatewayHandshake(peers.Gateway, peers.Credential, new GatewayHandshakeOptions { Grants = validator }, peers.Clock);
        var session = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        var result = gateway.OnConfirm(session.Confirm);
        Assert.True(result.Succeeded, result.Failure?.Message);
        using var admitted = result.Value!;
        Assert.Equal("Granted", admitted.Alias);
        Assert.False(admitted.SendsMedia);
        Assert.True(admitted.ReceivesMedia);
        session.Dispose();
    }

    [Fact]
    public void Handshake_RequiringGrants_RefusesAStolenGrantWithUnauthorized()
    {
        using var peers = new TestPeers();
        using var thief = Identity.Generate();
        var validator = new GrantValidator([_hs], null, peers.Clock);
        var stolen = GrantIssuer.Issue(Grant.For(_member.Fingerprint, "room", peers.Clock.GetUtcNow(), TimeSpan.FromMinutes(10), _hs.KeyId), _hs);
        using var client = new ClientHandshake(thief, "room", "", stolen, peers.Cluster.PublicKey, peers.Clock);
        using var gateway = new GatewayHandshake(peers.Gateway, peers.Credential, new GatewayHandshakeOptions { Grants = validator }, peers.Clock);
        using var session = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        var result = gateway.OnConfirm(session.Confirm);
        Assert.False(result.Succeeded);
        Assert.Equal(ErrorCodes.Unauthorized, result.Failure!.Code);
        Assert.StartsWith("grant refused: the grant was issued to identity", result.Failure.Message, StringComparison.Ordinal);
    }

    private string SignHs256(string claims)
    {
        var input = $"{Base64UrlEncoder.Encode("{\"alg\":\"HS256\",\"kid\":\"api-1\"}")}.{Base64UrlEncoder.Encode(claims)}";
        var mac = HMACSHA256.HashData(Base64UrlEncoder.DecodeBytes(ParseSecret(_hs)), Encoding.ASCII.GetBytes(input));
        return $"{input}.{Base64UrlEncoder.Encode(mac)}";
    }

    private static string ParseSecret(GrantKey key)
    {
        using var document = System.Text.Json.JsonDocument.Parse(key.ToJson());
        return document.RootElement.GetProperty("k").GetString()!;
    }

    private static void AssertRefused(GrantCheck check, string expected)
    {
        Assert.False(check.Succeeded);
        Assert.Contains(expected, check.Failure, StringComparison.Ordinal);
    }
}

public sealed class KickMessageTests
{
    [Fact]
    public void Kick_RoundTripsThroughTheCodec_AsDocumented()
    {
        var frame = ControlCodec.Encode(new Kick(7));
        var body = System.Text.Encoding.UTF8.GetString(frame.AsSpan(4));
        Assert.Equal("{\"type\":\"kick\",\"slot\":7}", body);
        Assert.Equal(new Kick(7), ControlCodec.Decode(frame.AsSpan(4)));
    }

    [Theory]
    [InlineData("mute")]
    [InlineData("unmute")]
    public void MuteAndUnmute_RoundTripThroughTheCodec_AsDocumented(string type)
    {
        ControlMessage message = type == "mute" ? new Mute(3) : new Unmute(3);
        var frame = ControlCodec.Encode(message);
        Assert.Equal($"{{\"type\":\"{type}\",\"slot\":3}}", System.Text.Encoding.UTF8.GetString(frame.AsSpan(4)));
        Assert.Equal(message, ControlCodec.Decode(frame.AsSpan(4)));
    }

    [Fact]
    public void MemberFlags_AreWrittenOnlyWhenSet_AndRead()
    {
        var plain = System.Text.Encoding.UTF8.GetString(ControlCodec.SerializeBody(new RoomUpdate([new MemberInfo(1, new byte[16], "a")], [])));
        Assert.DoesNotContain("muted", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("listener", plain, StringComparison.Ordinal);

        var body = ControlCodec.SerializeBody(new RoomUpdate([new MemberInfo(1, new byte[16], "a", Muted: true), new MemberInfo(2, new byte[16], "b", Listener: true)], []));
        Assert.Contains("\"muted\":true", System.Text.Encoding.UTF8.GetString(body), StringComparison.Ordinal);
        var decoded = Assert.IsType<RoomUpdate>(ControlCodec.Decode(body));
        Assert.True(decoded.Joined[0].Muted);
        Assert.False(decoded.Joined[0].Listener);
        Assert.True(decoded.Joined[1].Listener);
        Assert.False(decoded.Joined[1].Muted);
    }
}
