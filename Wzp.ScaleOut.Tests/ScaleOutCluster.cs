using System.Globalization;
using System.Net.Http;
using System.Text.RegularExpressions;
using Wzp.Protocol;

namespace Wzp.ScaleOut.Tests;

/// <summary>
/// Redis, N silo processes and M gateway processes of one test cluster, with short control-plane periods. Every
/// process is stopped by its id on <see cref="Dispose"/>, which tests call in a finally (also on failure).
/// </summary>
public sealed partial class ScaleOutCluster : IDisposable
{
    // Short periods so that a killed gateway is noticed in seconds (the defaults are 5 s heartbeat, 15 s expiry)
    // and a killed silo is declared dead quickly (Orleans' defaults: 10 s probes, 3 misses).
    public static readonly TimeSpan HeartbeatPeriod = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan GatewayExpiry = TimeSpan.FromSeconds(3);

    // One connection per request: the listeners close idle keep-alive connections, and a reused one that was
    // closed meanwhile fails with a broken pipe.
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5), DefaultRequestHeaders = { ConnectionClose = true } };
    private readonly List<ChildProcess> _processes = [];
    private readonly string _clusterId = $"scaleout-{Guid.NewGuid():N}"[..20];

    private ScaleOutCluster(string directory, RedisServer redis)
    {
        Directory = directory;
        Redis = redis;
        ClusterKey = Identity.Generate();
        // Gateways behind one load balancer share the stateless-reset key (docs/operations.md): created once here,
        // before any gateway races another to create it.
        ResetKeyFile = Path.Combine(directory, "quic-reset.seed");
        SeedFile.LoadOrCreateSecret(ResetKeyFile, out _);
        // The control plane's TLS certificate (on by default in the scale-out mode), made as 'wzp cluster tls' does.
        TlsCertificateFile = Path.Combine(directory, "control-plane.pem");
        Wzp.Gateway.ControlPlaneTls.Create(TlsCertificateFile, years: 1);
    }

    /// <summary>The control-plane certificate every process of this cluster is given (Orleans:Tls:CertificateFile).</summary>
    public string TlsCertificateFile { get; }

    /// <summary>The stateless-reset key every gateway of this cluster uses.</summary>
    public string ResetKeyFile { get; }

    public string Directory { get; }

    public RedisServer Redis { get; }

    /// <summary>The cluster key this test created; it signs every gateway credential.</summary>
    public Identity ClusterKey { get; }

    public List<SiloProcess> Silos { get; } = [];

    public List<GatewayProcess> Gateways { get; } = [];

    public static async Task<ScaleOutCluster> StartRedisAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), "wzp-scaleout-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(directory);
        var redis = await RedisServer.StartAsync(directory);
        return new ScaleOutCluster(directory, redis);
    }

    private Dictionary<string, string> CommonEnvironment() => new()
    {
        ["Orleans__ClusterId"] = _clusterId,
        ["Orleans__ServiceId"] = _clusterId,
        ["Orleans__Clustering__Mode"] = "Redis",
        ["Orleans__Clustering__RedisConnectionString"] = Redis.ConnectionString,
        ["Orleans__Tls__CertificateFile"] = TlsCertificateFile,
        ["Orleans__Membership__ProbeTimeout"] = "00:00:01",
        ["Orleans__Membership__NumMissedProbesLimit"] = "2",
        ["Orleans__Membership__IAmAliveTablePublishTimeout"] = "00:00:02",
        ["Cluster__GatewayHeartbeatPeriod"] = HeartbeatPeriod.ToString("c", CultureInfo.InvariantCulture),
        ["Cluster__GatewayExpiry"] = GatewayExpiry.ToString("c", CultureInfo.InvariantCulture),
        ["Cluster__RoomGatewayCheckPeriod"] = "00:00:01",
        ["Logging__LogLevel__Default"] = "Information",
        ["Logging__LogLevel__Orleans"] = "Warning",
        ["Logging__LogLevel__Microsoft"] = "Warning",
        // Rooms log their activation at Debug: how the test finds the silo that hosts its room.
        ["Logging__LogLevel__Wzp.Grains.RoomGrain"] = "Debug",
        ["Logging__LogLevel__Wzp.Grains.GatewayDirectoryGrain"] = "Debug",
        ["Logging__Console__FormatterName"] = "simple",
        ["DOTNET_gcServer"] = "0",
    };

    /// <summary>Settings every silo started from now on gets on top of the common ones (room events, webhooks).</summary>
    public Dictionary<string, string> SiloEnvironment { get; } = [];

    /// <param name="tlsCertificateFile">Another control-plane certificate than the cluster's (a node that must be refused).</param>
    public SiloProcess StartSilo(string? tlsCertificateFile = null)
    {
        var index = Silos.Count + 1;
        var telemetry = Ports.FreeTcp();
        var environment = CommonEnvironment();
        foreach (var (key, value) in SiloEnvironment) environment[key] = value;
        if (tlsCertificateFile is not null) environment["Orleans__Tls__CertificateFile"] = tlsCertificateFile;
        environment["Gateway__HostInSilo"] = "false";
        environment["Orleans__Clustering__SiloPort"] = Ports.FreeTcp().ToString(CultureInfo.InvariantCulture);
        environment["Orleans__Clustering__GatewayPort"] = Ports.FreeTcp().ToString(CultureInfo.InvariantCulture);
        environment["Telemetry__PrometheusEndpoint"] = $"http://127.0.0.1:{telemetry}/";
        // Every silo serves the room administration API; several on one host need a port and operator key each.
        environment["Admin__ListenAddress"] = $"127.0.0.1:{Ports.FreeTcp()}";
        environment["Admin__OperatorKeyFile"] = Path.Combine(Directory, $"silo{index}-admin.key");
        var process = ChildProcess.StartDotnet($"silo{index}", Builds.SiloDll, environment, Directory, Directory);
        _processes.Add(process);
        var silo = new SiloProcess(process, new Uri($"http://127.0.0.1:{telemetry}/"));
        Silos.Add(silo);
        return silo;
    }

    /// <summary>Prepares a gateway's identity and a credential issued by <see cref="ClusterKey"/> (the way <c>wzp cluster issue</c> does).</summary>
    public string PrepareGateway(string gatewayId, DateTimeOffset? notAfter = null, Identity? issuer = null, byte[]? forKey = null)
    {
        var dataDirectory = Path.Combine(Directory, gatewayId);
        System.IO.Directory.CreateDirectory(dataDirectory);
        using var identity = SeedFile.LoadOrCreate(Path.Combine(dataDirectory, "gateway.seed"), out _);
        var now = DateTimeOffset.UtcNow;
        var credential = GatewayCredential.Issue(issuer ?? ClusterKey, gatewayId, forKey ?? identity.PublicKey, now.AddMinutes(-5), notAfter ?? now.AddDays(1));
        File.WriteAllText(Path.Combine(dataDirectory, "gateway.credential.json"), credential.ToJson());
        return dataDirectory;
    }

    /// <param name="processName">The name in logs and diagnostics (a restart under the same id gets its own).</param>
    /// <param name="tlsCertificateFile">Another control-plane certificate than the cluster's (a node that must be refused).</param>
    public GatewayProcess StartGateway(string gatewayId, string? processName = null, string? tlsCertificateFile = null)
    {
        var dataDirectory = Path.Combine(Directory, gatewayId);
        var quicPort = Ports.FreeUdp();
        var telemetry = Ports.FreeTcp();
        var environment = CommonEnvironment();
        if (tlsCertificateFile is not null) environment["Orleans__Tls__CertificateFile"] = tlsCertificateFile;
        environment["Gateway__GatewayId"] = gatewayId;
        environment["Gateway__ListenAddress"] = $"127.0.0.1:{quicPort}";
        environment["Gateway__DataDirectory"] = dataDirectory;
        environment["Gateway__StatelessResetKeyFile"] = ResetKeyFile;
        environment["Telemetry__PrometheusEndpoint"] = $"http://127.0.0.1:{telemetry}/";
        var process = ChildProcess.StartDotnet(processName ?? gatewayId, Builds.GatewayDll, environment, Directory, Directory);
        _processes.Add(process);
        var gateway = new GatewayProcess(gatewayId, process, quicPort, new Uri($"http://127.0.0.1:{telemetry}/"));
        Gateways.Add(gateway);
        return gateway;
    }

    /// <summary>Waits until <c>/healthz</c> of <paramref name="process"/> answers 200.</summary>
    public static async Task WaitHealthyAsync(HostedProcess process, TimeSpan timeout)
    {
        // Connect only once the process says it listens: .NET's managed HttpListener crashes in Start when a
        // connection is already queued on its new socket (HttpEndPointListener's constructor accepts it
        // synchronously before its fields are set: ArgumentNullException in Monitor.Enter), which an eager poll
        // provokes. See the issue 7 report.
        await Eventually.True(() => process.Process.HasExited || process.Process.Output.Contains("Health endpoint listening", StringComparison.Ordinal),
            timeout, $"{process.Process.Name} serves /healthz");
        await Eventually.True(async () =>
        {
            if (process.Process.HasExited) throw new InvalidOperationException($"{process.Process.Name} exited with {process.Process.ExitCode}:\n{process.Process.Output}");
            var (status, _) = await process.HealthAsync();
            return status == 200;
        }, timeout, $"{process.Process.Name} reports healthy");
    }

    /// <summary>A counter's value in a Prometheus scrape: the sum over its series.</summary>
    public static double ReadCounter(string scrape, string metric)
    {
        var total = 0.0;
        var found = false;
        foreach (Match match in Regex.Matches(scrape, $@"^{Regex.Escape(metric)}(\{{[^}}]*\}})?\s+(\S+)", RegexOptions.Multiline))
        {
            total += double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
            found = true;
        }
        return found ? total : double.NaN;
    }

    internal static async Task<(int Status, string Body)> GetAsync(Uri uri)
    {
        using var response = await Http.GetAsync(uri);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Every process's output, for a failure message.</summary>
    public string Diagnostics() => string.Join("\n\n", _processes.Select(p => $"===== {p.Name} (pid {p.Id}{(p.HasExited ? $", exited {p.ExitCode}" : "")})\n{Tail(p.Output)}"));

    private static string Tail(string output) => output.Length <= 20_000 ? output : "..." + output[^20_000..];

    /// <summary>Keep the logs (<see cref="Directory"/>/*.log) of a failed run for a post-mortem.</summary>
    public bool KeepLogs { get; set; }

    public void Dispose()
    {
        foreach (var process in _processes) process.Dispose();
        Redis.Dispose();
        ClusterKey.Dispose();
        if (KeepLogs) return;
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A child that had not quite let go of a file; the temp folder is cleaned by the OS eventually.
        }
    }
}

/// <summary>A silo or gateway process with its telemetry endpoint.</summary>
public abstract class HostedProcess(ChildProcess process, Uri telemetry)
{
    public ChildProcess Process { get; } = process;

    public Uri Telemetry { get; } = telemetry;

    public Task<(int Status, string Body)> HealthAsync() => ScaleOutCluster.GetAsync(new Uri(Telemetry, "healthz"));

    public async Task<string> ScrapeAsync() => (await ScaleOutCluster.GetAsync(new Uri(Telemetry, "metrics"))).Body;
}

public sealed class SiloProcess(ChildProcess process, Uri telemetry) : HostedProcess(process, telemetry);

public sealed class GatewayProcess(string gatewayId, ChildProcess process, int quicPort, Uri telemetry) : HostedProcess(process, telemetry)
{
    public string GatewayId { get; } = gatewayId;

    public int QuicPort { get; } = quicPort;
}
