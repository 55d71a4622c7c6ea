using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Wzp.Grains;

/// <summary>
/// The <c>Wzp.Silo</c> meter: rooms and members active on this silo, how long a rekey takes from the epoch
/// advance until every gateway hosting members reported it, and evictions of gateways from rooms. No label
/// carries a room name, fingerprint or alias.
/// </summary>
/// <remarks>
/// Static because rooms are grains created by Orleans: a process-wide meter needs no constructor parameter
/// (and no extra service in every test silo). Several silos in one process (test clusters) add up.
/// </remarks>
public static class SiloMetrics
{
    public const string MeterName = "Wzp.Silo";

    private static readonly Meter Meter = new(MeterName);
    private static readonly ConcurrentDictionary<RoomGauge, byte> Rooms = new();

    // Rekeys take one control round trip per member plus the gateway's report: tens of ms on a LAN, up to the
    // rekey timeout (5 s by default) when a gateway is late.
    private static readonly Histogram<double> RekeyDuration = Meter.CreateHistogram(
        "wzp.silo.rekey.duration", unit: "s",
        description: "Time from a room advancing its epoch until every gateway hosting its members reported the rekey",
        tags: null,
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });

    private static readonly Counter<long> Evictions = Meter.CreateCounter<long>(
        "wzp.silo.gateway.evictions", description: "Gateways whose members a room evicted, by reason (gateway-gone, rekey-timeout)");

    static SiloMetrics()
    {
        Meter.CreateObservableUpDownCounter("wzp.silo.rooms", () => Rooms.Keys.Count(room => room.Members > 0),
            description: "Rooms with members whose grain is active on this silo");
        Meter.CreateObservableUpDownCounter("wzp.silo.members", () => Rooms.Keys.Sum(room => (long)room.Members),
            description: "Members of the rooms active on this silo");
    }

    /// <summary>Creates the instruments now (they are otherwise created when the first room activates).</summary>
    public static void EnsureCreated() => GC.KeepAlive(Meter);

    /// <summary>A room grain's entry in the gauges, from activation to deactivation.</summary>
    public static RoomGauge TrackRoom()
    {
        var gauge = new RoomGauge();
        Rooms.TryAdd(gauge, 0);
        return gauge;
    }

    /// <summary>Counts a room's eviction of a gateway's members.</summary>
    public static void OnGatewayEvicted(RoomChangeReason reason) =>
        Evictions.Add(1, new KeyValuePair<string, object?>("reason", reason == RoomChangeReason.RekeyTimeout ? "rekey-timeout" : "gateway-gone"));

    internal static void OnRekeyed(TimeSpan duration) => RekeyDuration.Record(duration.TotalSeconds);

    /// <summary>One room's member count and its open rekeys, fed by the grain (single-threaded: no locking).</summary>
    public sealed class RoomGauge : IDisposable
    {
        private readonly Queue<(long Epoch, long StartedAt)> _open = new();
        private volatile int _members;

        /// <summary>Members now.</summary>
        public int Members => _members;

        /// <summary>Records the member count after a change.</summary>
        public void SetMembers(int members) => _members = members;

        /// <summary>The room advanced to <paramref name="epoch"/> at <paramref name="timestamp"/> and asked its gateways to rekey.</summary>
        public void RekeyStarted(long epoch, long timestamp) => _open.Enqueue((epoch, timestamp));

        /// <summary>
        /// Closes every open rekey below <paramref name="oldestPendingEpoch"/> (the oldest epoch some gateway still
        /// owes; null when none does) and records its duration.
        /// </summary>
        public void RekeysSettled(long? oldestPendingEpoch, TimeProvider time)
        {
            while (_open.TryPeek(out var open) && (oldestPendingEpoch is null || open.Epoch < oldestPendingEpoch))
            {
                _open.Dequeue();
                OnRekeyed(time.GetElapsedTime(open.StartedAt));
            }
        }

        /// <summary>The room emptied: nothing is owed any more, and nothing completed either.</summary>
        public void Clear()
        {
            _open.Clear();
            _members = 0;
        }

        public void Dispose()
        {
            _members = 0;
            Rooms.TryRemove(this, out _);
        }
    }
}
