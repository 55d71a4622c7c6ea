using System.Diagnostics;
using System.Globalization;
using Wzp.Client;
using Xunit.Abstractions;

namespace Wzp.ScaleOut.Tests;

/// <summary>
/// A call that lasts, as processes: redis-server, two silos, two gateways, two members who stay the whole call
/// (one per gateway) and others who join and leave at random times on random gateways, with the silo hosting the
/// room killed half-way. A checker samples every client continuously. The short form runs in CI (2 minutes);
/// <c>WZP_SOAK_MINUTES=60</c> runs the long form. Room timings are production defaults except the gateway
/// heartbeat and expiry of <see cref="ScaleOutCluster"/> (0.5 s / 3 s, so a killed process is noticed quickly).
/// </summary>
public sealed class SoakTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan AgreeTimeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task TwoSilosTwoGateways_MembersComeAndGo_ForMinutes_MembershipAndMediaStayTrue()
    {
        if (RedisServer.Executable is null)
        {
            Assert.Fail("redis-server is not installed (apt-get install redis-server, or scripts/install-deps.sh)");
        }

        var minutes = double.TryParse(Environment.GetEnvironmentVariable("WZP_SOAK_MINUTES"), NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m > 0 ? m : 2;
        var duration = TimeSpan.FromMinutes(minutes);
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var present = new List<Participant>();
        var gone = new List<Participant>();
        try
        {
            await RunAsync(cluster, present, gone, duration);
        }
        catch (Exception e)
        {
            cluster.KeepLogs = true;
            output.WriteLine($"full logs kept in {cluster.Directory}");
            output.WriteLine(cluster.Diagnostics());
            throw new Xunit.Sdk.XunitException($"{e.GetType().Name}: {e.Message}\n(process output is in the test output)", e);
        }
        finally
        {
            foreach (var participant in present.Concat(gone)) await participant.DisposeAsync();
        }
    }

    private async Task RunAsync(ScaleOutCluster cluster, List<Participant> present, List<Participant> gone, TimeSpan duration)
    {
        var silo1 = cluster.StartSilo();
        var silo2 = cluster.StartSilo();
        await ScaleOutCluster.WaitHealthyAsync(silo1, StartTimeout);
        await ScaleOutCluster.WaitHealthyAsync(silo2, StartTimeout);
        cluster.PrepareGateway("gw1");
        cluster.PrepareGateway("gw2");
        GatewayProcess[] gateways = [cluster.StartGateway("gw1"), cluster.StartGateway("gw2")];
        foreach (var gateway in gateways) await ScaleOutCluster.WaitHealthyAsync(gateway, StartTimeout);

        var room = $"soak-{Guid.NewGuid():N}"[..16];
        var random = new Random(11);
        var joins = 0;
        var leaves = 0;
        var refusedJoins = 0;
        var mostAtOnce = 0;
        var wrongEvictions = new List<string>();
        var agreeTimes = new List<TimeSpan>();
        var lock_ = new object();

        async Task<Participant?> TryJoin(string name, GatewayProcess gateway)
        {
            try
            {
                var participant = await Participant.JoinAsync(name, gateway, room, cluster.ClusterKey.Fingerprint, cluster.Directory);
                lock (lock_)
                {
                    present.Add(participant);
                    mostAtOnce = Math.Max(mostAtOnce, present.Count);
                }

                joins++;
                return participant;
            }
            catch (WzpClientException e)
            {
                // 'busy' while a room is restored after the silo death: the client would retry.
                refusedJoins++;
                output.WriteLine($"join of {name} refused: {e.Message}");
                return null;
            }
        }

        var anchor1 = await TryJoin("anchor1", gateways[0]) ?? throw new InvalidOperationException("anchor1 could not join");
        var anchor2 = await TryJoin("anchor2", gateways[1]) ?? throw new InvalidOperationException("anchor2 could not join");
        await AgreeAsync();
        var callStart = Stopwatch.GetTimestamp();

        // The checker: a member that is meant to be present must never be cut off.
        using var stopChecking = new CancellationTokenSource();
        var checker = Task.Run(async () =>
        {
            while (!stopChecking.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
                lock (lock_)
                {
                    foreach (var p in present.Where(p => p.Client.Completion.IsCompleted).ToList())
                    {
                        wrongEvictions.Add($"{p.Name}: {p.Client.Completion.Exception?.InnerException?.Message ?? "closed"}");
                        present.Remove(p);
                        gone.Add(p);
                    }
                }
            }
        });

        var killed = false;
        var next = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(1_000, 5_000)));
            if (!killed && clock.Elapsed > duration / 2)
            {
                killed = true;
                var activated = $"Room {room} activated";
                var host = new[] { silo1, silo2 }.FirstOrDefault(s => s.Process.Output.Contains(activated, StringComparison.Ordinal)) ?? silo1;
                output.WriteLine($"{clock.Elapsed.TotalSeconds:F0} s: kill -9 {host.Process.Name}, which hosts the room");
                host.Process.Kill();
                continue;
            }

            var churn = present.Where(p => p != anchor1 && p != anchor2).ToList();
            if (churn.Count < 2 || (churn.Count < 6 && random.Next(2) == 0))
            {
                var name = $"m{next++}";
                if (await TryJoin(name, gateways[random.Next(gateways.Length)]) is null) continue;
            }
            else
            {
                var leaving = churn[random.Next(churn.Count)];
                lock (lock_)
                {
                    present.Remove(leaving);
                    gone.Add(leaving);
                }
                await leaving.Client.LeaveAsync();
                leaves++;
            }

            await AgreeAsync();
        }

        var callEnd = Stopwatch.GetTimestamp();
        await stopChecking.CancelAsync();
        await checker;

        var gaps = new[] { anchor1.LongestGap("anchor2", callStart, callEnd), anchor2.LongestGap("anchor1", callStart, callEnd) };
        var agree = agreeTimes.Order().ToList();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"soak: {duration.TotalMinutes:0.#} min, {joins} joins ({refusedJoins} refused with busy), {leaves} leaves, at most {mostAtOnce} members at once, " +
            $"silo kill: {killed}; member lists agreed after each change within p50 {Percentile(agree, 0.5).TotalMilliseconds:F0} ms, " +
            $"max {agree.LastOrDefault().TotalMilliseconds:F0} ms; longest media gap between the anchors {gaps.Max(g => g.Arrival).TotalMilliseconds:F0} ms " +
            $"(audio lost {gaps.Max(g => g.Sent).TotalMilliseconds:F0} ms); wrong evictions: {wrongEvictions.Count}"));
        Assert.True(wrongEvictions.Count == 0, "members cut off that never left: " + string.Join("; ", wrongEvictions));
        // Media between the members who stayed flows through joins, leaves, rekeys and the silo's death.
        Assert.True(gaps.Max(g => g.Arrival) < TimeSpan.FromSeconds(1), $"longest gap between the anchors {gaps.Max(g => g.Arrival)}");

        // Every present member lists exactly the others, with slots nobody else holds.
        async Task AgreeAsync()
        {
            var started = Stopwatch.GetTimestamp();
            await Eventually.True(() =>
            {
                lock (lock_)
                {
                    var names = present.Select(p => p.Name).ToHashSet();
                    var slots = present.Select(p => p.Client.Slot).ToList();
                    return slots.Distinct().Count() == slots.Count
                        && present.All(p => p.Client.Others.Select(x => x.Alias).Order().SequenceEqual(names.Where(n => n != p.Name).Order())
                            && p.Client.Others.All(x => present.Any(q => q.Name == x.Alias && q.Client.Slot == x.Slot)));
                }
            }, AgreeTimeout, "every client lists exactly the members present, with their slots");
            agreeTimes.Add(Stopwatch.GetElapsedTime(started));
        }
    }

    private static TimeSpan Percentile(List<TimeSpan> sorted, double p) =>
        sorted.Count == 0 ? TimeSpan.Zero : sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
}
