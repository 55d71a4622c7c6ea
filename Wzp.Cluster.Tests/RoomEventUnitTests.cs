using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

public sealed class RoomEventUnitTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("wzp-event-unit-").FullName;

    [Fact]
    public void WebhookOptions_MissingShortOrUnreadableSecret_AreRefused_WithoutTheSecretInTheMessage()
    {
        var validator = new WebhookOptionsValidator();
        var shortFile = Path.Combine(_directory, "short.secret");
        File.WriteAllText(shortFile, "tooshort-secret");
        var goodFile = Path.Combine(_directory, "good.secret");
        File.WriteAllText(goodFile, "  0123456789abcdef0123  \n");

        Assert.Contains("Webhooks:SecretFile is required", Failures(validator, new WebhookOptions { Urls = ["http://127.0.0.1:1/h"] }));
        Assert.Contains("cannot be read", Failures(validator, new WebhookOptions { Urls = ["http://127.0.0.1:1/h"], SecretFile = Path.Combine(_directory, "absent") }));
        var shortMessage = Failures(validator, new WebhookOptions { Urls = ["http://127.0.0.1:1/h"], SecretFile = shortFile });
        Assert.Contains("fewer than 16 characters", shortMessage);
        Assert.DoesNotContain("tooshort-secret", shortMessage);
        Assert.Contains("Webhooks:Urls:0 must be an absolute", Failures(validator, new WebhookOptions { Urls = ["ftp://x/"], SecretFile = goodFile }));
        Assert.Contains("Webhooks:MaxBackoff", Failures(validator, new WebhookOptions { InitialBackoff = TimeSpan.FromSeconds(5), MaxBackoff = TimeSpan.FromSeconds(1) }));
        Assert.True(validator.Validate(null, new WebhookOptions { Urls = ["https://hooks.example/wzp"], SecretFile = goodFile }).Succeeded);
        Assert.True(validator.Validate(null, new WebhookOptions()).Succeeded);
    }

    [Fact]
    public void EventOptions_BadNatsSettings_AreRefused_WithoutTheUrl()
    {
        var validator = new RoomEventOptionsValidator();
        var result = validator.Validate(null, new RoomEventOptions { Transport = RoomEventTransport.Nats, NatsUrl = "http://user:hunter2@x", NatsStream = "a.b" });
        Assert.True(result.Failed);
        Assert.Contains("Events:NatsUrl", result.FailureMessage);
        Assert.Contains("Events:NatsStream", result.FailureMessage);
        Assert.DoesNotContain("hunter2", result.FailureMessage);
        Assert.True(validator.Validate(null, new RoomEventOptions { Transport = RoomEventTransport.Nats }).Succeeded);
    }

    [Fact]
    public void EventPayload_HasTheDocumentedFields()
    {
        var fingerprint = new TestData(1710).Fingerprint();
        var kicked = new RoomActivity("a.b *", Guid.NewGuid(), 42, DateTimeOffset.UnixEpoch, RoomActivityKind.ParticipantLeft, 3, fingerprint, "carol",
            ParticipantLeaveReason.Kicked, 1, 2);
        var json = JsonDocument.Parse(WebhookPayload.Serialize(kicked)).RootElement;
        Assert.Equal(
            ["event", "room", "room_instance", "sequence", "timestamp", "members", "participant", "reason", "by_slot"],
            json.EnumerateObject().Select(p => p.Name));
        Assert.Equal("participant_left", json.GetProperty("event").GetString());
        Assert.Equal("a.b *", json.GetProperty("room").GetString());
        Assert.Equal("1970-01-01T00:00:00.000Z", json.GetProperty("timestamp").GetString());
        Assert.Equal(fingerprint.ToString(), json.GetProperty("participant").GetProperty("fingerprint").GetString());
        Assert.Equal("kicked", json.GetProperty("reason").GetString());

        var started = new RoomActivity("r", Guid.NewGuid(), 1, DateTimeOffset.UnixEpoch, RoomActivityKind.RoomStarted, 0, null, null, ParticipantLeaveReason.None, 0, 1);
        Assert.Equal(
            ["event", "room", "room_instance", "sequence", "timestamp", "members"],
            JsonDocument.Parse(WebhookPayload.Serialize(started)).RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Matches("^[0-9a-f]{32}$", RoomActivity.StreamKey("a.b *"));
    }

    [Fact]
    public void EventPublisher_FullQueue_DropsWithoutWaiting()
    {
        // Never started: nothing drains the queue, as when the stream is unreachable.
        using var services = new ServiceCollection().BuildServiceProvider();
        using var publisher = new RoomActivityPublisher(
            Options.Create(new RoomEventOptions { PublishQueueCapacity = 16 }), services, new NoLifetime(), TimeProvider.System,
            NullLogger<RoomActivityPublisher>.Instance);
        var activity = new RoomActivity("r", Guid.NewGuid(), 1, DateTimeOffset.UnixEpoch, RoomActivityKind.RoomStarted, 0, null, null, ParticipantLeaveReason.None, 0, 1);

        var accepted = Enumerable.Range(0, 20).Select(_ => publisher.Publish(activity)).ToList();

        Assert.Equal(16, accepted.Count(a => a));
        Assert.All(accepted.Skip(16), a => Assert.False(a));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Failures(WebhookOptionsValidator validator, WebhookOptions options)
    {
        var result = validator.Validate(null, options);
        Assert.True(result.Failed);
        return result.FailureMessage;
    }

    private sealed class NoLifetime : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}
