using System.Security.Cryptography;
using System.Text;

namespace Wzp.Grains;

// Room events for operators (webhooks, docs/operations.md "Room events and webhooks"). Not to be confused with
// RoomEvent, the routing change a room pushes to its gateways: these say what happened to people, carry a
// per-room sequence number and a timestamp, and go through an Orleans stream to the webhook dispatcher.
// Like every message they hold no secret: fingerprints and aliases are public within the room.

/// <summary>What happened in a room.</summary>
[Alias("wzp.RoomActivityKind.v1")]
public enum RoomActivityKind
{
    /// <summary>The first member joined a room that had none (JSON <c>room_started</c>).</summary>
    RoomStarted = 0,

    /// <summary>The last member left (JSON <c>room_finished</c>).</summary>
    RoomFinished = 1,

    /// <summary>A member joined (JSON <c>participant_joined</c>).</summary>
    ParticipantJoined = 2,

    /// <summary>A member is no longer in the room, for <see cref="RoomActivity.Reason"/> (JSON <c>participant_left</c>).</summary>
    ParticipantLeft = 3,

    /// <summary>An admin removed a member (JSON <c>participant_kicked</c>); a <c>participant_left</c> with reason <c>kicked</c> follows.</summary>
    ParticipantKicked = 4,

    /// <summary>A member was muted (JSON <c>participant_muted</c>).</summary>
    ParticipantMuted = 5,

    /// <summary>A muted member was unmuted (JSON <c>participant_unmuted</c>).</summary>
    ParticipantUnmuted = 6,
}

/// <summary>Why a member is no longer in a room.</summary>
[Alias("wzp.ParticipantLeaveReason.v1")]
public enum ParticipantLeaveReason
{
    /// <summary>Not a departure (events other than <see cref="RoomActivityKind.ParticipantLeft"/>).</summary>
    None = 0,

    /// <summary>The member left (its client said so or its connection closed). JSON <c>left</c>.</summary>
    Left = 1,

    /// <summary>The same identity joined again, which replaces its former self. JSON <c>replaced</c>.</summary>
    Replaced = 2,

    /// <summary>An admin removed the member. JSON <c>kicked</c>.</summary>
    Kicked = 3,

    /// <summary>The member's gateway left the cluster (expired, stopped or restarted). JSON <c>gateway_gone</c>.</summary>
    GatewayGone = 4,

    /// <summary>The member's gateway missed a rekey deadline. JSON <c>rekey_timeout</c>.</summary>
    RekeyTimeout = 5,

    /// <summary>An operator closed the room (admin API). JSON <c>room_closed</c>.</summary>
    RoomClosed = 6,
}

/// <summary>One room event as published on the room's stream.</summary>
/// <param name="Room">The room name.</param>
/// <param name="Incarnation">The room activation that published it (new after the room emptied or its silo died).</param>
/// <param name="Sequence">Grows by one per event of the room; an activation continues above its predecessor's
/// numbers (it starts from the clock, as room versions do), so receivers order by it and drop duplicates.</param>
/// <param name="Timestamp">When the room made the change.</param>
/// <param name="Kind">What happened.</param>
/// <param name="Slot">The member's slot; 0 for room events.</param>
/// <param name="Fingerprint">The member's identity fingerprint (public); null for room events.</param>
/// <param name="Alias">The member's alias; null for room events.</param>
/// <param name="Reason">Why the member left (<see cref="RoomActivityKind.ParticipantLeft"/> only).</param>
/// <param name="BySlot">The admin who kicked or muted; 0 when none (or the cluster itself).</param>
/// <param name="Members">Members of the room after the change.</param>
[GenerateSerializer, Immutable, Alias("wzp.RoomActivity.v1")]
public sealed record RoomActivity(
    [property: Id(0)] string Room,
    [property: Id(1)] Guid Incarnation,
    [property: Id(2)] long Sequence,
    [property: Id(3)] DateTimeOffset Timestamp,
    [property: Id(4)] RoomActivityKind Kind,
    [property: Id(5)] ushort Slot,
    [property: Id(6)] Fingerprint? Fingerprint,
    [property: Id(7)] string? Alias,
    [property: Id(8)] ParticipantLeaveReason Reason,
    [property: Id(9)] ushort BySlot,
    [property: Id(10)] int Members)
{
    /// <summary>The Orleans stream provider that carries room events (memory or NATS, docs/operations.md).</summary>
    public const string StreamProvider = "WzpRoomEvents";

    /// <summary>The stream namespace of room events; one stream per room.</summary>
    public const string StreamNamespace = "room";

    /// <summary>
    /// The stream key of a room: 32 hex digits of SHA-256 of its name. Room names may hold characters that
    /// stream transports such as NATS refuse in subjects (dots, spaces, wildcards); a digest never does.
    /// </summary>
    public static string StreamKey(string room)
    {
        ArgumentNullException.ThrowIfNull(room);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(room), digest);
        return Convert.ToHexStringLower(digest[..16]);
    }
}

/// <summary>
/// Receives the room events a room grain publishes. Implementations must return at once and never throw: a room
/// never waits on its events, and a failure to publish one must not fail the join or leave that caused it.
/// </summary>
public interface IRoomActivitySink
{
    /// <summary>Hands an event over for publication; false when it was dropped (counted by the implementation).</summary>
    bool Publish(RoomActivity activity);
}

/// <summary>The dispatcher of one room's events to the configured webhooks (key: <see cref="RoomActivity.StreamKey"/>).</summary>
/// <remarks>
/// Orleans activates it through an implicit stream subscription, so exactly one activation in the cluster
/// receives a room's events and delivers them in order.
/// </remarks>
[Alias("wzp.IRoomWebhookGrain")]
public interface IRoomWebhookGrain : IGrainWithStringKey
{
    /// <summary>What the dispatcher holds and has done so far (for operators and tests).</summary>
    [Alias("GetStatus")]
    Task<WebhookDispatchStatus> GetStatus();
}

/// <summary>A webhook dispatcher's counters since its activation.</summary>
/// <param name="Pending">Events waiting for delivery, summed over the configured URLs.</param>
/// <param name="Delivered">Deliveries a receiver acknowledged (2xx).</param>
/// <param name="FailedAttempts">Attempts that failed (error status, no answer, timeout) and were retried.</param>
/// <param name="Dropped">Events given up (buffer full, or undelivered past <c>Webhooks:GiveUpAfter</c>).</param>
[GenerateSerializer, Immutable, Alias("wzp.WebhookDispatchStatus.v1")]
public sealed record WebhookDispatchStatus(
    [property: Id(0)] int Pending,
    [property: Id(1)] long Delivered,
    [property: Id(2)] long FailedAttempts,
    [property: Id(3)] long Dropped);
