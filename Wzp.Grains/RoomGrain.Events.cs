using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Wzp.Grains;

// The room's events for operators (room_started, participant_joined, ...): kept apart from the membership
// logic, which only calls the On* methods below at the point where each change happens. Publication never
// waits and never throws (IRoomActivitySink), so an event can never delay or fail the change it reports.
public sealed partial class RoomGrain
{
    private IRoomActivitySink? _activitySink;
    private long _activitySequence;
    private bool _activityStarted;

    private IRoomActivitySink ActivitySink =>
        _activitySink ??= ServiceProvider.GetService<IRoomActivitySink>() ?? NoRoomActivitySink.Instance;

    /// <summary>
    /// Publishes <c>participant_muted</c> or <c>participant_unmuted</c> for the member in <paramref name="slot"/>;
    /// the mute code calls it once the room recorded the change. Does nothing for a slot that is not a member.
    /// </summary>
    /// <param name="slot">The member whose mute state changed.</param>
    /// <param name="muted">True for muted, false for unmuted.</param>
    /// <param name="bySlot">The admin who asked, or 0 for an operator (admin API) or the cluster.</param>
    internal void OnMemberMuted(ushort slot, bool muted, ushort bySlot)
    {
        if (_members.TryGetValue(slot, out var member))
        {
            EmitActivity(muted ? RoomActivityKind.ParticipantMuted : RoomActivityKind.ParticipantUnmuted, member, ParticipantLeaveReason.None, bySlot);
        }
    }

    private void OnMemberJoined(RoomMember member)
    {
        if (!_activityStarted)
        {
            _activityStarted = true;
            EmitActivity(RoomActivityKind.RoomStarted, member: null, ParticipantLeaveReason.None, bySlot: 0);
        }

        EmitActivity(RoomActivityKind.ParticipantJoined, member, ParticipantLeaveReason.None, bySlot: 0);
    }

    // Restored members never left (their room lost its state with its silo): no event, but the room is under way.
    private void OnMembersRestored() => _activityStarted = true;

    private void OnMemberGone(RoomMember member, ParticipantLeaveReason reason, ushort bySlot = 0)
    {
        if (reason == ParticipantLeaveReason.Kicked)
        {
            EmitActivity(RoomActivityKind.ParticipantKicked, member, ParticipantLeaveReason.None, bySlot);
        }

        EmitActivity(RoomActivityKind.ParticipantLeft, member, reason, bySlot);
    }

    private void OnRoomEmpty()
    {
        if (_activityStarted)
        {
            _activityStarted = false;
            EmitActivity(RoomActivityKind.RoomFinished, member: null, ParticipantLeaveReason.None, bySlot: 0);
        }
    }

    private static ParticipantLeaveReason LeaveReasonOf(RoomChangeReason reason) => reason switch
    {
        RoomChangeReason.RekeyTimeout => ParticipantLeaveReason.RekeyTimeout,
        RoomChangeReason.Kicked => ParticipantLeaveReason.Kicked,
        RoomChangeReason.Left => ParticipantLeaveReason.Left,
        _ => ParticipantLeaveReason.GatewayGone,
    };

    private void EmitActivity(RoomActivityKind kind, RoomMember? member, ParticipantLeaveReason reason, ushort bySlot)
    {
        if (_activitySequence == 0)
        {
            // Like versions: from the clock, so a re-activated room numbers its events above its predecessor's.
            _activitySequence = _timeProvider.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        }

        var activity = new RoomActivity(
            RoomName, _incarnation, ++_activitySequence, _timeProvider.GetUtcNow(), kind,
            member?.Slot ?? 0, member?.Fingerprint, member?.Alias, reason, bySlot, _members.Count);
        try
        {
            ActivitySink.Publish(activity);
        }
        catch (Exception exception)
        {
            // A sink must not throw; if one does anyway, the room's change stands and the event is lost.
            RoomEventMetrics.OnDropped("sink-error");
            EventLog.ActivityPublishFailed(_logger, RoomName, exception);
        }
    }

    private sealed class NoRoomActivitySink : IRoomActivitySink
    {
        public static readonly NoRoomActivitySink Instance = new();

        public bool Publish(RoomActivity activity) => false;
    }

    private static partial class EventLog
    {
        [LoggerMessage(EventId = 2020, Level = LogLevel.Warning, Message = "Room {Room}: an event could not be handed to the publisher")]
        public static partial void ActivityPublishFailed(ILogger logger, string room, Exception exception);
    }
}
