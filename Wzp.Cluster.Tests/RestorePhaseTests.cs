using Microsoft.Extensions.Time.Testing;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

/// <summary>
/// When a room that may have re-activated after a silo failure admits newcomers again: never before the gateways
/// that still serve its members had their chance to restore them (or their slots could be given away), and a
/// room of a new cluster within milliseconds.
/// </summary>
public sealed class RestorePhaseTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan DirectoryExpiry = TimeSpan.FromSeconds(15);

    [Fact]
    public void NewRoom_InSettledCluster_AdmitsJoinsOnceEveryGatewayAnswered()
    {
        var (clock, phase) = Start();
        phase.FirstCall(newcomer: true);
        Assert.True(phase.HoldsJoins); // the invitations are not out yet

        Assert.True(phase.Invite("gw1"));
        Assert.True(phase.Invite("gw2"));
        Assert.False(phase.Invite("gw1"));
        Assert.False(phase.Censused(TimeSpan.Zero, directoryRecovering: false));
        Assert.True(phase.HoldsJoins);

        phase.Answer("gw1");
        Assert.True(phase.HoldsJoins);
        phase.Answer("gw2");
        Assert.False(phase.HoldsJoins);
        Assert.True(phase.Answered("gw2"));
        Assert.False(phase.Answered("gw3"));
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.False(phase.HoldsJoins);
    }

    [Fact]
    public void GatewayThatNeverAnswers_HoldsJoinsForTheWindowOnly()
    {
        var (clock, phase) = Start();
        phase.FirstCall(newcomer: true);
        phase.Invite("silent");
        phase.Censused(TimeSpan.Zero, directoryRecovering: false);

        clock.Advance(Window - TimeSpan.FromMilliseconds(1));
        Assert.True(phase.HoldsJoins);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(phase.HoldsJoins);
    }

    [Fact]
    public void DirectoryUnreachable_HoldsJoinsForTheWindowOnly()
    {
        var (clock, phase) = Start();
        phase.FirstCall(newcomer: true);
        clock.Advance(Window);
        Assert.False(phase.HoldsJoins);
    }

    [Fact]
    public void NewRoom_InANewCluster_DoesNotWaitForTheYoungDirectory()
    {
        // The directory is younger than its expiry but saw nothing forgotten: a new cluster, not a recovery.
        var (_, phase) = Start();
        phase.FirstCall(newcomer: true);
        Assert.True(phase.Censused(DirectoryExpiry, directoryRecovering: false));
        Assert.False(phase.HoldsJoins);
    }

    [Theory]
    [InlineData(false, true)] // the room's first caller already knew it (a stamp poll, a restore): it re-activated
    [InlineData(true, false)] // the directory saw gateways it had forgotten: it re-activated
    [InlineData(false, false)]
    public void AfterALoss_JoinsWaitUntilTheDirectoryKnowsEveryLiveGateway_ThenForTheLateOnes(bool newcomerFirst, bool directoryRecovering)
    {
        var (clock, phase) = Start();
        phase.FirstCall(newcomer: newcomerFirst);
        var completeIn = TimeSpan.FromSeconds(10);
        Assert.True(phase.Invite("gw1"));
        Assert.True(phase.Censused(completeIn, directoryRecovering));
        phase.Answer("gw1");
        if (newcomerFirst && !directoryRecovering)
        {
            // No sign of a loss: a new room in a new cluster.
            Assert.False(phase.HoldsJoins);
            return;
        }

        // gw1 answered, but gw2 may not have re-registered with the directory yet.
        clock.Advance(completeIn - TimeSpan.FromMilliseconds(1));
        Assert.True(phase.HoldsJoins);

        // The second census, once the directory is complete, finds gw2: it gets a whole window to answer.
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.False(phase.Invite("gw1"));
        Assert.True(phase.Invite("gw2"));
        Assert.False(phase.Censused(TimeSpan.Zero, directoryRecovering));
        clock.Advance(Window - TimeSpan.FromMilliseconds(1));
        Assert.True(phase.HoldsJoins);
        phase.Answer("gw2");
        Assert.False(phase.HoldsJoins);
    }

    [Fact]
    public void FirstCallDecides_LaterCallsDoNotChangeIt()
    {
        var (_, phase) = Start();
        phase.FirstCall(newcomer: true);
        phase.FirstCall(newcomer: false);
        phase.Censused(DirectoryExpiry, directoryRecovering: false);
        Assert.False(phase.HoldsJoins);
    }

    private static (FakeTimeProvider Clock, RestorePhase Phase) Start()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        return (clock, new RestorePhase(clock, Window));
    }
}
