namespace Wzp.Cluster.Tests;

/// <summary>Waits for a condition by polling it until a deadline, never for a fixed time.</summary>
public static class Eventually
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    public static async Task True(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var timer = new PeriodicTimer(PollInterval);
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
            catch (Exception exception)
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

    public static Task True(Func<bool> condition, TimeSpan timeout, string what) =>
        True(() => Task.FromResult(condition()), timeout, what);
}
