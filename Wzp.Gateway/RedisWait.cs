using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Wzp.Gateway;

/// <summary>
/// Waits, before the host starts, until the Redis of Redis clustering accepts connections: Orleans' Redis
/// membership throws on a refused connection during start-up, which ends the process with an unhandled
/// exception. Silos and gateways are often started before (or together with) Redis; they should wait and say so.
/// </summary>
public static partial class RedisWait
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Returns at once unless <c>Orleans:Clustering:Mode</c> is Redis; otherwise tries a TCP connection to each
    /// endpoint of <c>Orleans:Clustering:RedisConnectionString</c> once a second until one accepts, logging what
    /// it waits for every few seconds. Cancellation (Ctrl+C) ends the wait.
    /// </summary>
    public static async Task UntilReachableAsync(IConfiguration configuration, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        if (!string.Equals(configuration["Orleans:Clustering:Mode"], "Redis", StringComparison.OrdinalIgnoreCase)) return;
        var connection = configuration["Orleans:Clustering:RedisConnectionString"] ?? "127.0.0.1:6379";
        var endpoints = StackExchange.Redis.ConfigurationOptions.Parse(connection).EndPoints.ToList();
        if (endpoints.Count == 0) return; // the options validation reports it
        var where = string.Join(", ", endpoints.Select(e => e is System.Net.DnsEndPoint d ? $"{d.Host}:{d.Port}" : e.ToString()));
        var started = TimeProvider.System.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            foreach (var endpoint in endpoints)
            {
                try
                {
                    using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    timeout.CancelAfter(TimeSpan.FromSeconds(2));
                    await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
                    if (attempt > 0) Log.Reachable(logger, where);
                    return;
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    if (attempt % 5 == 0) Log.Waiting(logger, where, TimeProvider.System.GetElapsedTime(started).TotalSeconds, e.Message);
                }
            }
            await Task.Delay(Interval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// What a process's Main runs before building its host: <see cref="UntilReachableAsync"/> with a console
    /// logger of <paramref name="category"/>, ended by Ctrl+C. False when interrupted (exit with 130).
    /// </summary>
    public static async Task<bool> BeforeStartAsync(IConfiguration configuration, string category)
    {
        using var loggers = LoggerFactory.Create(logging => logging.AddConsole());
        using var interrupted = new CancellationTokenSource();
        ConsoleCancelEventHandler cancel = (_, e) =>
        {
            e.Cancel = true;
            interrupted.Cancel();
        };
        Console.CancelKeyPress += cancel;
        try
        {
            await UntilReachableAsync(configuration, loggers.CreateLogger(category), interrupted.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        finally
        {
            Console.CancelKeyPress -= cancel;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 900, Level = LogLevel.Warning,
            Message = "Waiting for Redis at {Endpoints} (Orleans:Clustering:RedisConnectionString) for {Seconds:0} s: {Reason}")]
        public static partial void Waiting(ILogger logger, string endpoints, double seconds, string reason);

        [LoggerMessage(EventId = 901, Level = LogLevel.Information, Message = "Redis at {Endpoints} is reachable")]
        public static partial void Reachable(ILogger logger, string endpoints);
    }
}
