using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using Orleans.Configuration;
using Orleans.Streaming.NATS.Hosting;
using Orleans.Streams;
using Wzp.Grains;

namespace Wzp.Silo;

/// <summary>
/// Room events (<c>Events</c> section) and their webhook dispatcher (<c>Webhooks</c> section) on a silo:
/// docs/operations.md, "Room events and webhooks".
/// </summary>
public static class RoomEventsSiloBuilderExtensions
{
    /// <summary>
    /// Adds the room-events stream provider (memory streams, or NATS JetStream when <c>Events:Transport=Nats</c>),
    /// the publisher rooms hand their events to, and the webhook dispatcher's services. Both sections are validated
    /// at start (the webhook secret file included).
    /// </summary>
    public static ISiloBuilder AddWzpRoomEvents(this ISiloBuilder silo, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(configuration);
        // The transport is chosen while the silo is composed, before options exist: validate the section now.
        var events = configuration.GetSection(RoomEventOptions.SectionName).Get<RoomEventOptions>() ?? new RoomEventOptions();
        var result = new RoomEventOptionsValidator().Validate(null, events);
        if (result.Failed)
        {
            throw new OptionsValidationException(RoomEventOptions.SectionName, typeof(RoomEventOptions), result.Failures);
        }

        if (events.Transport == RoomEventTransport.Nats)
        {
            silo.AddNatsStreams(RoomActivity.StreamProvider, configurator =>
            {
                configurator.ConfigureNats(options => options.Configure(nats =>
                {
                    nats.StreamName = events.NatsStream;
                    nats.PartitionCount = events.Partitions;
                    nats.NatsClientOptions = NatsOpts.Default with
                    {
                        Url = events.NatsUrl,
                        // A NATS server that is down at start must not stop the silo: rooms work without events.
                        RetryOnInitialConnect = true,
                    };
                }));
                configurator.ConfigurePartitioning(events.Partitions);
                configurator.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
            });
        }
        else
        {
            silo.AddMemoryStreams(RoomActivity.StreamProvider, configurator =>
            {
                configurator.ConfigurePartitioning(events.Partitions);
                // The pulling agents keep Orleans' 100 ms poll: webhooks need no lower latency, and every poll is a grain call.
                configurator.ConfigureStreamPubSub(StreamPubSubType.ImplicitOnly);
            });
        }

        var services = silo.Services;
        services.AddOptions<RoomEventOptions>().Bind(configuration.GetSection(RoomEventOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RoomEventOptions>, RoomEventOptionsValidator>());
        services.AddOptions<WebhookOptions>().Bind(configuration.GetSection(WebhookOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<WebhookSender>();
        services.TryAddSingleton<RoomActivityPublisher>();
        services.Replace(ServiceDescriptor.Singleton<IRoomActivitySink>(provider => provider.GetRequiredService<RoomActivityPublisher>()));
        services.AddSingleton<IHostedService>(provider => provider.GetRequiredService<RoomActivityPublisher>());
        return silo;
    }
}
