using System.Diagnostics.Metrics;
using Wzp.Gateway;
using Wzp.Grains;

namespace Wzp.ScaleOut.Tests;

/// <summary>The meters' own logic, in process: what is recorded when, and which labels it carries.</summary>
public sealed class MetricsTests
{
    [Fact]
    public void RoomGauge_RecordsRekeyOnlyOnceEveryGatewayReportedIt()
    {
        var durations = new List<double>();
        using var listener = Listen("wzp.silo.rekey.duration", (value, _) => durations.Add(value));
        using var gauge = SiloMetrics.TrackRoom();
        var start = TimeProvider.System.GetTimestamp();
        gauge.RekeyStarted(10, start);
        gauge.RekeyStarted(11, start);

        gauge.RekeysSettled(oldestPendingEpoch: 10, TimeProvider.System);
        Assert.Empty(durations);

        gauge.RekeysSettled(oldestPendingEpoch: 11, TimeProvider.System);
        Assert.Single(durations);

        gauge.RekeysSettled(oldestPendingEpoch: null, TimeProvider.System);
        Assert.Equal(2, durations.Count);
        Assert.All(durations, d => Assert.True(d >= 0));
    }

    [Fact]
    public void RoomGauge_CountsMembersUntilDisposed()
    {
        long Members()
        {
            long total = 0;
            using var listener = Listen("wzp.silo.members", (value, _) => total += (long)value);
            listener.RecordObservableInstruments();
            return total;
        }

        var before = Members();
        var gauge = SiloMetrics.TrackRoom();
        gauge.SetMembers(3);
        Assert.Equal(before + 3, Members());
        gauge.Dispose();
        Assert.Equal(before, Members());
    }

    [Fact]
    public void GatewayHistograms_LabelGatewayOutcomeAndPathOnly()
    {
        var labels = new HashSet<string>();
        var recorded = 0;
        using var listener = Listen("wzp.gateway.", (_, tags) =>
        {
            recorded++;
            foreach (var tag in tags) labels.Add(tag.Key);
        });
        using var histograms = new GatewayHistograms("gw-test");
        var start = histograms.Timestamp();
        histograms.RecordHandshake(start, succeeded: true);
        histograms.RecordHandshake(start, succeeded: false);
        histograms.RecordForward(start, ForwardPath.Client);
        histograms.RecordForward(start, ForwardPath.Link);

        Assert.Equal(4, recorded);
        Assert.Subset(new HashSet<string> { "gateway", "outcome", "path" }, labels);
    }

    private static MeterListener Listen(string instrumentPrefix, Action<double, ReadOnlySpan<KeyValuePair<string, object?>>> onMeasurement)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name.StartsWith(instrumentPrefix, StringComparison.Ordinal)) l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) => onMeasurement(value, tags));
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) => onMeasurement(value, tags));
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) => onMeasurement(value, tags));
        listener.Start();
        return listener;
    }
}
