using System.Diagnostics;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;

namespace Wzp.Cluster.Tests;

/// <summary>
/// Issue 12 defect 2: one member flooding its uplink must not starve anyone. The gateway runs the production
/// uplink limit; the flooder sends 10 000 minimal datagrams a second, coalesced about 31 to a QUIC packet.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class UplinkFloodTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Voice = TimeSpan.FromMilliseconds(20);
    private const int Frames = 100;

    [Fact]
    public async Task MemberFlooding_IsLimitedAndCounted_WhileEveryOtherStreamDeliversAllItsMedia()
    {
        var defaults = new GatewayOptions();
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: o =>
        {
            o.MemberUplinkRate = defaults.MemberUplinkRate;
            o.MemberUplinkBurst = defaults.MemberUplinkBurst;
        });
        var flooded = $"room-{Guid.NewGuid():N}";
        await using var flooder = await RawClient.ConnectAsync(gateway.ClientEndPoint.Port, flooded, gateway.Keys.Credential.ClusterKey);
        var alice = await harness.JoinAsync(gateway, flooded, "alice");
        var carol = await harness.JoinAsync(gateway, flooded, "carol");
        var others = new List<(WzpClient Talker, WzpClient Listener)>();
        for (var i = 0; i < 3; i++)
        {
            var room = $"room-{Guid.NewGuid():N}";
            var talker = await harness.JoinAsync(gateway, room, $"talker{i}");
            var listener = await harness.JoinAsync(gateway, room, $"listener{i}");
            others.Add((talker, listener));
        }
        await Eventually.True(() => Task.FromResult(flooder.Keys.Next is null && flooder.Keys.Current.Number >= 2 &&
            alice.Others.Count == 2 && others.All(p => p.Listener.Others.Count == 1)), Patience, "everyone joined and rekeyed");

        var aliceHears = Speech.ListenAsync(alice, int.MaxValue, TimeSpan.FromSeconds(6));
        var listening = others.Select(p => Speech.ListenAsync(p.Listener, Frames, Patience)).ToList();
        using var stop = new CancellationTokenSource();
        var elapsed = Stopwatch.StartNew();
        var flood = Task.Run(() => Flood(flooder, stop.Token));
        var talking = others.Select((p, i) => Speech.TalkAsync(p.Talker, $"talker{i}", Frames, interval: Voice))
            .Append(Speech.TalkAsync(carol, "carol", Frames, interval: Voice)).ToList();
        await Task.WhenAll(talking);
        await stop.CancelAsync();
        var queued = await flood;
        elapsed.Stop();

        foreach (var (frames, i) in (await Task.WhenAll(listening)).Select((f, i) => (f, i)))
        {
            Assert.Equal(Enumerable.Range(0, Frames), frames.Select(f => (int)f.Header.Sequence).Order());
            Assert.All(frames, f => Assert.StartsWith($"talker{i}:", System.Text.Encoding.ASCII.GetString(f.Payload.Span)));
        }
        var heard = await aliceHears;
        var fromCarol = heard.Where(f => f.Source != flooder.Joined.Slot).ToList();
        var fromFlooder = heard.Count(f => f.Source == flooder.Joined.Slot);
        Assert.Equal(Enumerable.Range(0, Frames), fromCarol.Select(f => (int)f.Header.Sequence).Order());

        // The flooder still gets its budget through (the burst at least), and no more than the budget allows over
        // the whole run (a second of slack for the listen window's edges).
        var budget = defaults.MemberUplinkBurst + defaults.MemberUplinkRate * (elapsed.Elapsed.TotalSeconds + 1);
        Assert.InRange(fromFlooder, defaults.MemberUplinkBurst, budget);
        Assert.True(queued > 10 * budget, $"the flood was a flood ({queued} queued)");
        await Eventually.True(() => Task.FromResult(gateway.Counters.Drops(GatewayDrop.UplinkLimit) > queued / 2), Patience,
            $"the flooder's excess is counted ({gateway.Counters.Drops(GatewayDrop.UplinkLimit)} of {queued})");
    }

    /// <summary>10 000 minimal datagrams a second, in batches of 50 every 5 ms, until stopped; how many went out.</summary>
    private static async Task<long> Flood(RawClient flooder, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(5));
        long queued = 0;
        var sequence = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = new byte[50][];
                for (var i = 0; i < batch.Length; i++) batch[i] = flooder.Seal(Speech.Header(sequence++ & 0xFFFF), []);
                Assert.Equal(MediaDatagram.MinSize, batch[0].Length);
                queued += flooder.SendMany(batch);
                await timer.WaitForNextTickAsync(stop);
            }
        }
        catch (OperationCanceledException)
        {
        }
        return queued;
    }
}

public sealed class UplinkBudgetTests
{
    private const long Frequency = 1_000_000; // microsecond timestamps

    [Fact]
    public void FullBucket_AllowsTheBurst_ThenRefusesUntilTimeEarnsTokens()
    {
        var budget = new UplinkBudget(ratePerSecond: 100, burst: 50, Frequency, now: 0);
        Assert.Equal(50, Enumerable.Range(0, 1_000).Count(_ => budget.TryTake(0)));
        Assert.False(budget.TryTake(9_999)); // a token every 10 ms
        Assert.True(budget.TryTake(10_000));
        Assert.False(budget.TryTake(10_000));
    }

    [Fact]
    public void SustainedFlood_GetsExactlyTheRate_WithNoRoundingLoss()
    {
        var budget = new UplinkBudget(ratePerSecond: 100, burst: 50, Frequency, now: 0);
        var granted = 0;
        for (long t = 0; t <= 10 * Frequency; t += 100) // 10 000 datagrams/s for 10 s
            if (budget.TryTake(t)) granted++;
        Assert.Equal(50 + 100 * 10, granted);
    }

    [Fact]
    public void QuietSpell_RefillsOnlyToTheBurst()
    {
        var budget = new UplinkBudget(ratePerSecond: 100, burst: 50, Frequency, now: 0);
        while (budget.TryTake(0)) { }
        Assert.Equal(50, Enumerable.Range(0, 1_000).Count(_ => budget.TryTake(3_600 * Frequency)));
    }

    [Fact]
    public void UplinkLimitOutOfRange_FailsValidation()
    {
        var validator = new GatewayOptionsValidator();
        Assert.True(validator.Validate(null, new GatewayOptions()).Succeeded);
        Assert.True(validator.Validate(null, new GatewayOptions { MemberUplinkRate = 0 }).Failed);
        Assert.True(validator.Validate(null, new GatewayOptions { MemberUplinkBurst = 0 }).Failed);
    }
}
