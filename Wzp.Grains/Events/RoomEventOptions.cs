using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>Which stream carries room events.</summary>
public enum RoomEventTransport
{
    /// <summary>Orleans' memory streams: queues held by the silos themselves (all-in-one default). Events queued on
    /// a silo that dies are lost.</summary>
    Memory = 0,

    /// <summary>NATS JetStream (Microsoft.Orleans.Streaming.NATS): events survive silo restarts (scale-out).</summary>
    Nats = 1,
}

/// <summary>The <c>Events</c> section: how room events travel from rooms to the webhook dispatchers.</summary>
public sealed class RoomEventOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Events";

    /// <summary><c>Memory</c> (default) or <c>Nats</c>. Scale-out clusters should use <c>Nats</c>.</summary>
    public RoomEventTransport Transport { get; set; } = RoomEventTransport.Memory;

    /// <summary>
    /// NATS server URL(s), comma-separated, for <see cref="RoomEventTransport.Nats"/>. Defaults to
    /// <c>nats://127.0.0.1:4222</c>. May carry credentials: never logged.
    /// </summary>
    public string NatsUrl { get; set; } = "nats://127.0.0.1:4222";

    /// <summary>The JetStream stream the provider creates (or reuses). Defaults to <c>wzp-room-events</c>.</summary>
    public string NatsStream { get; set; } = "wzp-room-events";

    /// <summary>
    /// Partitions (Orleans queues) of the stream. Defaults to 8, between 1 and 64. nats-server 2.9 needs the same
    /// number in its subject mapping (docs/operations.md, scripts/nats-server.conf).
    /// </summary>
    public int Partitions { get; set; } = 8;

    /// <summary>
    /// Events a silo holds for publication before it drops new ones (counted as
    /// <c>wzp_silo_room_events_dropped_total{reason="publish-queue-full"}</c>). Defaults to 10 000, at least 16.
    /// Only a stream that stays unreachable fills it: rooms never wait for it.
    /// </summary>
    public int PublishQueueCapacity { get; set; } = 10_000;
}

/// <summary>Rejects an unusable <c>Events</c> section at start-up.</summary>
public sealed class RoomEventOptionsValidator : IValidateOptions<RoomEventOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, RoomEventOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!Enum.IsDefined(options.Transport))
        {
            failures.Add("Events:Transport must be Memory or Nats.");
        }

        if (options.Transport == RoomEventTransport.Nats)
        {
            var urls = options.NatsUrl.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (urls.Length == 0 || urls.Any(url => !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("nats" or "tls")))
            {
                // The URL itself may hold a password: not repeated here.
                failures.Add("Events:NatsUrl must be one or more comma-separated nats:// or tls:// URLs.");
            }

            if (string.IsNullOrWhiteSpace(options.NatsStream) || options.NatsStream.Any(c => c is '.' or '*' or '>' or '/' or '\\' || char.IsWhiteSpace(c)))
            {
                failures.Add($"Events:NatsStream must be a JetStream stream name (no dots, wildcards, slashes or spaces), not '{options.NatsStream}'.");
            }
        }

        if (options.Partitions is < 1 or > 64)
        {
            failures.Add($"Events:Partitions must be between 1 and 64, not {options.Partitions}.");
        }

        if (options.PublishQueueCapacity < 16)
        {
            failures.Add($"Events:PublishQueueCapacity must be at least 16, not {options.PublishQueueCapacity}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>The <c>Webhooks</c> section: where and how room events are POSTed.</summary>
public sealed class WebhookOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Webhooks";

    /// <summary>
    /// Absolute http:// or https:// URLs; every event goes to each of them, independently. Empty (the default)
    /// disables webhooks. A URL may carry a token in its query: it is never logged (logs show scheme, host and path).
    /// </summary>
    public List<string> Urls { get; set; } = [];

    /// <summary>
    /// File holding the shared secret that signs every request (its text, without surrounding whitespace, at
    /// least 16 characters; e.g. <c>openssl rand -hex 32</c>). Required when <see cref="Urls"/> is set. Read at
    /// start; the secret is never logged, exported or passed to a grain.
    /// </summary>
    public string SecretFile { get; set; } = "";

    /// <summary>Longest wait for a receiver's answer to one request. Defaults to 10 seconds; between 100 ms and 5 minutes.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Wait before the first retry; doubled after each failure up to <see cref="MaxBackoff"/>. Defaults to 1 second, at least 10 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between retries. Defaults to 1 minute; at least <see cref="InitialBackoff"/>.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// An event not delivered this long after it reached the dispatcher is dropped (counted,
    /// <c>reason="webhook-expired"</c>) and the next one is tried. Defaults to 1 hour; at least 1 second.
    /// </summary>
    public TimeSpan GiveUpAfter { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Events held per room and URL while its receiver does not answer; past it the oldest is dropped (counted,
    /// <c>reason="webhook-buffer-full"</c>). Defaults to 1000; between 1 and 100 000.
    /// </summary>
    public int BufferPerRoom { get; set; } = 1000;
}

/// <summary>Rejects an unusable <c>Webhooks</c> section at start-up, including a missing or short secret file.</summary>
public sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, WebhookOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        for (var i = 0; i < options.Urls.Count; i++)
        {
            if (!Uri.TryCreate(options.Urls[i], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                failures.Add($"Webhooks:Urls:{i} must be an absolute http:// or https:// URL.");
            }
        }

        if (options.Urls.Count > 0)
        {
            if (string.IsNullOrWhiteSpace(options.SecretFile))
            {
                failures.Add("Webhooks:SecretFile is required when Webhooks:Urls is set (a file with at least 16 characters of secret).");
            }
            else if (!WebhookSecret.TryLoad(options.SecretFile, out _, out var problem))
            {
                failures.Add($"Webhooks:SecretFile '{options.SecretFile}': {problem}");
            }
        }

        if (options.Timeout < TimeSpan.FromMilliseconds(100) || options.Timeout > TimeSpan.FromMinutes(5))
        {
            failures.Add($"Webhooks:Timeout must be between 100 ms and 5 minutes, not {options.Timeout}.");
        }

        if (options.InitialBackoff < TimeSpan.FromMilliseconds(10))
        {
            failures.Add($"Webhooks:InitialBackoff must be at least 10 ms, not {options.InitialBackoff}.");
        }

        if (options.MaxBackoff < options.InitialBackoff)
        {
            failures.Add($"Webhooks:MaxBackoff ({options.MaxBackoff}) must be at least Webhooks:InitialBackoff ({options.InitialBackoff}).");
        }

        if (options.GiveUpAfter < TimeSpan.FromSeconds(1))
        {
            failures.Add($"Webhooks:GiveUpAfter must be at least 1 second, not {options.GiveUpAfter}.");
        }

        if (options.BufferPerRoom is < 1 or > 100_000)
        {
            failures.Add($"Webhooks:BufferPerRoom must be between 1 and 100000, not {options.BufferPerRoom}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
