using System.Diagnostics;
using System.Globalization;
using System.Net;
using Wzp.Client;
using Wzp.Cluster.Tests;
using Xunit.Abstractions;

namespace Wzp.ScaleOut.Tests;

/// <summary>
/// A call that lasts, as processes: redis-server, two silos, three gateways, two members who stay the whole call
/// (on the first and second gateway), one member whose flow goes through a load balancer that moves it, and others
/// who join and leave at random times on random gateways. Five faults strike at even intervals: kill -9 of the silo
/// hosting the room, kill -9 of the silo hosting the gateway directory, kill -9 of the third gateway (the balancer
/// moves its flows; the gateway restarts under the same id), a silo that hangs (SIGSTOP) instead of dying, and a
/// flow moved between two live gateways. A checker samples every client continuously. The short form runs in CI
/// (3 minutes); <c>WZP_SOAK_MINUTES=60</c> runs the long form. Room timings are production defaults except the
/// gateway heartbeat and expiry of <see cref="ScaleOutCluster"/> (0.5 s / 3 s, so a killed process is noticed quickly).
/// </summary>
public sealed class SoakTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan AgreeTimeout = TimeSpan.FromSeconds(20);
    // Long enough for the cluster to declare the hung silo dead (1 s probes, 2 misses, then the vote).
    private static readonly TimeSpan HangFor = TimeSpan.FromSeconds(12);

    [Fact]
    public async Task ThreeGatewaysTwoSilos_MembersComeAndGo_ThroughKillsHangsAndMovedFlows_MembershipAndMediaStayTrue()
    {
        if (RedisServer.Executable is null)
        {
            Assert.Fail("redis-server is not installed (apt-get install redis-server, or scripts/install-deps.sh)");
        }

        var minutes = double.TryParse(Environment.GetEnvironmentVariable("WZP_SOAK_MINUTES"), NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m > 0 ? m : 3;
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var soak = new Soak(cluster, output, TimeSpan.FromMinutes(minutes));
        try
        {
            await soak.RunAsync();
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
            await soak.DisposeAsync();
        }
    }

    private sealed record Fault(string What, long At)
    {
        public TimeSpan? ListsTrueAfter { get; set; }

        public TimeSpan? MovedMemberBackAfter { get; set; }

        public TimeSpan AnchorGap { get; set; }

        public TimeSpan AnchorLost { get; set; }

        public int WrongEvictions { get; set; }

        public int Unhealthy { get; set; }
    }

    private sealed class Soak(ScaleOutCluster cluster, ITestOutputHelper output, TimeSpan duration) : IAsyncDisposable
    {
        private readonly object _lock = new();
        private readonly List<Participant> _present = [];
        private readonly List<Participant> _gone = [];
        private readonly List<(long At, string What)> _wrongEvictions = [];
        private readonly List<(long At, string What)> _unhealthy = [];
        private readonly List<TimeSpan> _agreeTimes = [];
        private readonly List<Fault> _faults = [];
        private readonly List<Task> _background = [];
        private readonly List<SiloProcess> _silos = [];
        private readonly GatewayProcess[] _gateways = new GatewayProcess[3];
        private readonly string _room = $"soak-{Guid.NewGuid():N}"[..16];
        private readonly Random _random = new(11);
        private readonly Stopwatch _clock = new();
        private SwitchingUdpForwarder? _balancer;
        private Participant? _anchor1;
        private Participant? _anchor2;
        private Participant? _mover;
        private int _joins;
        private int _leaves;
        private int _refusedJoins;
        private int _mostAtOnce;
        private int _next;
        private string _lastChange = "";

        public async Task RunAsync()
        {
            _silos.Add(cluster.StartSilo());
            _silos.Add(cluster.StartSilo());
            foreach (var silo in _silos) await ScaleOutCluster.WaitHealthyAsync(silo, StartTimeout);
            for (var i = 0; i < _gateways.Length; i++)
            {
                cluster.PrepareGateway($"gw{i + 1}");
                _gateways[i] = cluster.StartGateway($"gw{i + 1}");
            }
            foreach (var gateway in _gateways) await ScaleOutCluster.WaitHealthyAsync(gateway, StartTimeout);

            _anchor1 = await TryJoinAsync("anchor1", _gateways[0]) ?? throw new InvalidOperationException("anchor1 could not join");
            _anchor2 = await TryJoinAsync("anchor2", _gateways[1]) ?? throw new InvalidOperationException("anchor2 could not join");
            _balancer = new SwitchingUdpForwarder(new IPEndPoint(IPAddress.Loopback, _gateways[2].QuicPort));
            _mover = await TryJoinAsync("mover", _gateways[2], _balancer.EndPoint.Port) ?? throw new InvalidOperationException("the mover could not join");
            await AgreeAsync();
            var callStart = Stopwatch.GetTimestamp();
            _clock.Start();

            using var stopChecking = new CancellationTokenSource();
            var checker = Task.Run(() => CheckAsync(stopChecking.Token));

            Func<Task>[] faults = [KillRoomSiloAsync, KillDirectorySiloAsync, KillGatewayAndMoveItsFlowsAsync, HangRoomSiloAsync, MoveFlowBetweenLiveGatewaysAsync];
            var nextFault = 0;
            while (_clock.Elapsed < duration)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(1_000, 5_000)));
                if (nextFault < faults.Length && _clock.Elapsed > duration * (nextFault + 1) / (faults.Length + 1))
                {
                    await faults[nextFault++]();
                    var fault = _faults[^1];
                    await AgreeAsync(afterChurn: false);
                    fault.ListsTrueAfter = Stopwatch.GetElapsedTime(fault.At);
                    output.WriteLine($"{_clock.Elapsed.TotalSeconds:F0} s: member lists true again {fault.ListsTrueAfter.Value.TotalMilliseconds:F0} ms after: {fault.What}");
                    continue;
                }

                await ChurnAsync();
                await AgreeAsync();
            }

            var callEnd = Stopwatch.GetTimestamp();
            await stopChecking.CancelAsync();
            await checker;
            await Task.WhenAll(_background);
            Report(callStart, callEnd);
        }

        private async Task ChurnAsync()
        {
            var churn = _present.Where(p => p != _anchor1 && p != _anchor2 && p != _mover).ToList();
            if (churn.Count < 2 || (churn.Count < 6 && _random.Next(2) == 0))
            {
                var live = _gateways.Where(g => !g.Process.HasExited).ToList();
                var through = live[_random.Next(live.Count)];
                _lastChange = $"m{_next} joined through {through.GatewayId}";
                await TryJoinAsync($"m{_next++}", through);
                return;
            }

            var leaving = churn[_random.Next(churn.Count)];
            lock (_lock)
            {
                _present.Remove(leaving);
                _gone.Add(leaving);
            }
            _lastChange = $"{leaving.Name} left {leaving.Gateway.GatewayId}";
            await leaving.Client.LeaveAsync();
            _leaves++;
        }

        private async Task<Participant?> TryJoinAsync(string name, GatewayProcess gateway, int? port = null)
        {
            try
            {
                var participant = await Participant.JoinAsync(name, gateway, _room, cluster.ClusterKey.Fingerprint, cluster.Directory,
                    port: port, reconnect: port is not null);
                lock (_lock)
                {
                    _present.Add(participant);
                    _mostAtOnce = Math.Max(_mostAtOnce, _present.Count);
                }
                _joins++;
                return participant;
            }
            catch (WzpClientException e)
            {
                // 'busy' while a room is restored after a silo death, or a join that timed out against a hung silo:
                // a client would retry.
                _refusedJoins++;
                output.WriteLine($"{_clock.Elapsed.TotalSeconds:F0} s: join of {name} through {gateway.GatewayId} refused: {e.Message}");
                return null;
            }
        }

        // A member that is meant to be present must never be cut off, and a gateway that works must never tell
        // its load balancer otherwise (the anchors' gateways never fail).
        private async Task CheckAsync(CancellationToken stop)
        {
            for (var round = 0; !stop.IsCancellationRequested; round++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200), CancellationToken.None);
                if (round % 5 == 0)
                {
                    foreach (var gateway in _gateways[..2])
                    {
                        var (status, body) = await gateway.HealthAsync().ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : (0, t.Exception?.InnerException?.Message ?? ""));
                        if (status != 200) lock (_lock) _unhealthy.Add((Stopwatch.GetTimestamp(), $"{gateway.GatewayId}: {status} {body}"));
                    }
                }
                lock (_lock)
                {
                    foreach (var p in _present.Where(p => p.Client.Completion.IsCompleted).ToList())
                    {
                        _wrongEvictions.Add((Stopwatch.GetTimestamp(), $"{p.Name}: {p.Client.Completion.Exception?.InnerException?.Message ?? "closed"}"));
                        _present.Remove(p);
                        _gone.Add(p);
                    }
                }
            }
        }

        private Fault Begin(string what)
        {
            var fault = new Fault(what, Stopwatch.GetTimestamp());
            _faults.Add(fault);
            output.WriteLine($"{_clock.Elapsed.TotalSeconds:F0} s: {what}");
            return fault;
        }

        private SiloProcess SiloWith(string logLine) =>
            _silos.Where(s => !s.Process.HasExited).LastOrDefault(s => s.Process.Output.Contains(logLine, StringComparison.Ordinal))
            ?? _silos.First(s => !s.Process.HasExited);

        private void ReplaceSilo(SiloProcess dead)
        {
            _silos.Remove(dead);
            var replacement = cluster.StartSilo();
            _silos.Add(replacement);
            _background.Add(ScaleOutCluster.WaitHealthyAsync(replacement, StartTimeout));
        }

        private Task KillRoomSiloAsync()
        {
            var silo = SiloWith($"Room {_room} activated");
            Begin($"kill -9 {silo.Process.Name}, which hosts the room");
            silo.Process.Kill();
            ReplaceSilo(silo);
            return Task.CompletedTask;
        }

        private async Task KillDirectorySiloAsync()
        {
            await Task.WhenAll(_background); // the replacement of the previous kill is up
            var silo = SiloWith("Gateway directory activated");
            var alsoRoom = silo.Process.Output.Contains($"Room {_room} activated", StringComparison.Ordinal);
            Begin($"kill -9 {silo.Process.Name}, which hosts the gateway directory{(alsoRoom ? " (and the room)" : "")}");
            silo.Process.Kill();
            ReplaceSilo(silo);
        }

        private async Task KillGatewayAndMoveItsFlowsAsync()
        {
            var dead = _gateways[2];
            var fault = Begin($"kill -9 {dead.Process.Name}; the balancer moves its flows to gw1; gw3 restarts under the same id");
            lock (_lock)
            {
                // Members on the dead gateway without a balancer in front are lost with it, as the test expects.
                foreach (var p in _present.Where(p => p != _mover && p.Gateway == dead).ToList())
                {
                    _present.Remove(p);
                    _gone.Add(p);
                }
            }
            var reconnects = _mover!.Client.GetStatistics().Reconnects;
            dead.Process.Kill();
            var moved = Stopwatch.GetTimestamp();
            _balancer!.Target = new IPEndPoint(IPAddress.Loopback, _gateways[0].QuicPort);
            fault.MovedMemberBackAfter = await MoverBackAsync(reconnects, moved);
            _gateways[2] = cluster.StartGateway("gw3", "gw3-restarted");
            _background.Add(ScaleOutCluster.WaitHealthyAsync(_gateways[2], StartTimeout));
        }

        private Task HangRoomSiloAsync()
        {
            var silo = SiloWith($"Room {_room} activated");
            Begin($"SIGSTOP {silo.Process.Name} (hosts the room) for {HangFor.TotalSeconds:F0} s: it hangs with its connections open");
            silo.Process.Pause();
            _background.Add(Task.Run(async () =>
            {
                await Task.Delay(HangFor);
                silo.Process.Resume();
                // The cluster has declared it dead meanwhile; it stops on its own or is stopped here.
                await Task.Delay(TimeSpan.FromSeconds(2));
                silo.Process.Kill();
            }));
            ReplaceSilo(silo);
            return Task.CompletedTask;
        }

        private async Task MoveFlowBetweenLiveGatewaysAsync()
        {
            var fault = Begin("the balancer moves the mover's flow from gw1 to gw2 (both alive)");
            var reconnects = _mover!.Client.GetStatistics().Reconnects;
            var moved = Stopwatch.GetTimestamp();
            _balancer!.Target = new IPEndPoint(IPAddress.Loopback, _gateways[1].QuicPort);
            fault.MovedMemberBackAfter = await MoverBackAsync(reconnects, moved);
        }

        private async Task<TimeSpan> MoverBackAsync(long reconnectsBefore, long movedAt)
        {
            await Eventually.True(() => _mover!.Client.GetStatistics().Reconnects > reconnectsBefore && _mover.Client.State == ClientState.Joined,
                TimeSpan.FromSeconds(20), "the moved member is back in the room");
            return Stopwatch.GetElapsedTime(movedAt);
        }

        // Every present member lists exactly the others, with slots nobody else holds. Checked every 2 ms (the check
        // is cheap), so the time measured is the propagation from the room to every client, not a poll interval.
        private async Task AgreeAsync(bool afterChurn = true)
        {
            var started = Stopwatch.GetTimestamp();
            await Wzp.Cluster.Tests.Eventually.Poll(() => Task.FromResult(Agree()), AgreeTimeout,
                "every client lists exactly the members present, with their slots", TimeSpan.FromMilliseconds(2), fatal: null);
            var took = Stopwatch.GetElapsedTime(started);
            if (!afterChurn) return;
            _agreeTimes.Add(took);
            if (took > TimeSpan.FromSeconds(1))
                output.WriteLine($"{_clock.Elapsed.TotalSeconds:F0} s: member lists true only {took.TotalMilliseconds:F0} ms after {_lastChange}");
        }

        private bool Agree()
        {
            lock (_lock)
            {
                var names = _present.Select(p => p.Name).ToHashSet();
                var slots = _present.Select(p => p.Client.Slot).ToList();
                return _present.All(p => p.Client.State == ClientState.Joined)
                    && slots.Distinct().Count() == slots.Count
                    && _present.All(p => p.Client.Others.Select(x => x.Alias).Order().SequenceEqual(names.Where(n => n != p.Name).Order())
                        && p.Client.Others.All(x => _present.Any(q => q.Name == x.Alias && q.Client.Slot == x.Slot)));
            }
        }

        private void Report(long callStart, long callEnd)
        {
            var anchors = (_anchor1!, _anchor2!);
            TimeSpan GapBetweenAnchors(long from, long to) =>
                new[] { anchors.Item1.LongestGap("anchor2", from, to).Arrival, anchors.Item2.LongestGap("anchor1", from, to).Arrival }.Max();
            TimeSpan LostBetweenAnchors(long from, long to) =>
                new[] { anchors.Item1.LongestGap("anchor2", from, to).Lost, anchors.Item2.LongestGap("anchor1", from, to).Lost }.Max();
            for (var i = 0; i < _faults.Count; i++)
            {
                var fault = _faults[i];
                var until = i + 1 < _faults.Count ? _faults[i + 1].At : callEnd;
                fault.AnchorGap = GapBetweenAnchors(fault.At, until);
                fault.AnchorLost = LostBetweenAnchors(fault.At, until);
                fault.WrongEvictions = _wrongEvictions.Count(w => w.At >= fault.At && w.At < until);
                fault.Unhealthy = _unhealthy.Count(w => w.At >= fault.At && w.At < until);
                var back = fault.MovedMemberBackAfter is { } b ? FormattableString.Invariant($", moved member back after {b.TotalMilliseconds:F0} ms") : "";
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"fault {i + 1}: {fault.What}: longest gap between the anchors {fault.AnchorGap.TotalMilliseconds:F0} ms (frames lost: {fault.AnchorLost.TotalMilliseconds:F0} ms), " +
                    $"member lists true after {fault.ListsTrueAfter?.TotalMilliseconds ?? double.NaN:F0} ms{back}, wrong evictions {fault.WrongEvictions}, " +
                    $"/healthz of a working gateway not 200: {fault.Unhealthy} of its once-a-second checks"));
            }

            var (arrival, lost) = (GapBetweenAnchors(callStart, callEnd), LostBetweenAnchors(callStart, callEnd));
            var stall = new[] { anchors.Item1.LongestSendStall, anchors.Item2.LongestSendStall }.Max();
            var agree = _agreeTimes.Order().ToList();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak: {duration.TotalMinutes:0.#} min, {_joins} joins ({_refusedJoins} refused), {_leaves} leaves, at most {_mostAtOnce} members at once, " +
                $"{_faults.Count} faults; member lists agreed after each join or leave within p50 {Percentile(agree, 0.5).TotalMilliseconds:F0} ms, p99 {Percentile(agree, 0.99).TotalMilliseconds:F0} ms, " +
                $"max {agree.LastOrDefault().TotalMilliseconds:F0} ms; longest media gap between the anchors {arrival.TotalMilliseconds:F0} ms " +
                $"(longest run of frames lost {lost.TotalMilliseconds:F0} ms; the anchors' own longest send stall {stall.TotalMilliseconds:F0} ms); wrong evictions: {_wrongEvictions.Count}"));
            foreach (var (at, what) in _wrongEvictions) output.WriteLine($"  wrong eviction at {Stopwatch.GetElapsedTime(callStart, at).TotalSeconds:F1} s: {what}");
            foreach (var (at, what) in _unhealthy) output.WriteLine($"  unhealthy at {Stopwatch.GetElapsedTime(callStart, at).TotalSeconds:F1} s: {what}");

            // Members who stay are never announced as leaving or joining again: a restore keeps them as they were.
            var spurious = new[] { (anchors.Item1, "anchor2"), (anchors.Item2, "anchor1") }
                .SelectMany(pair => pair.Item1.MemberEvents.Where(e => e.Member.Alias == pair.Item2)
                    .Skip(1).Select(e => $"{pair.Item1.Name} was told {pair.Item2} {e.Kind}"))
                .ToList();
            output.WriteLine($"spurious member events between the anchors: {spurious.Count}");
            Assert.Equal(5, _faults.Count);
            Assert.True(spurious.Count == 0, string.Join("; ", spurious));
            Assert.True(_wrongEvictions.Count == 0, "members cut off that never left: " + string.Join("; ", _wrongEvictions.Select(w => w.What)));
            // No working gateway tells its load balancer otherwise after a silo's or a gateway's death. A hung silo is
            // different: an Orleans client sends through one silo it picked, and while that silo hangs (until the
            // cluster declares it dead) the gateway really cannot reach the cluster; its /healthz says so, reported above.
            var hang = _faults.FindIndex(f => f.What.StartsWith("SIGSTOP", StringComparison.Ordinal));
            var hangEnd = hang + 1 < _faults.Count ? _faults[hang + 1].At : callEnd;
            var unhealthy = _unhealthy.Where(u => u.At < _faults[hang].At || u.At >= hangEnd).ToList();
            Assert.True(unhealthy.Count == 0, "working gateways reported unhealthy: " + string.Join("; ", unhealthy.Select(w => w.What)));
            // The anchors' gateways never fail: media between them flows through every fault (goal 0 for a silo's death).
            // Frames the path lost count (a gap in the sender's frame numbers), and so does silence at the listener
            // beyond what the sender itself was stalled (this test process runs every client; a stall of its own
            // delays frames without the relay losing any).
            Assert.True(lost < TimeSpan.FromSeconds(1), $"the anchors lost {lost} of consecutive frames");
            Assert.True(arrival - stall < TimeSpan.FromSeconds(1), $"longest gap between the anchors {arrival}, of which the senders' own stall {stall}");
            // Members of a dead gateway, and a member whose flow moved, are back through another gateway within 2 s.
            foreach (var fault in _faults.Where(f => f.MovedMemberBackAfter is not null))
                Assert.True(fault.MovedMemberBackAfter < TimeSpan.FromSeconds(2), $"{fault.What}: the moved member was back after {fault.MovedMemberBackAfter}");
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var participant in _present.Concat(_gone)) await participant.DisposeAsync();
            if (_balancer is not null) await _balancer.DisposeAsync();
        }
    }

    private static TimeSpan Percentile(List<TimeSpan> sorted, double p) =>
        sorted.Count == 0 ? TimeSpan.Zero : sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
}
