using System.Collections.Concurrent;
using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Orleans.TestingHost;
using Wzp.Grains;
using Wzp.Grains.Routing;
using Wzp.Silo;

namespace Wzp.Benchmarks;

/// <summary>
/// Control plane against a 2-silo in-process cluster (TestingHost, in-memory transport): a member joins and
/// leaves through gateway A while gateway B, hosting another member of the room, waits for each push. The
/// baseline is a plain grain round trip to the same room. Goal (DESIGN.md): join or leave reaches every
/// interested gateway in &lt; 50 ms p99. BenchmarkDotNet's statistics are per iteration; the per-operation
/// propagation percentiles (call start to push arrival at B) are printed at cleanup as "propagation p50/p99".
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class ControlPlaneBenchmarks
{
    private readonly ConcurrentDictionary<ushort, TaskCompletionSource> _joinArrivals = new();
    private readonly ConcurrentDictionary<ushort, TaskCompletionSource> _leaveArrivals = new();
    private readonly List<double> _joinLatencies = [];
    private readonly List<double> _leaveLatencies = [];
    private InProcessTestCluster _cluster = null!;
    private GatewayAgent _source = null!;
    private GatewayAgent _observer = null!;
    private IRoomGrain _room = null!;
    private string _roomName = "";
    private Fingerprint _fingerprint;

    [GlobalSetup]
    public void Setup() => SetupAsync().GetAwaiter().GetResult();

    [GlobalCleanup]
    public void Cleanup()
    {
        Report("join", _joinLatencies);
        Report("leave", _leaveLatencies);
        _source.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _observer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _cluster.StopAllSilosAsync().GetAwaiter().GetResult();
        _cluster.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, Description = "grain round trip (GetStamp)")]
    public Task<RoomStamp> GrainRoundTrip() => _room.GetStamp();

    [Benchmark(Description = "join + leave, each awaited until pushed to the other gateway")]
    public async Task JoinAndLeavePropagated()
    {
        var started = Stopwatch.GetTimestamp();
        var joined = await _source.Rooms.JoinAsync(_roomName, _fingerprint, "bench");
        await Arrival(_joinArrivals, joined.Slot).Task;
        _joinLatencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        _joinArrivals.TryRemove(joined.Slot, out _);

        started = Stopwatch.GetTimestamp();
        await _source.Rooms.LeaveAsync(_roomName, joined.Slot);
        await Arrival(_leaveArrivals, joined.Slot).Task;
        _leaveLatencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        _leaveArrivals.TryRemove(joined.Slot, out _);
    }

    private static TaskCompletionSource Arrival(ConcurrentDictionary<ushort, TaskCompletionSource> arrivals, ushort slot) =>
        arrivals.GetOrAdd(slot, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private static void Report(string what, List<double> samples)
    {
        if (samples.Count == 0)
        {
            return;
        }

        samples.Sort();
        double Percentile(double p) => samples[Math.Min(samples.Count - 1, (int)Math.Ceiling(p * samples.Count) - 1)];
        Console.WriteLine(
            $"// {what} propagation over {samples.Count} operations: p50 {Percentile(0.50):F3} ms, p99 {Percentile(0.99):F3} ms, max {samples[^1]:F3} ms");
    }

    private async Task SetupAsync()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection().Build();
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) => silo.AddWzpControlPlane(configuration));
        _cluster = builder.Build();
        await _cluster.DeployAsync();

        var options = Options.Create(new ControlPlaneOptions());
        _source = await StartGatewayAsync("bench-source", options);
        _observer = await StartGatewayAsync("bench-observer", options);
        _observer.RoomEventReceived += roomEvent =>
        {
            foreach (var member in roomEvent.Joined)
            {
                Arrival(_joinArrivals, member.Slot).TrySetResult();
            }

            foreach (var slot in roomEvent.Left)
            {
                Arrival(_leaveArrivals, slot).TrySetResult();
            }
        };

        _roomName = $"bench-{Guid.NewGuid():N}";
        _room = _cluster.Client.GetGrain<IRoomGrain>(_roomName);
        _fingerprint = Fingerprint.FromBytes(Guid.NewGuid().ToByteArray());
        // The observer's own member keeps it subscribed to the room for the whole run.
        await _observer.Rooms.JoinAsync(_roomName, Fingerprint.FromBytes(Guid.NewGuid().ToByteArray()), "listener");
    }

    private async Task<GatewayAgent> StartGatewayAsync(string id, IOptions<ControlPlaneOptions> options)
    {
        var agent = new GatewayAgent(_cluster.Client, new GatewayIdentity(id, "127.0.0.1:0", []), options);
        // Like a data plane that rekeys at once: report every epoch so the room never evicts the gateway.
        agent.Rooms.Changed += change =>
        {
            if (change.Current is { } current)
            {
                _ = agent.Rooms.ReportRekeyCompleteAsync(change.Room, current.Epoch);
            }
        };
        await agent.StartAsync(CancellationToken.None);
        return agent;
    }
}
