namespace Wzp.Grains;

/// <summary>
/// A room activation's first moments, when it may be the successor of an activation that died with its silo:
/// until the gateways that still serve members of the room have restored them, a newcomer must not be given a
/// slot one of them holds. Decides when the room may admit joins again. Pure state; the room drives it.
/// </summary>
/// <remarks>
/// Joins are held until every gateway the directory listed answered its restore invitation, at most
/// <c>Cluster:RestoreWindow</c>. The list can only be trusted when the directory is complete: one that re-activated
/// with its silo knows only the gateways that re-registered since. If there is reason to think the room or the
/// directory lost state (the room's first caller already knew it, or the directory saw gateways it had forgotten),
/// joins are held until the directory is complete, and the gateways that appeared meanwhile are invited too.
/// A room of a new cluster, whose first caller is a newcomer, waits only for the answers, a few milliseconds.
/// </remarks>
internal sealed class RestorePhase(TimeProvider timeProvider, TimeSpan window)
{
    private readonly HashSet<string> _awaiting = new(StringComparer.Ordinal);
    private readonly HashSet<string> _answered = new(StringComparer.Ordinal);
    private DateTimeOffset _deadline = timeProvider.GetUtcNow() + window;
    private DateTimeOffset _directoryCompleteAt;
    private bool _censused;
    private bool _directoryRecovering;
    private bool? _startedByNewcomer;

    /// <summary>True while joins must wait (the gateway retries shortly).</summary>
    public bool HoldsJoins
    {
        get
        {
            var now = timeProvider.GetUtcNow();
            if (!_censused)
            {
                return now < _deadline;
            }

            if (now < _directoryCompleteAt && (_directoryRecovering || _startedByNewcomer == false))
            {
                return true;
            }

            return _awaiting.Count > 0 && now < _deadline;
        }
    }

    /// <summary>
    /// Records what kind of call reached the activation first: a join by a gateway with no members here
    /// (<paramref name="newcomer"/>) is how a new room starts; anything else means the room existed before.
    /// </summary>
    public void FirstCall(bool newcomer) => _startedByNewcomer ??= newcomer;

    /// <summary>True when the room should invite <paramref name="gatewayId"/> (it has not been invited nor answered).</summary>
    public bool Invite(string gatewayId) => !_answered.Contains(gatewayId) && _awaiting.Add(gatewayId);

    /// <summary>The gateway restored its members (or had none).</summary>
    public void Answer(string gatewayId)
    {
        _awaiting.Remove(gatewayId);
        _answered.Add(gatewayId);
    }

    /// <summary>Whether the gateway has answered in this activation.</summary>
    public bool Answered(string gatewayId) => _answered.Contains(gatewayId);

    /// <summary>
    /// Records a census of the directory (after the invitations it led to); true when another census is due
    /// after <paramref name="completeIn"/>, when the directory can vouch for its list.
    /// </summary>
    public bool Censused(TimeSpan completeIn, bool directoryRecovering)
    {
        var now = timeProvider.GetUtcNow();
        if (_censused && _awaiting.Count > 0)
        {
            // A later census invited gateways the first one did not know: they get a whole window to answer.
            _deadline = Max(_deadline, now + window);
        }

        _censused = true;
        _directoryRecovering |= directoryRecovering;
        _directoryCompleteAt = now + completeIn;
        return completeIn > TimeSpan.Zero;
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
