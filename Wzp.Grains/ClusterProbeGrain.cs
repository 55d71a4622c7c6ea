using Orleans.Concurrency;

namespace Wzp.Grains;

/// <inheritdoc cref="IClusterProbeGrain"/>
[StatelessWorker]
public sealed class ClusterProbeGrain : Grain, IClusterProbeGrain
{
    /// <inheritdoc/>
    public Task Ping() => Task.CompletedTask;
}
