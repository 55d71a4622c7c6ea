using System.Collections.Immutable;

namespace Wzp.Grains;

// Every type below crosses a grain boundary. Aliases carry a version suffix and [Id]s are never renumbered:
// a new field gets the next id, an incompatible change gets a new type with a new alias. None of them holds a
// secret (PROTOCOL.md §9); a test in Wzp.Cluster.Tests lists every byte-bearing member against an allow-list.

/// <summary>A member of a room as every gateway of the room sees it.</summary>
/// <param name="Slot">1 to 65 535, unique among the room's current members; downlink datagrams carry it as <c>source</c>.</param>
/// <param name="Fingerprint">The member's identity fingerprint (public).</param>
/// <param name="Alias">Display name, at most <see cref="RoomLimits.MaxAliasLength"/> characters, may be empty.</param>
/// <param name="GatewayId">The gateway that terminates the member's QUIC connection.</param>
/// <param name="Muted">An administrator muted the member: its gateway drops its uplink (docs/protocol.md §11).</param>
/// <param name="Listener">The member's grant lacks <c>publish</c>: its gateway drops its uplink.</param>
/// <param name="GrantExpires">
/// The last moment the member's grant is accepted (its <c>exp</c> plus the gateway's clock skew); null without grants.
/// A kicked identity is refused until then; the gateway removes the member when it passes.
/// </param>
[GenerateSerializer, Immutable, Alias("wzp.RoomMember.v1")]
public sealed record RoomMember(
    [property: Id(0)] ushort Slot,
    [property: Id(1)] Fingerprint Fingerprint,
    [property: Id(2)] string Alias,
    [property: Id(3)] string GatewayId,
    [property: Id(4)] bool Muted = false,
    [property: Id(5)] bool Listener = false,
    [property: Id(6)] DateTimeOffset? GrantExpires = null)
{
    /// <summary>
    /// True when <paramref name="other"/> is this member, perhaps with other flags (<see cref="Muted"/>): same slot,
    /// identity, alias and gateway. A flag changes the record, not who the member is.
    /// </summary>
    public bool IsSameMemberAs(RoomMember? other) =>
        other is not null && other.Slot == Slot && other.Fingerprint == Fingerprint
        && string.Equals(other.Alias, Alias, StringComparison.Ordinal) && string.Equals(other.GatewayId, GatewayId, StringComparison.Ordinal);
}

/// <summary>The identity of one room activation plus its counters; cheap to poll.</summary>
/// <param name="Incarnation">New for every activation of the room grain. A change means the room lost its
/// in-memory membership (silo failure, or it emptied and deactivated) and gateways must restore their members.</param>
/// <param name="Version">Grows by one on every change of the room (membership or epoch).</param>
/// <param name="Epoch">The room epoch; grows on every join, leave, eviction and periodic rekey.</param>
[GenerateSerializer, Immutable, Alias("wzp.RoomStamp.v1")]
public sealed record RoomStamp(
    [property: Id(0)] Guid Incarnation,
    [property: Id(1)] long Version,
    [property: Id(2)] long Epoch);

/// <summary>The full state of a room at one version. Members are sorted by slot.</summary>
[GenerateSerializer, Immutable, Alias("wzp.RoomSnapshot.v1")]
public sealed record RoomSnapshot(
    [property: Id(0)] string Room,
    [property: Id(1)] Guid Incarnation,
    [property: Id(2)] long Version,
    [property: Id(3)] long Epoch,
    [property: Id(4)] ImmutableArray<RoomMember> Members);

/// <summary>Why a room changed.</summary>
[Alias("wzp.RoomChangeReason.v1")]
public enum RoomChangeReason
{
    /// <summary>A member joined.</summary>
    Joined = 0,

    /// <summary>A member left.</summary>
    Left = 1,

    /// <summary>The periodic epoch timer fired (no membership change).</summary>
    PeriodicRekey = 2,

    /// <summary>A gateway did not report a finished rekey in time; its members were evicted.</summary>
    RekeyTimeout = 3,

    /// <summary>A gateway left the directory (expired or unregistered); its members were evicted.</summary>
    GatewayGone = 4,

    /// <summary>A gateway restored its members after the room re-activated.</summary>
    Restored = 5,

    /// <summary>A member with an admin grant removed a member (<c>kick</c>, docs/protocol.md §11), or an operator did.</summary>
    Kicked = 6,

    /// <summary>An administrator muted or unmuted a member (<see cref="RoomEvent.Joined"/> lists it with its new flag); no rekey.</summary>
    Muted = 7,

    /// <summary>An operator closed the room: every member was removed.</summary>
    Closed = 8,
}

/// <summary>
/// One change of a room, pushed to every gateway that hosted members before or after it. Applying the events
/// of consecutive versions to the snapshot of the first one gives the snapshot of the last; a gateway that sees
/// a gap in <see cref="Version"/> (or a new <see cref="Incarnation"/>) fetches a snapshot instead.
/// </summary>
[GenerateSerializer, Immutable, Alias("wzp.RoomEvent.v1")]
public sealed record RoomEvent(
    [property: Id(0)] string Room,
    [property: Id(1)] Guid Incarnation,
    [property: Id(2)] long Version,
    [property: Id(3)] long Epoch,
    [property: Id(4)] RoomChangeReason Reason,
    [property: Id(5)] ImmutableArray<RoomMember> Joined,
    [property: Id(6)] ImmutableArray<ushort> Left);

/// <summary>A member asking to join: sent by its gateway after the client's handshake confirmed (PROTOCOL.md §5).</summary>
/// <param name="Fingerprint">The member's identity fingerprint (public).</param>
/// <param name="Alias">Display name.</param>
/// <param name="GatewayId">The gateway that terminates the member's connection.</param>
/// <param name="KnownIncarnation">
/// The room incarnation under which this gateway already serves members of the room, or <see cref="Guid.Empty"/>
/// when it serves none. A room of another incarnation (it re-activated and lost them) answers
/// <see cref="JoinStatus.RestoreFirst"/> until the gateway restored them, so a newcomer never takes their slots.
/// </param>
/// <param name="GatewayInstance">
/// The gateway process (<see cref="GatewayRegistration.InstanceId"/>). A room that hosts members of an earlier
/// process under the same gateway id drops them first: that process and its connections are gone.
/// </param>
/// <param name="Observer">
/// The gateway's push target. With it (and <paramref name="GatewayInstance"/>) the room attaches the gateway
/// without waiting on the directory, which it only informs; without it the room asks the directory first.
/// </param>
/// <param name="Listener">The member's grant lacks <c>publish</c>; the member list marks it.</param>
/// <param name="GrantExpires">The last moment the member's grant is accepted (<see cref="RoomMember.GrantExpires"/>).</param>
[GenerateSerializer, Immutable, Alias("wzp.JoinRequest.v1")]
public sealed record JoinRequest(
    [property: Id(0)] Fingerprint Fingerprint,
    [property: Id(1)] string Alias,
    [property: Id(2)] string GatewayId,
    [property: Id(3)] Guid KnownIncarnation = default,
    [property: Id(4)] Guid GatewayInstance = default,
    [property: Id(5)] IGatewayObserver? Observer = null,
    [property: Id(6)] bool Listener = false,
    [property: Id(7)] DateTimeOffset? GrantExpires = null);

/// <summary>Outcome of a join.</summary>
[Alias("wzp.JoinStatus.v1")]
public enum JoinStatus
{
    /// <summary>The member joined; slot, epoch and snapshot are set.</summary>
    Joined = 0,

    /// <summary>The room already has the configured maximum of members (PROTOCOL.md error code <c>room-full</c>).</summary>
    RoomFull = 1,

    /// <summary>The gateway is not registered in the directory: register (again) and retry.</summary>
    GatewayNotRegistered = 2,

    /// <summary>The room name, alias or gateway id is malformed (PROTOCOL.md error code <c>bad-request</c>).</summary>
    Invalid = 3,

    /// <summary>
    /// The room has just re-activated and waits for the gateways to restore the members they still serve, so that
    /// a newcomer cannot take a slot one of them holds: retry shortly. The wait ends when every live gateway
    /// answered, or after <c>Cluster:RestoreWindow</c> (longer while the directory itself is re-learning who is live).
    /// </summary>
    Restoring = 4,

    /// <summary>
    /// The room re-activated since this gateway last saw it (<see cref="JoinRequest.KnownIncarnation"/>): the
    /// gateway must restore the members it serves (<see cref="IRoomGrain.RestoreMembers"/>), then retry.
    /// </summary>
    RestoreFirst = 5,

    /// <summary>An administrator removed this identity from the room while it stays open (error code <c>kicked</c>).</summary>
    Kicked = 6,
}

/// <summary>Result of <see cref="IRoomGrain.Join"/>: a typed refusal rather than an exception to parse.</summary>
/// <param name="Status">Whether the member joined.</param>
/// <param name="Slot">The member's slot when joined, otherwise 0.</param>
/// <param name="Epoch">The room epoch after the join, otherwise 0.</param>
/// <param name="Snapshot">The room including the new member when joined, otherwise null.</param>
[GenerateSerializer, Immutable, Alias("wzp.JoinResult.v1")]
public sealed record JoinResult(
    [property: Id(0)] JoinStatus Status,
    [property: Id(1)] ushort Slot,
    [property: Id(2)] long Epoch,
    [property: Id(3)] RoomSnapshot? Snapshot)
{
    /// <summary>A refusal with no slot.</summary>
    public static JoinResult Refused(JoinStatus status) => new(status, 0, 0, null);
}

/// <summary>A member leaving; only the gateway process hosting the member may remove it.</summary>
[GenerateSerializer, Immutable, Alias("wzp.LeaveRequest.v1")]
public sealed record LeaveRequest(
    [property: Id(0)] ushort Slot,
    [property: Id(1)] string GatewayId,
    [property: Id(2)] Guid GatewayInstance = default);

/// <summary>
/// An administrator removing a member. <see cref="BySlot"/> is the admin, hosted by the calling gateway process,
/// which checked the admin's grant; the room checks that the admin is that gateway's member, so a gateway can
/// only act for its own members.
/// </summary>
[GenerateSerializer, Immutable, Alias("wzp.KickRequest.v1")]
public sealed record KickRequest(
    [property: Id(0)] ushort Slot,
    [property: Id(1)] ushort BySlot,
    [property: Id(2)] string GatewayId,
    [property: Id(3)] Guid GatewayInstance = default);

/// <summary>
/// An administrator muting (or unmuting) a member, checked like <see cref="KickRequest"/>: <see cref="BySlot"/> is
/// the calling gateway's member, whose grant has <c>admin</c>. The mute sticks to the member's identity while the
/// room stays open, so a muted member that rejoins is muted again.
/// </summary>
[GenerateSerializer, Immutable, Alias("wzp.MuteRequest.v1")]
public sealed record MuteRequest(
    [property: Id(0)] ushort Slot,
    [property: Id(1)] ushort BySlot,
    [property: Id(2)] bool Muted,
    [property: Id(3)] string GatewayId,
    [property: Id(4)] Guid GatewayInstance = default);

/// <summary>What an operator does to a room through the administration API (silo side; no member acts).</summary>
[Alias("wzp.AdminAction.v1")]
public enum AdminAction
{
    /// <summary>Remove the member in <see cref="AdminCommand.Slot"/>, as a <c>kick</c> does.</summary>
    Kick = 0,

    /// <summary>Mute the member in <see cref="AdminCommand.Slot"/>.</summary>
    Mute = 1,

    /// <summary>Unmute the member in <see cref="AdminCommand.Slot"/>.</summary>
    Unmute = 2,

    /// <summary>Remove every member; the room deactivates and forgets its kicks and mutes.</summary>
    Close = 3,
}

/// <summary>An operator's command to a room; the administration API checked the operator's credential.</summary>
[GenerateSerializer, Immutable, Alias("wzp.AdminCommand.v1")]
public sealed record AdminCommand(
    [property: Id(0)] AdminAction Action,
    [property: Id(1)] ushort Slot = 0);

/// <summary>Outcome of <see cref="IRoomGrain.Administer"/>.</summary>
/// <param name="Done">True when the room changed (or already was as asked: muting a muted member).</param>
/// <param name="Affected">Members removed or changed.</param>
[GenerateSerializer, Immutable, Alias("wzp.AdminOutcome.v1")]
public sealed record AdminOutcome(
    [property: Id(0)] bool Done,
    [property: Id(1)] int Affected);

/// <summary>A room as the administration API shows it.</summary>
/// <param name="Snapshot">Members, epoch, version.</param>
/// <param name="OpenedAt">When this activation of the room started (a room re-activated after a silo failure starts again).</param>
[GenerateSerializer, Immutable, Alias("wzp.RoomDescription.v1")]
public sealed record RoomDescription(
    [property: Id(0)] RoomSnapshot Snapshot,
    [property: Id(1)] DateTimeOffset OpenedAt);

/// <summary>A gateway reporting that all its members of the room finished the rekey to <see cref="Epoch"/>.</summary>
/// <param name="GatewayId">The reporting gateway.</param>
/// <param name="Epoch">The epoch every member of the gateway now uses (earlier ones are covered too).</param>
/// <param name="GatewayInstance">The reporting process: a late report of a previous process with the same id
/// must not count for the members of the current one.</param>
/// <param name="RoomIncarnation">The room activation whose epoch this is: a report to an earlier activation
/// counts for nothing in this one.</param>
[GenerateSerializer, Immutable, Alias("wzp.RekeyReport.v1")]
public sealed record RekeyReport(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] long Epoch,
    [property: Id(2)] Guid GatewayInstance = default,
    [property: Id(3)] Guid RoomIncarnation = default);

/// <summary>
/// A gateway re-registering its local members with a room that re-activated (it lost its in-memory state).
/// </summary>
/// <param name="GatewayId">The reporting gateway; every member must carry it.</param>
/// <param name="Members">The gateway's local members with the slots they had.</param>
/// <param name="LastVersion">The last room version the gateway saw, so versions never go backwards.</param>
/// <param name="LastEpoch">The last room epoch the gateway saw, so epochs never go backwards.</param>
/// <param name="Observer">
/// The gateway's push target, for a room that cannot find the gateway in the directory (lost with its silo).
/// </param>
/// <param name="GatewayInstance">The gateway process the members belong to.</param>
[GenerateSerializer, Immutable, Alias("wzp.RestoreRequest.v1")]
public sealed record RestoreRequest(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] ImmutableArray<RoomMember> Members,
    [property: Id(2)] long LastVersion,
    [property: Id(3)] long LastEpoch,
    [property: Id(4)] IGatewayObserver? Observer = null,
    [property: Id(5)] Guid GatewayInstance = default);

/// <summary>Result of a restore.</summary>
/// <param name="Snapshot">The room after the restore.</param>
/// <param name="Rejected">Slots that could not be restored (taken by another member meanwhile, or the room is
/// full); the gateway must end those sessions or let them join again.</param>
[GenerateSerializer, Immutable, Alias("wzp.RestoreResult.v1")]
public sealed record RestoreResult(
    [property: Id(0)] RoomSnapshot Snapshot,
    [property: Id(1)] ImmutableArray<ushort> Rejected);

/// <summary>A re-activated room asking a gateway to restore its members of that room.</summary>
[GenerateSerializer, Immutable, Alias("wzp.RestoreInvitation.v1")]
public sealed record RestoreInvitation(
    [property: Id(0)] string Room,
    [property: Id(1)] Guid Incarnation);

/// <summary>Validation rules shared by the room grain and gateways (PROTOCOL.md §5).</summary>
public static class RoomLimits
{
    /// <summary>Room names are 1 to 128 characters.</summary>
    public const int MaxRoomNameLength = 128;

    /// <summary>Aliases are at most 64 characters.</summary>
    public const int MaxAliasLength = 64;

    /// <summary>Gateway ids are 1 to 128 characters.</summary>
    public const int MaxGatewayIdLength = 128;

    /// <summary>Slots are 1 to 65 535, so a room never has more members than this.</summary>
    public const int MaxMembers = ushort.MaxValue;

    /// <summary>True when <paramref name="room"/> is 1 to 128 characters with no control characters.</summary>
    public static bool IsValidRoomName(string? room) =>
        !string.IsNullOrEmpty(room) && room.Length <= MaxRoomNameLength && !room.Any(char.IsControl);

    /// <summary>True when <paramref name="alias"/> is at most 64 characters with no control characters.</summary>
    public static bool IsValidAlias(string? alias) =>
        alias is not null && alias.Length <= MaxAliasLength && !alias.Any(char.IsControl);

    /// <summary>True when <paramref name="gatewayId"/> is 1 to 128 characters with no control characters.</summary>
    public static bool IsValidGatewayId(string? gatewayId) =>
        !string.IsNullOrEmpty(gatewayId) && gatewayId.Length <= MaxGatewayIdLength && !gatewayId.Any(char.IsControl);
}
