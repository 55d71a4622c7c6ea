using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace Wzp.ScaleOut.Tests;

/// <summary>Runs only when <c>WZP_LOAD_ROOMS</c> is set: a load run that reports figures, not a test with a verdict.</summary>
public sealed class LoadFactAttribute : FactAttribute
{
    public LoadFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("WZP_LOAD_ROOMS")))
            Skip = "A load run, not a test: set WZP_LOAD_ROOMS to room counts, e.g. WZP_LOAD_ROOMS=5,10,20";
    }
}

/// <summary>
/// Issue 7's benchmark: the scale-out topology (redis, 2 silos, 2 gateway processes) under rooms of 5 members, each
/// member sending 50 datagrams/s, for growing room counts. Reports forwarded datagrams/s against what was offered,
/// CPU seconds per process kind, and gateway memory per member. The clients run in this process and compete for
/// the same cores, so the figures are for this machine as a whole.
/// </summary>
public sealed class LoadRun(ITestOutputHelper output)
{
    private const int MembersPerRoom = 5;
    private const int DatagramsPerSecond = 50;
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(15);

    [LoadFact]
    public async Task ScaleOut_UnderLoad_ReportsThroughputCpuAndMemory()
    {
        var steps = Environment.GetEnvironmentVariable("WZP_LOAD_ROOMS")!.Split(',').Select(r => int.Parse(r, CultureInfo.InvariantCulture)).ToArray();
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var participants = new List<Participant>();
        try
        {
            var silos = new[] { cluster.StartSilo(), cluster.StartSilo() };
            foreach (var silo in silos) await ScaleOutCluster.WaitHealthyAsync(silo, TimeSpan.FromSeconds(60));
            cluster.PrepareGateway("gw1");
            cluster.PrepareGateway("gw2");
            var gateways = new[] { cluster.StartGateway("gw1"), cluster.StartGateway("gw2") };
            foreach (var gateway in gateways) await ScaleOutCluster.WaitHealthyAsync(gateway, TimeSpan.FromSeconds(60));
            var idleRss = gateways.Sum(g => Rss(g.Process.Id));
            output.WriteLine("rooms members offered/s forwarded/s link/s delivered% drops/s cpu-silos-s cpu-gateways-s cpu-clients-s gw-rss-MB gw-KB/member");
            var rooms = 0;
            foreach (var target in steps)
            {
                try
                {
                    for (; rooms < target; rooms++)
                    {
                        var room = $"load-{rooms}-{Guid.NewGuid():N}"[..20];
                        for (var m = 0; m < MembersPerRoom; m++)
                        {
                            // Members alternate between the gateways, so every room spans both and uses the links.
                            var gateway = gateways[(rooms * MembersPerRoom + m) % gateways.Length];
                            participants.Add(await Participant.JoinAsync($"m{m}", gateway, room, cluster.ClusterKey.Fingerprint, cluster.Directory, record: false));
                        }
                    }
                }
                catch (Wzp.Client.WzpClientException e)
                {
                    // Joins time out once the machine is saturated: that ends the run, it is not a failure of it.
                    output.WriteLine($"saturated: a join at {rooms} rooms ({participants.Count} members) failed: {e.Message}");
                    break;
                }

                // Fixed periods on purpose: a load run measures over a window; it does not wait for a condition.
                await Task.Delay(Warmup);
                var before = await SampleAsync(silos, gateways);
                await Task.Delay(Window);
                var after = await SampleAsync(silos, gateways);
                var seconds = (after.At - before.At).TotalSeconds;
                var members = rooms * MembersPerRoom;
                // Each datagram a member sends reaches the 4 others: that is what the gateways should forward.
                var offered = members * DatagramsPerSecond * (MembersPerRoom - 1);
                var forwarded = (after.Forwarded - before.Forwarded) / seconds;
                var rss = gateways.Sum(g => Rss(g.Process.Id));
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{rooms} {members} {offered} {forwarded:F0} {(after.Link - before.Link) / seconds:F0} {100 * forwarded / offered:F1} " +
                    $"{(after.Drops - before.Drops) / seconds:F0} {after.SiloCpu - before.SiloCpu:F1} {after.GatewayCpu - before.GatewayCpu:F1} " +
                    $"{after.ClientCpu - before.ClientCpu:F1} {rss / 1048576.0:F0} {(rss - idleRss) / 1024.0 / members:F0}"));
            }
            output.WriteLine($"window {Window.TotalSeconds} s per step; CPU seconds are over the window ({Environment.ProcessorCount} cores); gw-KB/member is gateway RSS above idle per member");
        }
        catch
        {
            cluster.KeepLogs = true;
            output.WriteLine(cluster.Diagnostics());
            throw;
        }
        finally
        {
            foreach (var participant in participants) await participant.DisposeAsync();
        }
    }

    private sealed record Sample(DateTime At, double Forwarded, double Link, double Drops, double SiloCpu, double GatewayCpu, double ClientCpu);

    private static async Task<Sample> SampleAsync(SiloProcess[] silos, GatewayProcess[] gateways)
    {
        double forwarded = 0, link = 0, drops = 0;
        foreach (var gateway in gateways)
        {
            var scrape = await gateway.ScrapeAsync();
            forwarded += ScaleOutCluster.ReadCounter(scrape, "wzp_gateway_datagrams_forwarded_total");
            link += ScaleOutCluster.ReadCounter(scrape, "wzp_gateway_link_datagrams_sent_total");
            drops += ScaleOutCluster.ReadCounter(scrape, "wzp_gateway_datagrams_dropped_total");
        }
        return new Sample(DateTime.UtcNow, forwarded, link, drops,
            silos.Sum(s => CpuSeconds(s.Process.Id)), gateways.Sum(g => CpuSeconds(g.Process.Id)), CpuSeconds(Environment.ProcessId));
    }

    // utime + stime from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
    private static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static long Rss(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
