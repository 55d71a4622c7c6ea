using Orleans.Concurrency;

namespace Wzp.Grains;

/// <summary>
/// A room (key: the room name). Owns its membership and its members' epoch schedule; holds no secret.
/// </summary>
/// <remarks>
/// State is in memory only. When the room's silo dies, the next call re-activates it elsewhere with a new
/// <see cref="RoomStamp.Incarnation"/>; gateways notice (a push, a restore invitation, or their periodic
/// <see cref="GetStamp"/>) and call <see cref="RestoreMembers"/> with the members they still serve.
/// </remarks>
[Alias("wzp.IRoomGrain")]
public interface IRoomGrain : IGrainWithStringKey
{
    /// <summary>Adds a member; refuses with a status (never an exception) when the room is full or the request is bad.</summary>
    [Alias("Join")]
    Task<JoinResult> Join(JoinRequest request);

    /// <summary>Removes the member in <see cref="LeaveRequest.Slot"/> if that gateway hosts it; false when it did not.</summary>
    [Alias("Leave")]
    Task<bool> Leave(LeaveRequest request);

    /// <summary>
    /// Removes the member in <see cref="KickRequest.Slot"/> (on any gateway) for the admin in
    /// <see cref="KickRequest.BySlot"/>; false when the admin is not that gateway's member or the slot is not a member.
    /// </summary>
    [Alias("Kick")]
    Task<bool> Kick(KickRequest request);

    /// <summary>
    /// Mutes or unmutes the member in <see cref="MuteRequest.Slot"/> for the admin in <see cref="MuteRequest.BySlot"/>,
    /// checked as <see cref="Kick"/>; false when refused or the slot is not a member.
    /// </summary>
    [Alias("Mute")]
    Task<bool> Mute(MuteRequest request);

    /// <summary>An operator's kick, mute, unmute or close (the administration API on the silos).</summary>
    [Alias("Administer")]
    Task<AdminOutcome> Administer(AdminCommand command);

    /// <summary>The room for the administration API: its snapshot and when it opened.</summary>
    [Alias("Describe")]
    Task<RoomDescription> Describe();

    /// <summary>The room at its current version.</summary>
    [Alias("GetSnapshot")]
    Task<RoomSnapshot> GetSnapshot();

    /// <summary>Incarnation, version and epoch only: what a gateway polls to detect a lost update or a re-activation.</summary>
    [Alias("GetStamp")]
    Task<RoomStamp> GetStamp();

    /// <summary>A gateway's members finished the rekey to <see cref="RekeyReport.Epoch"/> (and every earlier epoch).</summary>
    [Alias("ReportRekeyComplete")]
    Task ReportRekeyComplete(RekeyReport report);

    /// <summary>Re-registers a gateway's members after the room re-activated; idempotent.</summary>
    [Alias("RestoreMembers")]
    Task<RestoreResult> RestoreMembers(RestoreRequest request);

    /// <summary>
    /// The directory saw the gateway process <paramref name="instanceId"/> go: evict its members. Members of a
    /// later process under the same id are kept (this message can arrive after that process joined them);
    /// <see cref="Guid.Empty"/> evicts whichever process the room knows.
    /// </summary>
    [OneWay, Alias("EvictGateway")]
    Task EvictGateway(string gatewayId, Guid instanceId);
}
