using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;

namespace Wzp.Protocol;

/// <summary>
/// A link offer from gateway A (PROTOCOL.md §8). Travels through the cluster as opaque bytes. <see cref="IssuedAt"/>
/// (unix seconds) is signed with it, so an old offer cannot be replayed through the directory to tear a working
/// link down.
/// </summary>
public sealed record LinkOffer(GatewayCredential Credential, byte[] EphemeralKey, byte[] Nonce, ulong IssuedAt, byte[] Signature)
{
    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, LinkJson.Default.LinkOffer);

    public static LinkOffer? TryParse(ReadOnlySpan<byte> bytes) => LinkJson.TryParse(bytes, LinkJson.Default.LinkOffer);
}

/// <summary>Gateway B's answer to an offer, with the link ids each side writes in datagrams to the other.</summary>
public sealed record LinkAccept(GatewayCredential Credential, byte[] EphemeralKey, byte[] Nonce, uint LinkIdForA, uint LinkIdForB, byte[] Signature)
{
    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, LinkJson.Default.LinkAccept);

    public static LinkAccept? TryParse(ReadOnlySpan<byte> bytes) => LinkJson.TryParse(bytes, LinkJson.Default.LinkAccept);
}

/// <summary>One established gateway-to-gateway link: its keys and the ids its datagrams carry.</summary>
public sealed class LinkSession : IDisposable
{
    internal LinkSession(HopRole role, GatewayCredential peer, byte[] transcriptHash, byte[] chain0, uint sendLinkId, uint receiveLinkId,
        Identity self, TimeProvider time)
    {
        Role = role;
        Peer = peer;
        SendLinkId = sendLinkId;
        ReceiveLinkId = receiveLinkId;
        TranscriptHash = transcriptHash;
        Keys = new HopKeySchedule(role, chain0, time);
        // The offering side starts link rekeys, as the gateway does toward a client.
        if (role == HopRole.LinkOffer) Initiator = new RekeyInitiator(self, transcriptHash, Keys);
        else Responder = new RekeyResponder(peer.GatewayKey, transcriptHash, Keys);
    }

    public HopRole Role { get; }

    /// <summary>The other gateway's verified credential.</summary>
    public GatewayCredential Peer { get; }

    /// <summary>The id this gateway writes in datagrams it sends on the link.</summary>
    public uint SendLinkId { get; }

    /// <summary>The id datagrams from the peer carry.</summary>
    public uint ReceiveLinkId { get; }

    public HopKeySchedule Keys { get; }

    /// <summary>Present on the offering side.</summary>
    public RekeyInitiator? Initiator { get; }

    /// <summary>Present on the accepting side.</summary>
    public RekeyResponder? Responder { get; }

    internal byte[] TranscriptHash { get; }

    public void Dispose()
    {
        Initiator?.Dispose();
        Keys.Dispose();
    }
}

/// <summary>The link handshake of PROTOCOL.md §8, both sides, with no I/O: the cluster carries the messages.</summary>
public static class LinkHandshake
{
    /// <summary>One link per pair: the gateway whose id sorts first (ordinal) offers.</summary>
    public static bool ShouldOffer(string selfId, string peerId) => string.CompareOrdinal(selfId, peerId) < 0;

    internal static ReadOnlySpan<byte> OfferLabel => "wzp/2 link offer\0"u8;

    /// <summary>How far an offer's <c>issuedAt</c> may be from the acceptor's clock, either way.</summary>
    public static readonly TimeSpan OfferWindow = TimeSpan.FromSeconds(60);

    internal static byte[] OfferHash(GatewayCredential credential, ReadOnlySpan<byte> ephemeral, ReadOnlySpan<byte> nonce, ulong issuedAt)
    {
        Span<byte> issued = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(issued, issuedAt);
        return Primitives.Sha256([.. OfferLabel, .. credential.CanonicalBytes(), .. ephemeral, .. nonce, .. issued]);
    }

    /// <summary>Null when <paramref name="issuedAt"/> is within <see cref="OfferWindow"/> of <paramref name="now"/>.</summary>
    internal static string? CheckFreshness(ulong issuedAt, DateTimeOffset now)
    {
        var age = now.ToUnixTimeSeconds() - (decimal)issuedAt;
        if (age > (decimal)OfferWindow.TotalSeconds) return $"offer issued {age} s ago";
        if (-age > (decimal)OfferWindow.TotalSeconds) return $"offer issued {-age} s in the future";
        return null;
    }

    internal static byte[] Transcript(ReadOnlySpan<byte> offerHash, ReadOnlySpan<byte> offerSignature, GatewayCredential credentialB,
        ReadOnlySpan<byte> ephemeralB, ReadOnlySpan<byte> nonceB, uint linkIdForA, uint linkIdForB)
    {
        Span<byte> ids = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(ids, linkIdForA);
        BinaryPrimitives.WriteUInt32BigEndian(ids[4..], linkIdForB);
        return Primitives.Sha256([.. "wzp/1 link transcript\0"u8, .. offerHash, .. offerSignature, .. credentialB.CanonicalBytes(),
            .. ephemeralB, .. nonceB, .. ids]);
    }

    /// <summary><c>chain0 = Expand(Extract(transcript, X25519), "wzp/1 chain", 32)</c>: the rekey derivation with the transcript as salt.</summary>
    internal static byte[]? Chain0(EphemeralKey ours, ReadOnlySpan<byte> theirs, ReadOnlySpan<byte> transcript) =>
        RekeyKeys.NextChain(transcript, ours, theirs);

    /// <summary>Verifies a peer's credential: same cluster, good signature, valid now, and the expected gateway.</summary>
    internal static string? CheckPeer(GatewayCredential? credential, ReadOnlySpan<byte> clusterKey, DateTimeOffset now)
    {
        if (credential is null) return "missing credential";
        var status = credential.Verify(clusterKey, now);
        return status == CredentialStatus.Valid ? null : $"peer credential rejected: {status}";
    }
}

/// <summary>Gateway A's side of a link: make the offer, then complete on B's accept.</summary>
public sealed class LinkOfferer : IDisposable
{
    private readonly Identity _self;
    private readonly TimeProvider _time;
    private readonly EphemeralKey _ephemeral;
    private readonly byte[] _offerHash;
    private bool _done;

    public LinkOfferer(Identity self, GatewayCredential credential, TimeProvider? time = null, EphemeralKey? ephemeral = null, byte[]? nonce = null)
    {
        ArgumentNullException.ThrowIfNull(self);
        ArgumentNullException.ThrowIfNull(credential);
        _self = self;
        _time = time ?? TimeProvider.System;
        _ephemeral = ephemeral ?? EphemeralKey.Generate();
        nonce ??= RandomNumberGenerator.GetBytes(HelloLimits.NonceSize);
        var issuedAt = (ulong)Math.Max(0, _time.GetUtcNow().ToUnixTimeSeconds());
        _offerHash = LinkHandshake.OfferHash(credential, _ephemeral.PublicKey, nonce, issuedAt);
        Offer = new LinkOffer(credential, _ephemeral.PublicKey, nonce, issuedAt, self.Sign([.. LinkHandshake.OfferLabel, .. _offerHash]));
    }

    public LinkOffer Offer { get; }

    /// <summary>
    /// Verifies B's credential and signature and derives the link keys. An accept that fails verification (for
    /// example one answering an earlier offer) leaves this offer open for the right one.
    /// </summary>
    public Step<LinkSession> OnAccept(LinkAccept accept)
    {
        ArgumentNullException.ThrowIfNull(accept);
        if (_done) return Step<LinkSession>.Fail(ErrorCodes.BadRequest, "accept already processed");
        if (LinkHandshake.CheckPeer(accept.Credential, Offer.Credential.ClusterKey, _time.GetUtcNow()) is { } problem)
            return Step<LinkSession>.Fail(ErrorCodes.Unauthorized, problem);
        if (accept.EphemeralKey is not { Length: Primitives.KeySize } || accept.Nonce is not { Length: HelloLimits.NonceSize } ||
            accept.Signature is not { Length: Identity.SignatureSize } || accept.LinkIdForA == accept.LinkIdForB)
            return Step<LinkSession>.Fail(ErrorCodes.BadRequest, "malformed link accept");
        var transcript = LinkHandshake.Transcript(_offerHash, Offer.Signature, accept.Credential, accept.EphemeralKey, accept.Nonce,
            accept.LinkIdForA, accept.LinkIdForB);
        if (!Identity.Verify(accept.Credential.GatewayKey, [.. "wzp/1 link accept\0"u8, .. transcript], accept.Signature))
            return Step<LinkSession>.Fail(ErrorCodes.BadSignature, "link accept signature does not verify");
        var chain0 = LinkHandshake.Chain0(_ephemeral, accept.EphemeralKey, transcript);
        if (chain0 is null) return Step<LinkSession>.Fail(ErrorCodes.BadRequest, "link key agreement failed");
        _done = true;
        try
        {
            return Step<LinkSession>.Ok(new LinkSession(HopRole.LinkOffer, accept.Credential, transcript, chain0,
                sendLinkId: accept.LinkIdForA, receiveLinkId: accept.LinkIdForB, _self, _time));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chain0);
        }
    }

    public void Dispose() => _ephemeral.Dispose();
}

/// <summary>
/// The nonces of link offers a gateway accepted within <see cref="LinkHandshake.OfferWindow"/> (PROTOCOL.md §8):
/// an offer older than that is refused by its age, so its nonce can be forgotten, and the set stays bounded. When
/// the set is full of nonces still in the window it refuses new offers rather than forget one early (a replay
/// must never get in); only gateways with valid credentials can sign offers, so a full set means a misbehaving
/// peer, and the honest ones retry.
/// </summary>
public sealed class LinkOfferNonces(int capacity = 4096)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<UInt128, ulong> _issuedAt = [];
    private readonly Queue<(UInt128 Key, ulong IssuedAt)> _order = new();

    public int Count
    {
        get
        {
            lock (_gate) return _issuedAt.Count;
        }
    }

    /// <summary>Records <paramref name="nonce"/>; false when it was seen within the window or the set is full.</summary>
    public bool TryRecord(ReadOnlySpan<byte> nonce, ulong issuedAt, DateTimeOffset now)
    {
        // 128 bits of a random 256-bit nonce identify it: a collision between honest offers is 2^-128.
        var key = BinaryPrimitives.ReadUInt128BigEndian(Primitives.Sha256(nonce));
        var horizon = now.ToUnixTimeSeconds() - (long)LinkHandshake.OfferWindow.TotalSeconds;
        lock (_gate)
        {
            // Offers arrive roughly in issue order; one older than the queue's head only waits a little longer.
            while (_order.TryPeek(out var oldest) && (decimal)oldest.IssuedAt < horizon)
            {
                _order.Dequeue();
                if (_issuedAt.TryGetValue(oldest.Key, out var at) && at == oldest.IssuedAt) _issuedAt.Remove(oldest.Key);
            }
            if (_issuedAt.ContainsKey(key) || _issuedAt.Count >= capacity) return false;
            _issuedAt[key] = issuedAt;
            _order.Enqueue((key, issuedAt));
            return true;
        }
    }
}

/// <summary>What accepting an offer yields: the accept to send back and B's session.</summary>
public sealed record LinkAccepted(LinkAccept Accept, LinkSession Session);

/// <summary>Gateway B's side of a link.</summary>
public static class LinkAcceptor
{
    /// <summary>Verifies A's offer, and answers it with the accept to send back and B's link session.</summary>
    /// <param name="self">Gateway B's identity.</param>
    /// <param name="credential">Gateway B's credential.</param>
    /// <param name="offer">A's offer.</param>
    /// <param name="linkIdForA">The id A will write in datagrams to B (B routes by it).</param>
    /// <param name="linkIdForB">The id B will write in datagrams to A.</param>
    /// <param name="time">Clock for credential validity and the offer's age.</param>
    /// <param name="seen">
    /// The nonces of offers this gateway accepted recently; one seen again is refused. Null skips that check (for
    /// vectors); a gateway always passes its own.
    /// </param>
    /// <param name="ephemeral">Fixed ephemeral key for vectors; fresh by default.</param>
    /// <param name="nonce">Fixed nonce for vectors; random by default.</param>
    public static Step<LinkAccepted> Accept(Identity self, GatewayCredential credential, LinkOffer offer,
        uint linkIdForA, uint linkIdForB, TimeProvider? time = null, LinkOfferNonces? seen = null, EphemeralKey? ephemeral = null, byte[]? nonce = null)
    {
        ArgumentNullException.ThrowIfNull(self);
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentNullException.ThrowIfNull(offer);
        time ??= TimeProvider.System;
        using var ours = ephemeral ?? EphemeralKey.Generate();
        if (LinkHandshake.CheckPeer(offer.Credential, credential.ClusterKey, time.GetUtcNow()) is { } problem)
            return Fail(ErrorCodes.Unauthorized, problem);
        if (offer.EphemeralKey is not { Length: Primitives.KeySize } || offer.Nonce is not { Length: HelloLimits.NonceSize } ||
            offer.Signature is not { Length: Identity.SignatureSize } || linkIdForA == linkIdForB)
            return Fail(ErrorCodes.BadRequest, "malformed link offer");
        var offerHash = LinkHandshake.OfferHash(offer.Credential, offer.EphemeralKey, offer.Nonce, offer.IssuedAt);
        if (!Identity.Verify(offer.Credential.GatewayKey, [.. LinkHandshake.OfferLabel, .. offerHash], offer.Signature))
            return Fail(ErrorCodes.BadSignature, "link offer signature does not verify");
        var now = time.GetUtcNow();
        if (LinkHandshake.CheckFreshness(offer.IssuedAt, now) is { } stale) return Fail(ErrorCodes.Unauthorized, stale);
        // Recorded only once the signature verified, so nobody but the peer can spend its nonces.
        if (seen is not null && !seen.TryRecord(offer.Nonce, offer.IssuedAt, now))
            return Fail(ErrorCodes.Unauthorized, "offer nonce already seen (a replayed offer)");
        nonce ??= RandomNumberGenerator.GetBytes(HelloLimits.NonceSize);
        var transcript = LinkHandshake.Transcript(offerHash, offer.Signature, credential, ours.PublicKey, nonce, linkIdForA, linkIdForB);
        var chain0 = LinkHandshake.Chain0(ours, offer.EphemeralKey, transcript);
        if (chain0 is null) return Fail(ErrorCodes.BadRequest, "link key agreement failed");
        try
        {
            var signature = self.Sign([.. "wzp/1 link accept\0"u8, .. transcript]);
            var accept = new LinkAccept(credential, ours.PublicKey, nonce, linkIdForA, linkIdForB, signature);
            var session = new LinkSession(HopRole.LinkAccept, offer.Credential, transcript, chain0,
                sendLinkId: linkIdForB, receiveLinkId: linkIdForA, self, time);
            return Step<LinkAccepted>.Ok(new LinkAccepted(accept, session));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chain0);
        }
    }

    private static Step<LinkAccepted> Fail(string code, string message) => Step<LinkAccepted>.Fail(code, message);
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(
    PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[System.Text.Json.Serialization.JsonSerializable(typeof(LinkOffer))]
[System.Text.Json.Serialization.JsonSerializable(typeof(LinkAccept))]
internal sealed partial class LinkJson : System.Text.Json.Serialization.JsonSerializerContext
{
    internal static T? TryParse<T>(ReadOnlySpan<byte> bytes, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(bytes, info);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null; // not JSON, or a string that is not valid UTF-8
        }
    }
}
