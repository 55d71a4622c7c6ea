using System.Diagnostics.Metrics;

namespace Wzp.Gateway;

/// <summary>Where a forwarded datagram came from.</summary>
public enum ForwardPath
{
    /// <summary>An uplink datagram from a local client, fanned out to local members and links.</summary>
    Client,

    /// <summary>A datagram from another gateway's link, fanned out to local members.</summary>
    Link,
}

/// <summary>
/// The gateway's histograms, on the same <c>Wzp.Gateway</c> meter as <see cref="GatewayCounters"/>: client
/// handshake durations and the time one received datagram spends in the gateway until its last copy is handed
/// to the transport. Labels are the gateway id, the outcome and the path: never a room, member or key.
/// </summary>
/// <remarks>
/// <see cref="RecordForward"/> is meant for the per-packet path: it takes a timestamp the caller already has, and
/// records with two pre-built tags, which allocates nothing (the <c>Record(T, KeyValuePair, KeyValuePair)</c>
/// overload packs them on the stack) and costs little more than a clock read when no exporter listens.
/// </remarks>
public sealed class GatewayHistograms : IDisposable
{
    // Forwarding is a handful of AEAD operations (microseconds); the buckets resolve that range and show a
    // stalled send (milliseconds) clearly, rather than using the default buckets, which start at 5 (seconds).
    private static readonly double[] ForwardBuckets =
        [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025];

    // A loopback handshake costs ~1 ms of CPU per side plus round trips; clients far away take hundreds of ms.
    private static readonly double[] HandshakeBuckets =
        [0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Meter _meter;
    private readonly TimeProvider _time;
    private readonly Histogram<double> _handshake;
    private readonly Histogram<double> _forward;
    private readonly KeyValuePair<string, object?> _gateway;
    private readonly KeyValuePair<string, object?> _succeeded = new("outcome", "succeeded");
    private readonly KeyValuePair<string, object?> _failed = new("outcome", "failed");
    private readonly KeyValuePair<string, object?> _client = new("path", "client");
    private readonly KeyValuePair<string, object?> _link = new("path", "link");

    /// <summary>Creates the instruments for gateway <paramref name="gatewayId"/>.</summary>
    /// <param name="gatewayId">The <c>gateway</c> label, as on the counters.</param>
    /// <param name="time">The clock whose timestamps callers pass in. Defaults to the system clock.</param>
    public GatewayHistograms(string gatewayId, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(gatewayId);
        _time = time ?? TimeProvider.System;
        _gateway = new("gateway", gatewayId);
        _meter = new Meter(GatewayCounters.MeterName);
        _handshake = _meter.CreateHistogram(
            "wzp.gateway.handshake.duration", unit: "s",
            description: "Client handshakes, from the QUIC connection being accepted to the confirm checked (or the failure)",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = HandshakeBuckets });
        _forward = _meter.CreateHistogram(
            "wzp.gateway.forward.latency", unit: "s",
            description: "Time from receiving a media datagram to handing its last copy to the transport",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = ForwardBuckets });
    }

    /// <summary>Now, on the clock the histograms measure with: take it where a handshake starts or a datagram arrives.</summary>
    public long Timestamp() => _time.GetTimestamp();

    /// <summary>Records a finished handshake that started at <paramref name="startTimestamp"/> (from the same clock).</summary>
    public void RecordHandshake(long startTimestamp, bool succeeded) =>
        _handshake.Record(_time.GetElapsedTime(startTimestamp).TotalSeconds, _gateway, succeeded ? _succeeded : _failed);

    /// <summary>Records one datagram received at <paramref name="receivedTimestamp"/> whose fan-out just finished.</summary>
    public void RecordForward(long receivedTimestamp, ForwardPath path)
    {
        if (!_forward.Enabled) return; // skip the clock read when no exporter listens
        _forward.Record(_time.GetElapsedTime(receivedTimestamp).TotalSeconds, _gateway, path == ForwardPath.Link ? _link : _client);
    }

    public void Dispose() => _meter.Dispose();
}
