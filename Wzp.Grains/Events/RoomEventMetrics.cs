using System.Diagnostics.Metrics;

namespace Wzp.Grains;

/// <summary>
/// Room events and webhook deliveries, on the <c>Wzp.Silo</c> meter. Labels carry no room name, URL or
/// member: only a fixed reason or outcome.
/// </summary>
public static class RoomEventMetrics
{
    private static readonly Meter Meter = new(SiloMetrics.MeterName);

    private static readonly Counter<long> Published = Meter.CreateCounter<long>(
        "wzp.silo.room_events.published", description: "Room events handed to the room-events stream");

    private static readonly Counter<long> Dropped = Meter.CreateCounter<long>(
        "wzp.silo.room_events.dropped",
        description: "Room events lost, by reason: publish-queue-full, publish-failed, sink-error (before the stream); " +
            "webhook-buffer-full, webhook-expired, webhook-deactivated (a dispatcher gave them up)");

    private static readonly Counter<long> Deliveries = Meter.CreateCounter<long>(
        "wzp.silo.webhook.deliveries", description: "Webhook POSTs by outcome: delivered (2xx) or failed (retried)");

    /// <summary>Creates the instruments now, so they are exported as 0 before the first event.</summary>
    public static void EnsureCreated() => GC.KeepAlive(Meter);

    internal static void OnPublished() => Published.Add(1);

    internal static void OnDropped(string reason, long count = 1) =>
        Dropped.Add(count, new KeyValuePair<string, object?>("reason", reason));

    internal static void OnDelivery(bool delivered) =>
        Deliveries.Add(1, new KeyValuePair<string, object?>("outcome", delivered ? "delivered" : "failed"));
}
