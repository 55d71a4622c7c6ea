using Orleans.Concurrency;

namespace Wzp.Grains;

/// <summary>
/// What the cluster pushes to a gateway. Each gateway implements it once and registers the reference with the
/// directory (see <see cref="Routing.GatewayAgent"/>).
/// </summary>
/// <remarks>
/// Grain observers rather than Orleans Streams: measured here (shared/NOTES.md), an observer push reaches a
/// client in 0.15-0.4 ms p50 while a memory stream event takes 10-100 ms, and the propagation target is
/// &lt; 50 ms p99. Observers are best-effort, which the design tolerates: every room event carries the room
/// version, so a gateway that misses one sees the gap and fetches a snapshot, and gateways poll their rooms'
/// stamps on every heartbeat. All methods are one-way so that a dead or slow gateway never blocks a room.
/// </remarks>
[Alias("wzp.IGatewayObserver")]
public interface IGatewayObserver : IGrainObserver
{
    /// <summary>A room hosting (or until now hosting) members of this gateway changed.</summary>
    [OneWay, Alias("OnRoomEvent")]
    Task OnRoomEvent(RoomEvent roomEvent);

    /// <summary>A room re-activated and asks every gateway to restore its members of that room.</summary>
    [OneWay, Alias("OnRestoreRequested")]
    Task OnRestoreRequested(RestoreInvitation invitation);

    /// <summary>Another gateway sent a link negotiation message.</summary>
    [OneWay, Alias("OnLinkMessage")]
    Task OnLinkMessage(LinkMessage message);
}
