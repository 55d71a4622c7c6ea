using Wzp.Grains;
using Wzp.Grains.Routing;

namespace Wzp.Cluster.Tests;

internal static class Assertions
{
    public static bool SameState(RoomRouting? routing, RoomSnapshot snapshot) =>
        routing is not null
        && routing.Incarnation == snapshot.Incarnation
        && routing.Version == snapshot.Version
        && routing.Epoch == snapshot.Epoch
        && routing.Members.SequenceEqual(snapshot.Members);

    /// <summary>Members compared by what a restore must preserve: slot, fingerprint, alias and gateway.</summary>
    public static IEnumerable<RoomMember> Ordered(IEnumerable<RoomMember> members) => members.OrderBy(member => member.Slot);
}
