using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Wzp.Cluster.Tests;
using Xunit.Abstractions;

namespace Wzp.ScaleOut.Tests;

/// <summary>
/// Room events in the scale-out mode: two silo processes on Redis clustering publishing through NATS JetStream
/// (Debian's nats-server with scripts/nats-server.conf), two gateway processes, real clients, and a real HTTP
/// receiver in the test.
/// </summary>
public sealed class RoomEventsScaleOutTests(ITestOutputHelper output)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(45);

    [Fact]
    public async Task TwoSilosOnNats_ReceiverGetsEveryEventOfTheCallOnce_InOrder_Signed()
    {
        Assert.True(RedisServer.Executable is not null, "redis-server is not installed (scripts/install-deps.sh)");
        Assert.True(NatsServer.Executable is not null, "nats-server is not installed (scripts/install-deps.sh)");
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        using var nats = await NatsServer.StartAsync(cluster.Directory);
        await using var receiver = await WebhookReceiver.StartAsync();
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var secretFile = Path.Combine(cluster.Directory, "webhook.secret");
        await File.WriteAllTextAsync(secretFile, secret);
        cluster.SiloEnvironment["Events__Transport"] = "Nats";
        cluster.SiloEnvironment["Events__NatsUrl"] = nats.Url;
        cluster.SiloEnvironment["Events__NatsStream"] = "wzp-test-" + Guid.NewGuid().ToString("N")[..8];
        cluster.SiloEnvironment["Webhooks__Urls__0"] = receiver.Url.ToString();
        cluster.SiloEnvironment["Webhooks__SecretFile"] = secretFile;
        cluster.SiloEnvironment["Webhooks__InitialBackoff"] = "00:00:00.100";
        var participants = new List<Participant>();
        try
        {
            var silo1 = cluster.StartSilo();
            var silo2 = cluster.StartSilo();
            await ScaleOutCluster.WaitHealthyAsync(silo1, StartTimeout);
            await ScaleOutCluster.WaitHealthyAsync(silo2, StartTimeout);
            cluster.PrepareGateway("gw1");
            cluster.PrepareGateway("gw2");
            var gw1 = cluster.StartGateway("gw1");
            var gw2 = cluster.StartGateway("gw2");
            await ScaleOutCluster.WaitHealthyAsync(gw1, StartTimeout);
            await ScaleOutCluster.WaitHealthyAsync(gw2, StartTimeout);

            var room = $"room.{Guid.NewGuid():N}"[..16] + " *"; // dots, a space and a wildcard: no NATS subject could hold it
            var alice = await Participant.JoinAsync("alice", gw1, room, cluster.ClusterKey.Fingerprint, cluster.Directory);
            participants.Add(alice);
            var bob = await Participant.JoinAsync("bob", gw2, room, cluster.ClusterKey.Fingerprint, cluster.Directory);
            participants.Add(bob);
            await Eventually.True(() => alice.Sees("bob") && bob.Sees("alice"), StepTimeout, "alice and bob see each other");
            await bob.DisposeAsync();
            participants.Remove(bob);
            await Eventually.True(() => !alice.Sees("bob"), StepTimeout, "alice sees bob leave");
            await alice.DisposeAsync();
            participants.Remove(alice);

            await Eventually.True(() => receiver.Of(room).Count >= 6, StepTimeout, "the receiver got the six events of the call");
            var events = receiver.Of(room);
            Assert.Equal(
                ["room_started", "participant_joined alice", "participant_joined bob", "participant_left bob left", "participant_left alice left", "room_finished"],
                events.Select(e => e.Json.TryGetProperty("participant", out var p)
                    ? $"{e.Event} {p.GetProperty("alias").GetString()}{(e.Reason is null ? "" : " " + e.Reason)}"
                    : e.Event));
            Assert.All(events.Zip(events.Skip(1)), pair => Assert.Equal(pair.First.Sequence + 1, pair.Second.Sequence));
            foreach (var received in events)
            {
                var signed = Encoding.ASCII.GetBytes(received.Timestamp + ".").Concat(received.Body).ToArray();
                Assert.Equal("v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed)), received.Signature);
                Assert.True(long.TryParse(received.Timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out _));
            }

            // Exactly one dispatcher: however many silos read the stream, no event was delivered twice.
            Assert.Equal(6, receiver.Of(room).Count);
            var published = 0.0;
            foreach (var silo in cluster.Silos)
            {
                published += ScaleOutCluster.ReadCounter(await silo.ScrapeAsync(), "wzp_silo_room_events_published_total") is var n && double.IsNaN(n) ? 0 : n;
            }

            Assert.Equal(6, published);
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
            foreach (var participant in participants) await participant.DisposeAsync();
        }
    }
}
