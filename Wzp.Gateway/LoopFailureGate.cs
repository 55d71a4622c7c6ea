namespace Wzp.Gateway;

/// <summary>
/// Counts the failures a background loop survives and says when one should be logged: the first, then at most
/// one a second, so a failure that repeats on every packet or tick cannot flood the log (the count still tells
/// how many there were).
/// </summary>
internal sealed class LoopFailureGate(GatewayCounters counters, GatewayLoop loop, TimeProvider time)
{
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(1);

    private long _lastLogged = long.MinValue;

    /// <summary>Counts one failure; true when the caller should log it.</summary>
    public bool OnFailure(out long failures)
    {
        counters.OnLoopFailure(loop);
        failures = counters.LoopFailures(loop);
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastLogged);
        if (last != long.MinValue && time.GetElapsedTime(last, now) < LogInterval) return false;
        return Interlocked.CompareExchange(ref _lastLogged, now, last) == last;
    }
}
