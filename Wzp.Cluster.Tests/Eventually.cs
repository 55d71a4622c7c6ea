namespace Wzp.Cluster.Tests;

/// <summary>
/// Waits for a condition by polling it until a deadline, never for a fixed time. Shared as source with
/// Wzp.ScaleOut.Tests, which polls its processes more slowly and gives up at once when one exited.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public static Task True(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        Poll(condition, timeout, what, PollInterval, fatal: null);

    public static Task True(Func<bool> condition, TimeSpan timeout, string what) =>
        True(() => Task.FromResult(condition()), timeout, what);

    /// <summary>Polls <paramref name="condition"/> every <paramref name="interval"/> until it holds.</summary>
    /// <param name="fatal">Exceptions that end the wait at once; any other is kept as the timeout's cause.</param>
    public static async Task Poll(Func<Task<bool>> condition, TimeSpan timeout, string what, TimeSpan interval, Func<Exception, bool>? fatal)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var timer = new PeriodicTimer(interval);
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }

                last = null;
            }
            catch (Exception exception) when (fatal?.Invoke(exception) != true)
            {
                // A call may fail while the cluster heals (a silo being declared dead); keep polling.
                last = exception;
            }

            try
            {
                await timer.WaitForNextTickAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Not true within {timeout}: {what}", last);
            }
        }
    }
}
