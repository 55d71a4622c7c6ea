using System.Collections.Immutable;

namespace Wzp.Grains;

/// <summary>What a gateway tells the directory about itself.</summary>
/// <param name="GatewayId">Stable name of the gateway, unique in the cluster.</param>
/// <param name="InstanceId">New for every start of the gateway process: a registration under a known id with
/// another instance id means the old process is gone, so its members are evicted from every room.</param>
/// <param name="LinkEndpoint">UDP <c>host:port</c> where other gateways send link datagrams (PROTOCOL.md §8).</param>
/// <param name="Credential">The gateway's canonical credential bytes (PROTOCOL.md §2): public and signed.</param>
/// <param name="Load">Current load (e.g. sessions), for placement decisions; unitless.</param>
/// <param name="Observer">Where the cluster pushes room events, restore invitations and link messages.</param>
/// <param name="ClusterKey">Fingerprint (display form) of the cluster key that signed <paramref name="Credential"/>;
/// empty when the gateway has none (tests). Every gateway of a cluster carries the same one.</param>
[GenerateSerializer, Immutable, Alias("wzp.GatewayRegistration.v1")]
public sealed record GatewayRegistration(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] Guid InstanceId,
    [property: Id(2)] string LinkEndpoint,
    [property: Id(3)] ImmutableArray<byte> Credential,
    [property: Id(4)] int Load,
    [property: Id(5)] IGatewayObserver Observer,
    [property: Id(6)] string ClusterKey = "");

/// <summary>The directory's answer to a registration.</summary>
[Alias("wzp.RegisterStatus.v1")]
public enum RegisterStatus
{
    /// <summary>Registered (or refreshed).</summary>
    Registered = 0,

    /// <summary>Another live process holds the gateway id (heard within two heartbeat periods).</summary>
    IdInUse = 1,

    /// <summary>The gateway's credential is signed by another cluster key than this cluster's
    /// (<c>Cluster:KeyFingerprint</c>, or the key of the gateways already registered).</summary>
    ForeignClusterKey = 2,
}

/// <summary>A live gateway as the directory lists it.</summary>
[GenerateSerializer, Immutable, Alias("wzp.GatewayInfo.v1")]
public sealed record GatewayInfo(
    [property: Id(0)] GatewayRegistration Registration,
    [property: Id(1)] DateTimeOffset RegisteredAt,
    [property: Id(2)] DateTimeOffset LastSeen)
{
    /// <summary>Shortcut for <see cref="GatewayRegistration.GatewayId"/>.</summary>
    public string GatewayId => Registration.GatewayId;
}

/// <summary>The live gateways, and whether the directory can vouch that the list is complete.</summary>
/// <param name="Gateways">Every gateway registered now.</param>
/// <param name="CompleteIn">
/// Zero when every live gateway must be in <see cref="Gateways"/>. A directory younger than
/// <c>Cluster:GatewayExpiry</c> may have re-activated after its silo died and know only the gateways that
/// re-registered since; after this long, a gateway it does not know would have expired anyway.
/// </param>
/// <param name="Recovering">
/// The directory has seen that it lost registrations: a gateway it did not know heartbeated, or registered with
/// rooms it already served. False in a cluster that is simply new.
/// </param>
[GenerateSerializer, Immutable, Alias("wzp.GatewayCensus.v1")]
public sealed record GatewayCensus(
    [property: Id(0)] ImmutableArray<GatewayInfo> Gateways,
    [property: Id(1)] TimeSpan CompleteIn,
    [property: Id(2)] bool Recovering);

/// <summary>A gateway's periodic sign of life.</summary>
[GenerateSerializer, Immutable, Alias("wzp.GatewayHeartbeat.v1")]
public sealed record GatewayHeartbeat(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] Guid InstanceId,
    [property: Id(2)] int Load);

/// <summary>Answer to a room asking which of its gateways are still alive.</summary>
/// <param name="Gone">Gateways the directory knows to be gone: the room evicts their members.</param>
/// <param name="Live">Current registrations of the live ones (their observer may have changed).</param>
[GenerateSerializer, Immutable, Alias("wzp.GatewayCheckResult.v1")]
public sealed record GatewayCheckResult(
    [property: Id(0)] ImmutableArray<string> Gone,
    [property: Id(1)] ImmutableArray<GatewayRegistration> Live);

/// <summary>Which step of a gateway link negotiation or link rekey (PROTOCOL.md §8) a message carries.</summary>
[Alias("wzp.LinkMessageKind.v1")]
public enum LinkMessageKind
{
    /// <summary>Link offer from the gateway whose id sorts first.</summary>
    Offer = 0,

    /// <summary>Link accept from the other gateway.</summary>
    Accept = 1,

    /// <summary>Link rekey request (PROTOCOL.md §7 applied to links).</summary>
    Rekey = 2,

    /// <summary>Link rekey acknowledgement.</summary>
    RekeyAck = 3,
}

/// <summary>
/// A link negotiation message relayed by the directory. <see cref="Payload"/> is opaque to the cluster: the
/// signed offer/accept bytes of PROTOCOL.md §8, which contain only public keys, nonces and signatures.
/// </summary>
[GenerateSerializer, Immutable, Alias("wzp.LinkMessage.v1")]
public sealed record LinkMessage(
    [property: Id(0)] string FromGatewayId,
    [property: Id(1)] string ToGatewayId,
    [property: Id(2)] LinkMessageKind Kind,
    [property: Id(3)] ImmutableArray<byte> Payload);

/// <summary>Outcome of relaying a link message.</summary>
[Alias("wzp.LinkDelivery.v1")]
public enum LinkDelivery
{
    /// <summary>Handed to the target gateway's observer (delivery itself is one-way, not acknowledged).</summary>
    Sent = 0,

    /// <summary>The target gateway is not registered.</summary>
    UnknownTarget = 1,

    /// <summary>The sending gateway is not registered: register first.</summary>
    UnknownSender = 2,
}
