using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Configuration;
using Orleans.TestingHost;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Grains;
using Wzp.Protocol;
using Wzp.Quic;
using Wzp.Silo;
using Fingerprint = Wzp.Protocol.Fingerprint;

namespace Wzp.Benchmarks;

/// <summary>
/// Issue 5's benchmark, a load run rather than a BenchmarkDotNet microbenchmark:
/// <c>dotnet Wzp.Benchmarks.dll --gateway-load [--in-process] [--measure SECONDS]</c>.
/// <list type="number">
/// <item>Wzp.Quic's raw fan-out rate: <see cref="QuicDatagramBenchmarks.QuicFanOutFromHandler"/> (issue 3, case b)
///   invoked repeatedly, median of the invocations.</item>
/// <item>A 1-silo in-process cluster and one <see cref="GatewayServer"/> on loopback. Rooms of 10
///   <see cref="WzpClient"/> members, by default in a child process (this executable with
///   <c>--gateway-load-members</c>, driven over stdin/stdout); every member sends 160-byte frames at a fixed
///   rate, paced frame-exact by one thread. Rooms and then the per-member rate are doubled until the gateway's
///   forwarded datagrams/s (<see cref="GatewayCounters.Forwarded"/> over a fixed window) stop growing.</item>
/// <item>At half the saturating forwarded rate: one-way latency, send timestamp in the payload to arrival at
///   each recipient (Stopwatch is CLOCK_MONOTONIC, shared by both processes), p50/p99; then the same through a
///   raw Wzp.Quic relay (no crypto, no Orleans: each uplink datagram handed from the handler to the 9 other
///   connections of its room) with the same rooms and rate. Added latency = gateway percentile - raw percentile.</item>
/// <item>CPU per forwarded datagram of both processes above their idle cost, against the CPU per datagram of the raw
///   fan-out: a ratio that other tenants of a shared machine disturb less than the rates do.</item>
/// </list>
/// </summary>
public static class GatewayForwardingBenchmark
{
    public const string Switch = "--gateway-load";
    public const string MembersSwitch = "--gateway-load-members";

    private const int RoomSize = 10;
    private const int PayloadSize = 160;

    /// <summary>Wzp.Quic listeners refuse more than 256 connections per source address (the gateway keeps that default), and every member comes from 127.0.0.1.</summary>
    private const int MaxRooms = 25;

    /// <summary>Percentiles of a window without samples (the idle one) are NaN.</summary>
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private static readonly (int Rooms, double Rate)[] Steps =
    [
        (1, 50), (2, 50), (4, 50), (8, 50), (16, 50), (MaxRooms, 50),
        (MaxRooms, 100), (MaxRooms, 200), (MaxRooms, 400), (MaxRooms, 800), (MaxRooms, 1600),
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        bool inProcess = args.Contains("--in-process");
        int measureIndex = Array.IndexOf(args, "--measure");
        var measure = TimeSpan.FromSeconds(measureIndex >= 0 ? double.Parse(args[measureIndex + 1], CultureInfo.InvariantCulture) : 5);
        var warmup = TimeSpan.FromSeconds(2);
        var total = Stopwatch.StartNew();

        Console.WriteLine($"# Gateway forwarding load run ({DateTime.UtcNow:u}), {Environment.ProcessorCount} cores, load average {LoadAverage()}");
        Console.WriteLine(inProcess
            ? "# members: IN THE GATEWAY'S PROCESS (--in-process): clients and gateway share the process; 'client cores' = 'gw process cores'"
            : "# members: in a child process (this executable, --gateway-load-members)");

        // Measured before and after the gateway steps: on a shared machine the two can differ a lot, and the ratio uses their mean.
        var (rawFanOutBefore, rawCpuBefore) = MeasureRawFanOut();
        Console.WriteLine(
            $"raw Wzp.Quic fan-out from a datagram handler (issue 3 case b, 1 uplink -> 100 connections), before: {rawFanOutBefore:N0} datagrams/s, " +
            $"{rawCpuBefore:F1} µs CPU per datagram (sender, relay and receivers)");

        string directory = Path.Combine(Path.GetTempPath(), $"wzp-gwload-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var builder = new InProcessTestClusterBuilder(1);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection().Build();
        builder.ConfigureSilo((_, silo) => silo.AddWzpControlPlane(configuration));
        InProcessTestCluster cluster = builder.Build();
        await cluster.DeployAsync();
        var options = new GatewayOptions
        {
            GatewayId = "bench-gw",
            ListenAddress = "127.0.0.1:0",
            LinkListenAddress = "127.0.0.1:0",
            DataDirectory = Path.Combine(directory, "gw"),
            SelfIssueCredential = true,
            ClusterKeyFile = Path.Combine(directory, "cluster.seed"),
            MaxPendingHandshakesPerAddress = 256,
            // The steps raise each member's rate to 1 600 frames/s to find the gateway's forwarding limit.
            MemberUplinkRate = 1_000_000,
            MemberUplinkBurst = 10_000,
        };
        var keys = GatewayKeys.Load(options, TimeProvider.System);
        var gateway = new GatewayServer(options, keys, cluster.Client, Microsoft.Extensions.Options.Options.Create(new ControlPlaneOptions()));
        await gateway.StartAsync(CancellationToken.None);
        var relay = RawRelay.Start(directory);
        MemberDriver members = inProcess ? MemberDriver.InProcess() : MemberDriver.Child();
        try
        {
            string fingerprint = keys.ClusterFingerprint.ToHex();
            Console.WriteLine($"# window: {warmup.TotalSeconds:0} s warm-up, {measure.TotalSeconds:0} s measured per step; 160-byte frames; rooms of {RoomSize}");
            Console.WriteLine(
                "rooms | members | frames/s/member | offered fwd/s | forwarded/s | delivered/s | gw drops (congestion) | send fails | gw process cores | client cores | e2e p50/p99 ms | load avg");

            double best = 0;
            int connectedRooms = 0;
            double lastRate = 0;
            double bestGatewayCores = 0, bestClientCores = 0;
            foreach (var (rooms, rate) in Steps)
            {
                if (rooms > connectedRooms)
                {
                    connectedRooms = await members.ConnectAsync("wzp", gateway.ClientEndPoint.Port, fingerprint, rooms);
                }

                lastRate = rate;
                var (result, forwarded, drops, congestion, cores) = await RunGatewayStepAsync(members, gateway, rate, warmup, measure);
                double offered = result.Members * rate * (RoomSize - 1);
                Console.WriteLine(
                    $"{connectedRooms,5} | {result.Members,7} | {rate,15:N0} | {offered,13:N0} | {forwarded,11:N0} | {result.Received / measure.TotalSeconds,11:N0} | " +
                    $"{drops,10:N0} ({congestion:N0}) | {result.SendFailed + result.Skipped,10:N0} | {cores,16:F2} | {result.CpuCores,12:F2} | {result.P50Micros / 1000:F2}/{result.P99Micros / 1000:F2} | {LoadAverage()}");
                bool grew = forwarded >= best * 1.10;
                if (forwarded > best)
                {
                    (best, bestGatewayCores, bestClientCores) = (forwarded, cores, result.CpuCores);
                }

                if (!grew || forwarded < 0.7 * offered)
                {
                    Console.WriteLine(!grew ? "# forwarded/s stopped growing: saturated" : "# forwarded/s fell below 70 % of offered: saturated");
                    break;
                }
            }

            var (rawFanOutAfter, rawCpuAfter) = MeasureRawFanOut();
            double rawFanOut = (rawFanOutBefore + rawFanOutAfter) / 2;
            double rawCpu = (rawCpuBefore + rawCpuAfter) / 2;
            Console.WriteLine($"raw Wzp.Quic fan-out from a datagram handler, after: {rawFanOutAfter:N0} datagrams/s, {rawCpuAfter:F1} µs CPU per datagram; mean {rawFanOut:N0}/s");
            Console.WriteLine($"saturation: {best:N0} forwarded datagrams/s = {best / rawFanOut:P0} of raw fan-out (goal >= 50 %)");

            // Half load: the rooms already connected, the per-member rate that offers half the best forwarded rate.
            double halfRate = best / 2 / (connectedRooms * RoomSize * (RoomSize - 1));
            var latencyWindow = TimeSpan.FromSeconds(Math.Max(8, measure.TotalSeconds));
            var (gw, gwForwarded, _, _, gwCores) = await RunGatewayStepAsync(members, gateway, halfRate, warmup, latencyWindow);
            await members.ConnectAsync("raw", relay.Port, "-", connectedRooms);
            await relay.WaitForRoomsAsync(connectedRooms * RoomSize);
            long relayBefore = relay.Forwarded;
            LoadResult raw = await members.RunAsync("raw", halfRate, warmup, latencyWindow, () => { }, () => { });
            double relayForwarded = (relay.Forwarded - relayBefore) / (latencyWindow + warmup).TotalSeconds;

            Console.WriteLine(
                $"half load: {connectedRooms} rooms x {RoomSize} members x {halfRate:F1} frames/s; gateway forwarded {gwForwarded:N0}/s " +
                $"(gateway process {gwCores:F2} cores); raw relay ~{relayForwarded:N0}/s");
            Console.WriteLine(
                $"  through the gateway: {gw.Received:N0} frames, p50 {gw.P50Micros / 1000:F3} ms, p99 {gw.P99Micros / 1000:F3} ms, p99.9 {gw.P999Micros / 1000:F3} ms, max {gw.MaxMicros / 1000:F3} ms");
            Console.WriteLine(
                $"  through raw QUIC:    {raw.Received:N0} frames, p50 {raw.P50Micros / 1000:F3} ms, p99 {raw.P99Micros / 1000:F3} ms, p99.9 {raw.P999Micros / 1000:F3} ms, max {raw.MaxMicros / 1000:F3} ms");
            Console.WriteLine(
                $"added latency per hop (gateway - raw): p50 {(gw.P50Micros - raw.P50Micros) / 1000:F3} ms, p99 {(gw.P99Micros - raw.P99Micros) / 1000:F3} ms (goal p99 <= 1 ms)");
            // What both processes burn with every member connected and silent (timers, keep-alives, the silo): the
            // CPU per forwarded datagram above that is the figure least disturbed by other tenants of the machine.
            var (idle, _, _, _, idleCores) = await RunGatewayStepAsync(members, gateway, 0, TimeSpan.Zero, measure);
            Console.WriteLine(
                $"idle, {connectedRooms} rooms connected and silent: gateway process {idleCores:F2} cores, members {idle.CpuCores:F2} cores{(inProcess ? " (same process)" : "")}");
            Console.WriteLine(
                $"CPU per forwarded datagram at the best step, above idle: gateway process {(bestGatewayCores - idleCores) / best * 1e6:F1} µs" +
                (inProcess ? "" : $", members {(bestClientCores - idle.CpuCores) / best * 1e6:F1} µs (sending and receiving it)"));
            if (!inProcess)
            {
                double gatewayPath = (bestGatewayCores - idleCores + bestClientCores - idle.CpuCores) / best * 1e6;
                Console.WriteLine(
                    $"CPU ratio (less disturbed by other tenants): raw fan-out {rawCpu:F1} µs / gateway path (gateway + members) {gatewayPath:F1} µs = {rawCpu / gatewayPath:P0}");
            }

            Console.WriteLine($"# last saturation-step rate {lastRate} frames/s/member; run took {total.Elapsed.TotalSeconds:F0} s; load average now {LoadAverage()}");
            return 0;
        }
        finally
        {
            await members.DisposeAsync();
            await relay.DisposeAsync();
            await gateway.DisposeAsync();
            keys.Dispose();
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The child process: answers the parent's commands on stdin, one line each, until stdin closes.</summary>
    public static async Task<int> RunMembersAsync()
    {
        await using var host = new MemberHost(async line =>
        {
            await Console.Out.WriteLineAsync(line);
            await Console.Out.FlushAsync();
        });
        while (await Console.In.ReadLineAsync() is { } line)
        {
            await host.HandleAsync(line);
        }

        return 0;
    }

    private static async Task<(LoadResult Result, double Forwarded, long Drops, long Congestion, double Cores)> RunGatewayStepAsync(
        MemberDriver members, GatewayServer gateway, double rate, TimeSpan warmup, TimeSpan measure)
    {
        long forwarded0 = 0, drops0 = 0, congestion0 = 0;
        TimeSpan cpu0 = default;
        long forwarded1 = 0, drops1 = 0, congestion1 = 0;
        TimeSpan cpu1 = default;
        long t0 = 0, t1 = 0;
        LoadResult result = await members.RunAsync(
            "wzp",
            rate,
            warmup,
            measure,
            () => (forwarded0, drops0, congestion0, cpu0, t0) = (gateway.Counters.Forwarded, gateway.Counters.TotalDrops,
                gateway.Counters.Drops(GatewayDrop.Congestion), Environment.CpuUsage.TotalTime, Stopwatch.GetTimestamp()),
            () => (forwarded1, drops1, congestion1, cpu1, t1) = (gateway.Counters.Forwarded, gateway.Counters.TotalDrops,
                gateway.Counters.Drops(GatewayDrop.Congestion), Environment.CpuUsage.TotalTime, Stopwatch.GetTimestamp()));
        double seconds = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
        return (result, (forwarded1 - forwarded0) / seconds, drops1 - drops0, congestion1 - congestion0, (cpu1 - cpu0).TotalSeconds / seconds);
    }

    /// <returns>Datagrams/s (median invocation) and CPU µs per datagram of this process over all invocations.</returns>
    private static (double Rate, double CpuMicros) MeasureRawFanOut()
    {
        var benchmark = new QuicDatagramBenchmarks();
        benchmark.Setup();
        try
        {
            benchmark.QuicFanOutFromHandler();
            var rates = new List<double>();
            TimeSpan cpu0 = Environment.CpuUsage.TotalTime;
            for (int i = 0; i < 9; i++)
            {
                long started = Stopwatch.GetTimestamp();
                benchmark.QuicFanOutFromHandler();
                // One invocation forwards 20,000 datagrams (200 uplinks to 100 connections).
                rates.Add(20_000 / Stopwatch.GetElapsedTime(started).TotalSeconds);
            }

            double cpuMicros = (Environment.CpuUsage.TotalTime - cpu0).TotalMicroseconds / (rates.Count * 20_000);
            rates.Sort();
            return (rates[rates.Count / 2], cpuMicros);
        }
        finally
        {
            benchmark.Cleanup();
        }
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static double Percentile(long[] histogram, long count, double p)
    {
        if (count == 0)
        {
            return double.NaN;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(p * count));
        long seen = 0;
        for (int i = 0; i < histogram.Length; i++)
        {
            seen += histogram[i];
            if (seen >= rank)
            {
                return i;
            }
        }

        return histogram.Length - 1;
    }

    /// <summary>What the members measured over one window. Latencies in microseconds, send to arrival.</summary>
    private sealed record LoadResult(
        int Members, long Sent, long SendFailed, long Skipped, long Received, long Expected,
        double P50Micros, double P99Micros, double P999Micros, double MaxMicros, double CpuCores);

    private delegate void PayloadHandler(ReadOnlySpan<byte> payload);

    /// <summary>The parent's side of the member protocol: a line out, lines back.</summary>
    private sealed class MemberDriver : IAsyncDisposable
    {
        private readonly Func<string, Task> _send;
        private readonly Func<Task<string?>> _receive;
        private readonly Func<ValueTask> _dispose;

        private MemberDriver(Func<string, Task> send, Func<Task<string?>> receive, Func<ValueTask> dispose)
        {
            _send = send;
            _receive = receive;
            _dispose = dispose;
        }

        public static MemberDriver InProcess()
        {
            var replies = Channel.CreateUnbounded<string>();
            var host = new MemberHost(line =>
            {
                replies.Writer.TryWrite(line);
                return Task.CompletedTask;
            });
            Task pending = Task.CompletedTask;
            return new MemberDriver(
                line =>
                {
                    pending = Task.Run(() => host.HandleAsync(line));
                    return Task.CompletedTask;
                },
                async () =>
                {
                    var read = replies.Reader.ReadAsync().AsTask();
                    if (await Task.WhenAny(read, pending) == pending && !read.IsCompleted)
                    {
                        await pending; // throws the member side's failure
                        return await read;
                    }

                    return await read;
                },
                async () =>
                {
                    await pending;
                    await host.DisposeAsync();
                });
        }

        public static MemberDriver Child()
        {
            string processPath = Environment.ProcessPath ?? throw new InvalidOperationException("No process path.");
            var start = new ProcessStartInfo(processPath)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
            {
                start.ArgumentList.Add(typeof(GatewayForwardingBenchmark).Assembly.Location);
            }

            start.ArgumentList.Add(MembersSwitch);
            var process = Process.Start(start) ?? throw new InvalidOperationException("The member process did not start.");
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    Console.Error.WriteLine($"[members] {e.Data}");
                }
            };
            process.BeginErrorReadLine();
            return new MemberDriver(
                async line =>
                {
                    await process.StandardInput.WriteLineAsync(line);
                    await process.StandardInput.FlushAsync();
                },
                () => process.StandardOutput.ReadLineAsync(),
                async () =>
                {
                    process.StandardInput.Close();
                    using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    try
                    {
                        await process.WaitForExitAsync(deadline.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        process.Kill();
                    }

                    process.Dispose();
                });
        }

        public async Task<int> ConnectAsync(string kind, int port, string fingerprint, int rooms)
        {
            await _send($"connect {kind} {port} {fingerprint} {rooms}");
            string[] reply = (await ExpectAsync("ok")).Split(' ');
            int connected = int.Parse(reply[1], CultureInfo.InvariantCulture);
            int ready = int.Parse(reply[2], CultureInfo.InvariantCulture);
            if (ready < connected)
            {
                Console.WriteLine($"# {connected - ready} of {connected} {kind} members did not see their whole room in time");
            }

            return connected / RoomSize;
        }

        public async Task<LoadResult> RunAsync(string kind, double rate, TimeSpan warmup, TimeSpan measure, Action onStart, Action onStop)
        {
            await _send(string.Create(CultureInfo.InvariantCulture, $"run {kind} {rate} {(long)warmup.TotalMilliseconds} {(long)measure.TotalMilliseconds}"));
            await ExpectAsync("start");
            onStart();
            await ExpectAsync("stop");
            onStop();
            string result = await ExpectAsync("result");
            return JsonSerializer.Deserialize<LoadResult>(result["result ".Length..], Json) ?? throw new InvalidOperationException("Empty result.");
        }

        public ValueTask DisposeAsync() => _dispose();

        private async Task<string> ExpectAsync(string word)
        {
            while (true)
            {
                string line = await _receive() ?? throw new InvalidOperationException($"The member side ended while the benchmark waited for '{word}'.");
                if (line == word || line.StartsWith(word + " ", StringComparison.Ordinal))
                {
                    return line;
                }

                Console.WriteLine($"# members: {line}");
            }
        }
    }

    /// <summary>The member side: parses the parent's commands and owns the loads.</summary>
    private sealed class MemberHost(Func<string, Task> reply) : IAsyncDisposable
    {
        private readonly string _runId = Guid.NewGuid().ToString("N")[..8];
        private readonly string _directory = Path.Combine(Path.GetTempPath(), $"wzp-gwload-members-{Guid.NewGuid():N}");
        private readonly Dictionary<string, MemberLoad> _loads = new() { ["wzp"] = new(), ["raw"] = new() };

        public async Task HandleAsync(string line)
        {
            string[] words = line.Split(' ');
            switch (words[0])
            {
                case "connect":
                    {
                        Directory.CreateDirectory(_directory);
                        bool raw = words[1] == "raw";
                        int port = int.Parse(words[2], CultureInfo.InvariantCulture);
                        Fingerprint? pin = raw ? null : Fingerprint.Parse(words[3]);
                        var load = _loads[words[1]];
                        var (connected, ready) = await load.ConnectAsync(
                            int.Parse(words[4], CultureInfo.InvariantCulture),
                            room => raw ? RawMember.ConnectAsync(port, load.OnReceived) : WzpMember.ConnectAsync(port, pin!.Value, $"bench-{_runId}-{room}", _directory, load.OnReceived));
                        await reply($"ok {connected} {ready}");
                        break;
                    }

                case "run":
                    {
                        LoadResult result = await _loads[words[1]].RunAsync(
                            double.Parse(words[2], CultureInfo.InvariantCulture),
                            TimeSpan.FromMilliseconds(long.Parse(words[3], CultureInfo.InvariantCulture)),
                            TimeSpan.FromMilliseconds(long.Parse(words[4], CultureInfo.InvariantCulture)),
                            () => reply("start"),
                            () => reply("stop"));
                        await reply("result " + JsonSerializer.Serialize(result, Json));
                        break;
                    }

                default:
                    await reply($"unknown command: {line}");
                    break;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (MemberLoad load in _loads.Values)
            {
                await load.DisposeAsync();
            }

            if (Directory.Exists(_directory))
            {
                Directory.Delete(_directory, recursive: true);
            }
        }
    }

    private interface IMember : IAsyncDisposable
    {
        /// <summary>How many other members this member sees (a raw member: always the rest of its room).</summary>
        int Others { get; }

        bool Send(ReadOnlySpan<byte> payload, ushort sequence);
    }

    private sealed class WzpMember : IMember
    {
        private readonly WzpClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _receiving;

        private WzpMember(WzpClient client, PayloadHandler onReceived)
        {
            _client = client;
            _receiving = Task.Run(async () =>
            {
                try
                {
                    await foreach (MediaFrame frame in client.ReceiveAsync(_stop.Token))
                    {
                        onReceived(frame.Payload.Span);
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
        }

        public int Others => _client.Others.Count;

        public static async Task<IMember> ConnectAsync(int port, Fingerprint pin, string room, string directory, PayloadHandler onReceived)
        {
            WzpClient client = await WzpClient.ConnectAsync(new WzpClientOptions
            {
                Gateway = new GatewayAddress("127.0.0.1", port),
                Identity = Identity.Generate(),
                Room = room,
                PinnedClusterFingerprint = pin,
                KnownClustersPath = Path.Combine(directory, "known_clusters"),
                Reconnect = false,
                ConnectTimeout = TimeSpan.FromSeconds(30),
            });
            return new WzpMember(client, onReceived);
        }

        public bool Send(ReadOnlySpan<byte> payload, ushort sequence) =>
            _client.TrySend(new MediaHeader(false, false, CodecId.Opus24k, false, 13, sequence, (uint)(sequence * 20), 0, 0, 0, 0), payload);

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _receiving;
            await _client.DisposeAsync();
            _stop.Dispose();
        }
    }

    private sealed class RawMember(QuicConnection connection) : IMember
    {
        public int Others => RoomSize - 1;

        public static async Task<IMember> ConnectAsync(int port, PayloadHandler onReceived)
        {
            QuicConnection connection = await QuicClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), new QuicClientOptions());
            connection.SetDatagramHandler((_, datagram) => onReceived(datagram));
            return new RawMember(connection);
        }

        public bool Send(ReadOnlySpan<byte> payload, ushort sequence) => connection.SendDatagram(payload);

        public async ValueTask DisposeAsync()
        {
            await connection.CloseAsync(0, "done");
            await connection.DisposeAsync();
        }
    }

    /// <summary>Members of one kind, their pacing thread and the latency histogram (1 µs buckets up to 1 s).</summary>
    private sealed class MemberLoad : IAsyncDisposable
    {
        private const int MaxMicros = 1_000_000;

        private readonly List<IMember> _members = [];
        private readonly long[] _histogram = new long[MaxMicros + 1];
        private long _received;
        private long _windowStart = long.MaxValue;
        private long _windowEnd = long.MinValue;

        public void OnReceived(ReadOnlySpan<byte> payload)
        {
            long now = Stopwatch.GetTimestamp();
            if (payload.Length < sizeof(long))
            {
                return;
            }

            long sentAt = BinaryPrimitives.ReadInt64LittleEndian(payload);
            if (sentAt < Volatile.Read(ref _windowStart) || sentAt >= Volatile.Read(ref _windowEnd))
            {
                return;
            }

            long micros = (now - sentAt) * 1_000_000 / Stopwatch.Frequency;
            Interlocked.Increment(ref _histogram[Math.Clamp(micros, 0, MaxMicros)]);
            Interlocked.Increment(ref _received);
        }

        public async Task<(int Connected, int Ready)> ConnectAsync(int rooms, Func<int, Task<IMember>> connect)
        {
            using var gate = new SemaphoreSlim(32);
            IMember[] added = await Task.WhenAll(Enumerable.Range(_members.Count, (rooms * RoomSize) - _members.Count).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    return await connect(i / RoomSize);
                }
                finally
                {
                    gate.Release();
                }
            }));
            _members.AddRange(added);
            var deadline = Stopwatch.StartNew();
            while (!_members.All(m => m.Others == RoomSize - 1) && deadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(100);
            }

            // Joins advance the room's epoch; let the gateway's debounced rekeys finish before anything is measured.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            var notReady = _members.Where(m => m.Others != RoomSize - 1).GroupBy(m => m.Others).Select(g => $"{g.Count()} see {g.Key} others");
            Console.Error.WriteLine($"members not seeing {RoomSize - 1} others: {string.Join(", ", notReady)}");
            return (_members.Count, _members.Count(m => m.Others == RoomSize - 1));
        }

        public async Task<LoadResult> RunAsync(double rate, TimeSpan warmup, TimeSpan measure, Func<Task> onStart, Func<Task> onStop)
        {
            Array.Clear(_histogram);
            Interlocked.Exchange(ref _received, 0);
            long begin = Stopwatch.GetTimestamp();
            long start = begin + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
            long end = start + (long)(measure.TotalSeconds * Stopwatch.Frequency);
            Volatile.Write(ref _windowStart, start);
            Volatile.Write(ref _windowEnd, end);
            var pacer = new Pacer([.. _members], rate, begin, start, end);
            var thread = new Thread(pacer.Run) { IsBackground = true, Name = "wzp-bench-pacer" };
            thread.Start();

            await DelayUntil(start);
            await onStart();
            TimeSpan cpu0 = Environment.CpuUsage.TotalTime;
            long cpuStarted = Stopwatch.GetTimestamp();
            await DelayUntil(end);
            await onStop();
            double cores = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds / Stopwatch.GetElapsedTime(cpuStarted).TotalSeconds;
            thread.Join();
            // Stragglers sent inside the window.
            await Task.Delay(500);

            long received = Interlocked.Read(ref _received);
            long max = Array.FindLastIndex(_histogram, c => c > 0);
            return new LoadResult(
                _members.Count, pacer.Sent, pacer.Failed, pacer.Skipped, received, pacer.Sent * (RoomSize - 1),
                Percentile(_histogram, received, 0.50), Percentile(_histogram, received, 0.99), Percentile(_histogram, received, 0.999),
                max, cores);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (IMember member in _members)
            {
                await member.DisposeAsync();
            }
        }

        private static Task DelayUntil(long timestamp)
        {
            TimeSpan left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
            return left > TimeSpan.Zero ? Task.Delay(left) : Task.CompletedTask;
        }
    }

    /// <summary>
    /// One thread sends for every member in turn so that the frames of all members are spread evenly over time
    /// (frame-exact pacing with catch-up, at most one round behind; what it cannot catch up is counted as skipped).
    /// </summary>
    private sealed class Pacer(IMember[] members, double rate, long begin, long windowStart, long windowEnd)
    {
        public long Sent { get; private set; }

        public long Failed { get; private set; }

        public long Skipped { get; private set; }

        public void Run()
        {
            byte[] payload = new byte[PayloadSize];
            Random.Shared.NextBytes(payload);
            double perTick = rate * members.Length / Stopwatch.Frequency;
            long done = 0;
            int next = 0;
            ushort sequence = 0;
            while (true)
            {
                long now = Stopwatch.GetTimestamp();
                if (now >= windowEnd)
                {
                    return;
                }

                long due = (long)((now - begin) * perTick);
                if (due - done > members.Length)
                {
                    if (now >= windowStart)
                    {
                        Skipped += due - done - members.Length;
                    }

                    done = due - members.Length;
                }

                for (; done < due; done++)
                {
                    long sentAt = Stopwatch.GetTimestamp();
                    BinaryPrimitives.WriteInt64LittleEndian(payload, sentAt);
                    bool ok = members[next].Send(payload, sequence);
                    if (sentAt >= windowStart)
                    {
                        if (ok)
                        {
                            Sent++;
                        }
                        else
                        {
                            Failed++;
                        }
                    }

                    if (++next == members.Length)
                    {
                        next = 0;
                        sequence++;
                    }
                }

                Thread.Sleep(1);
            }
        }
    }

    /// <summary>The baseline hop: Wzp.Quic alone, each uplink handed from the handler to the room's 9 other connections.</summary>
    private sealed class RawRelay : IAsyncDisposable
    {
        private readonly QuicListener _listener;
        private readonly List<QuicConnection> _connections = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;
        private int _grouped;
        private long _forwarded;

        private RawRelay(QuicListener listener)
        {
            _listener = listener;
            _accepting = Task.Run(AcceptLoopAsync);
        }

        public int Port => _listener.LocalEndPoint.Port;

        public long Forwarded => Interlocked.Read(ref _forwarded);

        public static RawRelay Start(string directory) => new(QuicListener.Start(new QuicListenerOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            CertificatePath = Path.Combine(directory, "raw-cert.pem"),
            PrivateKeyPath = Path.Combine(directory, "raw-key.pem"),
            // Receivers here only listen and all come from 127.0.0.1: without these the listener closes them as silent
            // connections after 5 s and refuses more than 128 at once (issue 12's defaults for a public listener).
            SilentConnectionTimeout = TimeSpan.FromMinutes(30),
            MaxSilentConnections = 4096,
            MaxSilentConnectionsPerAddress = 4096,
        }));

        public async Task WaitForRoomsAsync(int connections)
        {
            var deadline = Stopwatch.StartNew();
            while (Volatile.Read(ref _grouped) < connections && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(50);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            await _listener.DisposeAsync();
            try
            {
                await _accepting;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or QuicException)
            {
            }

            foreach (QuicConnection connection in _connections)
            {
                await connection.DisposeAsync();
            }

            _stop.Dispose();
        }

        private async Task AcceptLoopAsync()
        {
            var room = new List<QuicConnection>();
            while (!_stop.IsCancellationRequested)
            {
                QuicConnection connection = await _listener.AcceptAsync(_stop.Token);
                _connections.Add(connection);
                room.Add(connection);
                if (room.Count < RoomSize)
                {
                    continue;
                }

                foreach (QuicConnection member in room)
                {
                    QuicConnection[] others = [.. room.Where(c => c != member)];
                    member.SetDatagramHandler((_, datagram) =>
                    {
                        foreach (QuicConnection to in others)
                        {
                            if (to.SendDatagram(datagram))
                            {
                                Interlocked.Increment(ref _forwarded);
                            }
                        }
                    });
                }

                room = [];
                Interlocked.Add(ref _grouped, RoomSize);
            }
        }
    }
}
