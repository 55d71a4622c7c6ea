using System.Collections.Immutable;

namespace Wzp.Grains.Routing;

/// <summary>
/// A gateway's immutable picture of one room at one version: what the forwarding loop reads without locks.
/// Updates build a new instance; nothing here ever changes after construction.
/// </summary>
public sealed class RoomRouting
{
    private RoomRouting(string room, Guid incarnation, long version, long epoch, ImmutableDictionary<ushort, RoomMember> bySlot)
    {
        Room = room;
        Incarnation = incarnation;
        Version = version;
        Epoch = epoch;
        BySlot = bySlot;
        Members = [.. bySlot.Values.OrderBy(member => member.Slot)];
        ByGateway = Members
            .GroupBy(member => member.GatewayId, StringComparer.Ordinal)
            .ToImmutableDictionary(group => group.Key, group => group.ToImmutableArray(), StringComparer.Ordinal);
    }

    /// <summary>The room name.</summary>
    public string Room { get; }

    /// <summary>The room activation this picture comes from.</summary>
    public Guid Incarnation { get; }

    /// <summary>The room version this picture reflects.</summary>
    public long Version { get; }

    /// <summary>The room epoch at <see cref="Version"/>.</summary>
    public long Epoch { get; }

    /// <summary>Every member, sorted by slot.</summary>
    public ImmutableArray<RoomMember> Members { get; }

    /// <summary>Members by slot.</summary>
    public ImmutableDictionary<ushort, RoomMember> BySlot { get; }

    /// <summary>Members grouped by the gateway that hosts them, each group sorted by slot.</summary>
    public ImmutableDictionary<string, ImmutableArray<RoomMember>> ByGateway { get; }

    /// <summary>The members hosted by <paramref name="gatewayId"/> (empty when none).</summary>
    public ImmutableArray<RoomMember> MembersOf(string gatewayId) =>
        ByGateway.TryGetValue(gatewayId, out var members) ? members : [];

    /// <summary>The picture of a snapshot.</summary>
    public static RoomRouting FromSnapshot(RoomSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return new RoomRouting(
            snapshot.Room,
            snapshot.Incarnation,
            snapshot.Version,
            snapshot.Epoch,
            snapshot.Members.ToImmutableDictionary(member => member.Slot));
    }

    /// <summary>
    /// The picture after <paramref name="roomEvent"/>, which must be the next version of the same incarnation
    /// (the caller checks; anything else needs a snapshot).
    /// </summary>
    public RoomRouting Apply(RoomEvent roomEvent)
    {
        ArgumentNullException.ThrowIfNull(roomEvent);
        if (roomEvent.Incarnation != Incarnation || roomEvent.Version != Version + 1)
        {
            throw new ArgumentException(
                $"Event {roomEvent.Incarnation}/{roomEvent.Version} does not follow {Incarnation}/{Version}.", nameof(roomEvent));
        }

        var bySlot = BySlot.RemoveRange(roomEvent.Left).SetItems(
            roomEvent.Joined.Select(member => KeyValuePair.Create(member.Slot, member)));
        return new RoomRouting(Room, Incarnation, roomEvent.Version, roomEvent.Epoch, bySlot);
    }

    /// <summary>This picture with <paramref name="extra"/> members added (slots this picture does not hold).</summary>
    internal RoomRouting With(IEnumerable<RoomMember> extra) =>
        new(Room, Incarnation, Version, Epoch, BySlot.SetItems(extra.Select(member => KeyValuePair.Create(member.Slot, member))));

    /// <summary>The equivalent snapshot (for comparisons and diagnostics).</summary>
    public RoomSnapshot ToSnapshot() => new(Room, Incarnation, Version, Epoch, Members);
}

/// <summary>A room's picture changed on this gateway.</summary>
/// <param name="Room">The room.</param>
/// <param name="Previous">The picture before (null when the room was not tracked).</param>
/// <param name="Current">The picture now (null when the gateway no longer hosts members of the room and
/// stopped tracking it).</param>
/// <param name="Reason">Why the room changed, when the change came from one pushed event (null after a snapshot).</param>
public sealed record RoomRoutingChange(string Room, RoomRouting? Previous, RoomRouting? Current, RoomChangeReason? Reason = null);
