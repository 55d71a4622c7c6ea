using Microsoft.Extensions.Time.Testing;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

/// <summary>
/// How a grain tells its own stall (its silo hung) from a busy machine: a timer that fires far later than it was
/// due means the grain heard no one meanwhile, so deadlines that ran out then are shifted instead of enforced.
/// The scenario itself (a SIGSTOPped silo that resumes) is in the soak test of Wzp.ScaleOut.Tests.
/// </summary>
public sealed class StallWatchTests
{
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

    [Fact]
    public void TimerOnTime_OrLateWithinTheTolerance_IsNoStall()
    {
        var clock = new FakeTimeProvider();
        var watch = new StallWatch(clock, Tolerance);
        Assert.Equal(TimeSpan.Zero, watch.Stalled()); // nothing expected yet

        watch.Expect(TimeSpan.FromSeconds(5));
        clock.Advance(TimeSpan.FromSeconds(5.9));
        Assert.Equal(TimeSpan.Zero, watch.Stalled());
    }

    [Fact]
    public void TimerFarLate_IsAStallOfHowLateItWas_AndShiftsDeadlinesByThat()
    {
        var clock = new FakeTimeProvider();
        var watch = new StallWatch(clock, Tolerance);
        var issuedAt = clock.GetTimestamp();
        watch.Expect(TimeSpan.FromSeconds(5));
        clock.Advance(TimeSpan.FromSeconds(17));

        var stall = watch.Stalled();
        Assert.Equal(TimeSpan.FromSeconds(12), stall);
        // A deadline issued at the start is now as old as the time the grain could actually run.
        Assert.Equal(TimeSpan.FromSeconds(5), clock.GetElapsedTime(watch.Shift(issuedAt, stall)));
    }

    [Fact]
    public void TimerCancelled_IsNeverAStall()
    {
        var clock = new FakeTimeProvider();
        var watch = new StallWatch(clock, Tolerance);
        watch.Expect(TimeSpan.FromSeconds(1));
        watch.Expect(Timeout.InfiniteTimeSpan);
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.Zero, watch.Stalled());
    }
}
