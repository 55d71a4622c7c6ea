using System.Net;
using Microsoft.Extensions.Options;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;

namespace Wzp.Cluster.Tests;

/// <summary>
/// In-process gateways on loopback (QUIC on port 0, links on port 0) attached to the test cluster, sharing one
/// cluster key, and real clients connected to them.
/// </summary>
public sealed class GatewayHarness : IAsyncDisposable
{
    private readonly ClusterFixture _fixture;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"wzp-gw-{Guid.NewGuid():N}");
    private readonly List<GatewayServer> _gateways = [];
    private readonly List<WzpClient> _clients = [];

    public GatewayHarness(ClusterFixture fixture)
    {
        _fixture = fixture;
        Directory.CreateDirectory(_directory);
    }

    public string ClusterKeyFile => Path.Combine(_directory, "cluster.seed");

    public Fingerprint ClusterFingerprint => _gateways[0].Keys.ClusterFingerprint;

    public async Task<GatewayServer> StartGatewayAsync(string? id = null, Action<GatewayOptions>? configure = null, Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null)
    {
        id ??= $"gw-{Guid.NewGuid():N}"[..12];
        var options = new GatewayOptions
        {
            GatewayId = id,
            ListenAddress = "127.0.0.1:0",
            LinkListenAddress = "127.0.0.1:0",
            DataDirectory = Path.Combine(_directory, id),
            SelfIssueCredential = true,
            ClusterKeyFile = ClusterKeyFile,
            // Speech.TalkAsync paces frames 4 ms apart (250/s, five times a voice stream) to keep tests short; the
            // uplink limit's own tests set the production values.
            MemberUplinkRate = 1_000,
            MemberUplinkBurst = 500,
        };
        configure?.Invoke(options);
        var keys = GatewayKeys.Load(options, TimeProvider.System);
        var server = new GatewayServer(options, keys, _fixture.Client, Microsoft.Extensions.Options.Options.Create(_fixture.Options), loggerFactory);
        await server.StartAsync(CancellationToken.None);
        _gateways.Add(server);
        return server;
    }

    /// <param name="gateway">The gateway to join through.</param>
    /// <param name="room">The room.</param>
    /// <param name="alias">The member's alias.</param>
    /// <param name="port">Another port to reach the gateway by, such as an impairing relay's.</param>
    /// <param name="connectTimeout">How long the QUIC and Wzp handshakes may take; the client's default when null.</param>
    /// <param name="loggerFactory">Where the client logs; nowhere when null.</param>
    /// <param name="token">The access token the client presents.</param>
    /// <param name="identity">The member's identity (a grant names it); a fresh one when null.</param>
    public async Task<WzpClient> JoinAsync(GatewayServer gateway, string room, string alias, int? port = null, TimeSpan? connectTimeout = null,
        Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null, string token = "", Identity? identity = null)
    {
        var client = await WzpClient.ConnectAsync(new WzpClientOptions
        {
            ConnectTimeout = connectTimeout ?? new WzpClientOptions().ConnectTimeout,
            Gateway = new GatewayAddress("127.0.0.1", port ?? gateway.ClientEndPoint.Port),
            Identity = identity ?? Identity.Generate(),
            Room = room,
            Alias = alias,
            Token = token,
            PinnedClusterFingerprint = gateway.Keys.ClusterFingerprint,
            KnownClustersPath = Path.Combine(_directory, "known_clusters"),
            Reconnect = false,
            LoggerFactory = loggerFactory,
        });
        _clients.Add(client);
        return client;
    }

    /// <summary>A client that reconnects, given several gateway addresses in the order it should try them.</summary>
    public async Task<WzpClient> JoinAnyAsync(IReadOnlyList<GatewayAddress> gateways, string room, string alias)
    {
        var client = await WzpClient.ConnectAsync(new WzpClientOptions
        {
            Gateway = gateways[0],
            AlternateGateways = [.. gateways.Skip(1)],
            Identity = Identity.Generate(),
            Room = room,
            Alias = alias,
            PinnedClusterFingerprint = ClusterFingerprint,
            KnownClustersPath = Path.Combine(_directory, "known_clusters"),
            ConnectTimeout = TimeSpan.FromSeconds(3),
        });
        _clients.Add(client);
        return client;
    }

    public async Task StopAsync(GatewayServer gateway)
    {
        _gateways.Remove(gateway);
        await gateway.DisposeAsync();
        gateway.Keys.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients) await client.DisposeAsync();
        foreach (var gateway in _gateways)
        {
            await gateway.DisposeAsync();
            gateway.Keys.Dispose();
        }
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>Media frames with payloads that say who sent them and which frame they are.</summary>
public static class Speech
{
    public static MediaHeader Header(int sequence) =>
        new(false, false, CodecId.Opus24k, false, 13, (ushort)sequence, (uint)(sequence * 20), 0, 0, 0, 0);

    public static byte[] Payload(string speaker, int sequence)
    {
        var payload = new byte[160];
        System.Text.Encoding.ASCII.GetBytes($"{speaker}:{sequence:D5}:").CopyTo(payload, 0);
        for (var i = 16; i < payload.Length; i++) payload[i] = (byte)(sequence * 31 + i);
        return payload;
    }

    /// <summary>Sends <paramref name="count"/> frames, a few milliseconds apart as a talker would.</summary>
    /// <param name="client">The talker.</param>
    /// <param name="speaker">Name written into each payload.</param>
    /// <param name="count">Frames to send.</param>
    /// <param name="firstSequence">Sequence number of the first frame.</param>
    /// <param name="lossy">
    /// The path loses packets, so QUIC may refuse a datagram its congestion window has no room for; otherwise
    /// every frame must be queued.
    /// </param>
    /// <param name="interval">Time between frames; 4 ms when null (five times a voice stream, to keep tests short).</param>
    /// <returns>How many frames were queued.</returns>
    public static async Task<int> TalkAsync(WzpClient client, string speaker, int count, int firstSequence = 0, bool lossy = false, TimeSpan? interval = null)
    {
        using var timer = new PeriodicTimer(interval ?? TimeSpan.FromMilliseconds(4));
        var queued = 0;
        for (var i = firstSequence; i < firstSequence + count; i++)
        {
            var sent = client.TrySend(Header(i), Payload(speaker, i));
            Assert.True(sent || lossy, $"{speaker} could not queue frame {i}");
            if (sent) queued++;
            await timer.WaitForNextTickAsync();
        }
        return queued;
    }

    /// <summary>Collects frames until <paramref name="expected"/> have arrived or the deadline passes.</summary>
    public static async Task<List<MediaFrame>> ListenAsync(WzpClient client, int expected, TimeSpan timeout)
    {
        var frames = new List<MediaFrame>();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await foreach (var frame in client.ReceiveAsync(deadline.Token))
            {
                frames.Add(frame with { Payload = frame.Payload.ToArray() });
                if (frames.Count >= expected) break;
            }
        }
        catch (OperationCanceledException)
        {
        }
        return frames;
    }
}
