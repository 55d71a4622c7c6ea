using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.TestingHost;
using Wzp.Grains;
using Wzp.Silo;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A two-silo cluster with room events on memory streams and webhooks to one real <see cref="WebhookReceiver"/>,
/// started before the silos so that its URL is in their settings. Retries are quick (a receiver that comes back
/// is served within half a second) and the request timeout is long, so a stalled receiver is never retried.
/// </summary>
public sealed class RoomEventsFixture : IAsyncLifetime
{
    public const string Collection = "room-events";

    private InProcessTestCluster? _cluster;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "wzp-events-" + Guid.NewGuid().ToString("N")[..8]);

    public InProcessTestCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is not deployed.");

    public IClusterClient Client => Cluster.Client;

    public WebhookReceiver Receiver { get; private set; } = null!;

    /// <summary>The shared secret, as the receiver knows it.</summary>
    public byte[] Secret { get; } = System.Text.Encoding.UTF8.GetBytes(Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));

    public ControlPlaneOptions Options { get; } = ClusterFixture.Configuration.GetSection(ControlPlaneOptions.SectionName).Get<ControlPlaneOptions>()!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        var secretFile = Path.Combine(_directory, "webhook.secret");
        // Surrounding whitespace is not part of the secret (a file written by `echo` ends with a newline).
        await File.WriteAllTextAsync(secretFile, System.Text.Encoding.UTF8.GetString(Secret) + "\n");
        Receiver = await WebhookReceiver.StartAsync();
        var configuration = new ConfigurationBuilder()
            .AddConfiguration(ClusterFixture.Configuration)
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Webhooks:Urls:0"] = Receiver.Url.ToString(),
                ["Webhooks:SecretFile"] = secretFile,
                ["Webhooks:Timeout"] = "00:03:00",
                ["Webhooks:InitialBackoff"] = "00:00:00.050",
                ["Webhooks:MaxBackoff"] = "00:00:00.500",
            })
            .Build();
        _cluster = ClusterFixture.Build(configuration, silo => silo.AddWzpRoomEvents(configuration));
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.StopAllSilosAsync();
            await _cluster.DisposeAsync();
        }

        await Receiver.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

[CollectionDefinition(RoomEventsFixture.Collection)]
public sealed class RoomEventsCollection : ICollectionFixture<RoomEventsFixture>;
