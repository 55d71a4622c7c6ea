using System.Diagnostics.Metrics;
using Wzp.Protocol;

namespace Wzp.Gateway;

/// <summary>Why the gateway dropped a datagram.</summary>
public enum GatewayDrop
{
    Malformed,
    UnknownEpoch,
    Authentication,
    Replay,
    /// <summary>The recipient's congestion window was full (or its connection was closing).</summary>
    Congestion,
    /// <summary>From a connection that has not joined, or for a link or room this gateway does not know.</summary>
    UnknownSession,
    /// <summary>From a link, for a room in which the sending gateway has no member.</summary>
    ForeignRoom,
    /// <summary>From a link, with a source slot that is not a member on the sending gateway.</summary>
    ForeignSource,
    /// <summary>From a member over its uplink budget (<c>Gateway:MemberUplinkRate</c>, <c>MemberUplinkBurst</c>).</summary>
    UplinkLimit,

    /// <summary>From a listener: a member whose grant lacks <c>publish</c>.</summary>
    ListenOnly,

    /// <summary>From a member an administrator muted.</summary>
    Muted,
}

/// <summary>Why a client's token was refused.</summary>
public enum TokenRefusal
{
    /// <summary>The confirm's MAC verified but its token did not match.</summary>
    WrongToken,
    /// <summary>Refused before the token was compared: the source address had too many wrong tokens of late.</summary>
    RateLimited,
}

/// <summary>The gateway's background loops, each of which must outlive any one failure.</summary>
public enum GatewayLoop
{
    /// <summary>Rekeys, rekey reports, link maintenance (GatewayServer, every 100 ms).</summary>
    Tick,
    /// <summary>Media from other gateways (LinkManager).</summary>
    LinkReceive,
    /// <summary>One client's control messages out (ControlStream); a failure closes that client's connection.</summary>
    ControlWriter,
}

/// <summary>
/// The gateway's counters. The per-packet ones are plain fields bumped with <see cref="Interlocked"/> (no
/// allocation, no lock) and read by observable instruments of the <c>Wzp.Gateway</c> meter, so an exporter
/// (OpenTelemetry, dotnet-counters) sees them without the forwarding path paying for it.
/// </summary>
public sealed class GatewayCounters : IDisposable
{
    public const string MeterName = "Wzp.Gateway";

    private readonly long[] _drops = new long[Enum.GetValues<GatewayDrop>().Length];
    private readonly long[] _loopFailures = new long[Enum.GetValues<GatewayLoop>().Length];
    private readonly Meter _meter;
    private long _forwarded;
    private long _forwardedBytes;
    private long _linkForwarded;
    private long _sessions;
    private long _handshakeFailures;
    private long _rekeys;
    private long _linkRekeys;
    private int _rooms;
    private long _evictions;
    private readonly long[] _tokenRefusals = new long[Enum.GetValues<TokenRefusal>().Length];
    private long _credentialExpiry = long.MaxValue;
    private long _expiredLinks;
    private long _grantsExpired;
    private long _grantKeyReloads;
    private long _grantKeyReloadFailures;

    public GatewayCounters(string gatewayId)
    {
        _meter = new Meter(MeterName);
        KeyValuePair<string, object?>[] gateway = [new("gateway", gatewayId)];
        _meter.CreateObservableCounter("wzp.gateway.datagrams.dropped", () =>
            Enum.GetValues<GatewayDrop>().Select(r => new Measurement<long>(Drops(r), [.. gateway, new("reason", ReasonTag(r))])),
            description: "Datagrams dropped, by reason");
        _meter.CreateObservableCounter("wzp.gateway.datagrams.forwarded", () => new Measurement<long>(Forwarded, gateway),
            description: "Media datagrams sent to local members");
        _meter.CreateObservableCounter("wzp.gateway.bytes.forwarded", () => new Measurement<long>(ForwardedBytes, gateway), unit: "By",
            description: "Bytes of media datagrams sent to local members");
        _meter.CreateObservableCounter("wzp.gateway.link.datagrams.sent", () => new Measurement<long>(LinkForwarded, gateway),
            description: "Media datagrams sent to other gateways");
        _meter.CreateObservableUpDownCounter("wzp.gateway.sessions", () => new Measurement<long>(Sessions, gateway),
            description: "Clients that completed the handshake and are in a room");
        _meter.CreateObservableUpDownCounter("wzp.gateway.rooms", () => new Measurement<int>(Rooms, gateway),
            description: "Rooms with members on this gateway");
        _meter.CreateObservableCounter("wzp.gateway.rekeys", () => new Measurement<long>(Rekeys, gateway),
            description: "Completed client hop rekeys");
        _meter.CreateObservableCounter("wzp.gateway.link.rekeys", () => new Measurement<long>(Interlocked.Read(ref _linkRekeys), gateway),
            description: "Completed gateway link rekeys");
        _meter.CreateObservableCounter("wzp.gateway.evictions", () => new Measurement<long>(Evictions, gateway),
            description: "Members the room removed while connected here, disconnected with an error");
        _meter.CreateObservableCounter("wzp.gateway.loop.failures", () =>
            Enum.GetValues<GatewayLoop>().Select(l => new Measurement<long>(LoopFailures(l), [.. gateway, new("loop", LoopTag(l))])),
            description: "Exceptions caught in background loops, by loop (each was logged and the loop went on)");
        _meter.CreateObservableCounter("wzp.gateway.token.refusals", () =>
            Enum.GetValues<TokenRefusal>().Select(r => new Measurement<long>(TokenRefusals(r), [.. gateway, new("reason", r == TokenRefusal.WrongToken ? "wrong" : "rate-limited")])),
            description: "Handshakes refused for their access token, by reason");
        _meter.CreateObservableGauge("wzp.gateway.credential.expiry", () => new Measurement<long>(CredentialExpirySeconds, gateway), unit: "s",
            description: "Seconds until the gateway's credential expires (every client refuses the gateway then)");
        _meter.CreateObservableCounter("wzp.gateway.link.expired", () => new Measurement<long>(ExpiredLinks, gateway),
            description: "Links dropped because the peer gateway's credential expired");
        _meter.CreateObservableCounter("wzp.gateway.grants.expired", () => new Measurement<long>(GrantsExpired, gateway),
            description: "Members disconnected because their grant expired while they were in a room");
        _meter.CreateObservableCounter("wzp.gateway.grant.keys.reloads", () => new Measurement<long>(GrantKeyReloads, gateway),
            description: "Changes of the accepted grant keys picked up from their files without a restart");
        _meter.CreateObservableCounter("wzp.gateway.grant.keys.reload.failures", () => new Measurement<long>(GrantKeyReloadFailures, gateway),
            description: "Grant key files that changed but could not be read or parsed (the previous keys stay in use)");
        _meter.CreateObservableCounter("wzp.gateway.handshake.failures", () => new Measurement<long>(HandshakeFailures, gateway),
            description: "Client handshakes that failed or were refused");
    }

    public long Forwarded => Interlocked.Read(ref _forwarded);

    public long ForwardedBytes => Interlocked.Read(ref _forwardedBytes);

    public long LinkForwarded => Interlocked.Read(ref _linkForwarded);

    public long Sessions => Interlocked.Read(ref _sessions);

    public long HandshakeFailures => Interlocked.Read(ref _handshakeFailures);

    public long Rekeys => Interlocked.Read(ref _rekeys);

    public int Rooms => Volatile.Read(ref _rooms);

    /// <summary>Members the room removed (rekey timeout, gateway gone) while they were connected here.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    internal void OnEviction() => Interlocked.Increment(ref _evictions);

    public long TokenRefusals(TokenRefusal reason) => Interlocked.Read(ref _tokenRefusals[(int)reason]);

    internal void OnTokenRefusal(TokenRefusal reason) => Interlocked.Increment(ref _tokenRefusals[(int)reason]);

    /// <summary>Seconds until the credential in use expires, as of the last check (negative once expired).</summary>
    public long CredentialExpirySeconds => Interlocked.Read(ref _credentialExpiry);

    internal void SetCredentialExpiry(TimeSpan left) => Interlocked.Exchange(ref _credentialExpiry, (long)left.TotalSeconds);

    /// <summary>Links dropped because the peer's credential expired.</summary>
    public long ExpiredLinks => Interlocked.Read(ref _expiredLinks);

    internal void OnExpiredLink() => Interlocked.Increment(ref _expiredLinks);

    /// <summary>Members disconnected because their grant expired while they were in a room.</summary>
    public long GrantsExpired => Interlocked.Read(ref _grantsExpired);

    internal void OnGrantExpired() => Interlocked.Increment(ref _grantsExpired);

    /// <summary>Changes of the accepted grant keys picked up from their files.</summary>
    public long GrantKeyReloads => Interlocked.Read(ref _grantKeyReloads);

    internal void OnGrantKeyReload() => Interlocked.Increment(ref _grantKeyReloads);

    /// <summary>Grant key files that changed but could not be read or parsed.</summary>
    public long GrantKeyReloadFailures => Interlocked.Read(ref _grantKeyReloadFailures);

    internal void OnGrantKeyReloadFailure() => Interlocked.Increment(ref _grantKeyReloadFailures);

    public long Drops(GatewayDrop reason) => Interlocked.Read(ref _drops[(int)reason]);

    public long TotalDrops => Enumerable.Range(0, _drops.Length).Sum(i => Interlocked.Read(ref _drops[i]));

    internal void Drop(GatewayDrop reason) => Interlocked.Increment(ref _drops[(int)reason]);

    /// <summary>Exceptions a background loop caught, logged and survived.</summary>
    public long LoopFailures(GatewayLoop loop) => Interlocked.Read(ref _loopFailures[(int)loop]);

    internal void OnLoopFailure(GatewayLoop loop) => Interlocked.Increment(ref _loopFailures[(int)loop]);

    internal void Drop(DropReason reason) => Drop(reason switch
    {
        DropReason.Malformed => GatewayDrop.Malformed,
        DropReason.UnknownEpoch => GatewayDrop.UnknownEpoch,
        DropReason.Authentication => GatewayDrop.Authentication,
        _ => GatewayDrop.Replay,
    });

    internal void OnForwarded(int bytes)
    {
        Interlocked.Increment(ref _forwarded);
        Interlocked.Add(ref _forwardedBytes, bytes);
    }

    internal void OnLinkForwarded() => Interlocked.Increment(ref _linkForwarded);

    internal void OnSession(int delta) => Interlocked.Add(ref _sessions, delta);

    internal void OnHandshakeFailure() => Interlocked.Increment(ref _handshakeFailures);

    internal void OnRekey() => Interlocked.Increment(ref _rekeys);

    internal void OnLinkRekey() => Interlocked.Increment(ref _linkRekeys);

    internal void SetRooms(int rooms) => Volatile.Write(ref _rooms, rooms);

    private static string ReasonTag(GatewayDrop reason) => reason switch
    {
        GatewayDrop.Malformed => "malformed",
        GatewayDrop.UnknownEpoch => "unknown-epoch",
        GatewayDrop.Authentication => "aead",
        GatewayDrop.Replay => "replay",
        GatewayDrop.Congestion => "congestion",
        GatewayDrop.ForeignRoom => "foreign-room",
        GatewayDrop.ForeignSource => "foreign-source",
        GatewayDrop.UplinkLimit => "uplink-limit",
        GatewayDrop.ListenOnly => "listen-only",
        GatewayDrop.Muted => "muted",
        _ => "unknown-session",
    };

    private static string LoopTag(GatewayLoop loop) => loop switch
    {
        GatewayLoop.Tick => "tick",
        GatewayLoop.LinkReceive => "link-receive",
        _ => "control-writer",
    };

    public void Dispose() => _meter.Dispose();
}
