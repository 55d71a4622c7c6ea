namespace Wzp.Grains;

/// <summary>
/// Tells a grain timer how long the grain itself was kept from running: a silo that hung (SIGSTOP, a stuck
/// machine, a pause far beyond any GC) runs its overdue timers the moment it resumes, before the messages that
/// queued up meanwhile. Deadlines that ran out while the grain could not hear anyone are no one else's fault, so
/// a grain shifts them by the stall instead of acting on them. Pure state; the grain drives it.
/// </summary>
internal sealed class StallWatch(TimeProvider timeProvider, TimeSpan tolerance)
{
    private long _due = long.MinValue;

    /// <summary>Records when the timer should fire next.</summary>
    public void Expect(TimeSpan dueIn)
    {
        var now = timeProvider.GetTimestamp();
        _due = dueIn == Timeout.InfiniteTimeSpan ? long.MinValue : now + (long)(dueIn.TotalSeconds * timeProvider.TimestampFrequency);
    }

    /// <summary>
    /// Called when the timer fires: how much later than expected, when that is more than the tolerance (ordinary
    /// scheduling delay on a busy machine is not a stall); zero otherwise.
    /// </summary>
    public TimeSpan Stalled()
    {
        if (_due == long.MinValue)
        {
            return TimeSpan.Zero;
        }

        var late = timeProvider.GetElapsedTime(_due);
        return late > tolerance ? late : TimeSpan.Zero;
    }

    /// <summary>A timestamp moved later by <paramref name="stall"/>.</summary>
    public long Shift(long timestamp, TimeSpan stall) => timestamp + (long)(stall.TotalSeconds * timeProvider.TimestampFrequency);
}
