namespace Wzp.Grains;

/// <summary>
/// Answers on whichever silo receives the call (a stateless worker): how a gateway whose heartbeat went
/// unanswered tells "the directory's silo is stuck" (the cluster answers this) from "this gateway lost the
/// cluster" (nothing answers).
/// </summary>
[Alias("wzp.IClusterProbeGrain")]
public interface IClusterProbeGrain : IGrainWithIntegerKey
{
    /// <summary>Returns at once.</summary>
    [Alias("Ping")]
    Task Ping();
}
