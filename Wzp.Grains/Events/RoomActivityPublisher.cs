using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;
using Orleans.Streams;

namespace Wzp.Grains;

/// <summary>
/// Puts the room events of this silo's rooms on their streams. Rooms hand events over without waiting
/// (<see cref="Publish"/> only writes to a bounded queue); one loop publishes them one at a time, so the events of
/// a room reach its stream in the order the room made them, and a slow or unreachable stream delays no room.
/// </summary>
public sealed partial class RoomActivityPublisher : BackgroundService, IRoomActivitySink
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(100);
    private const int Attempts = 5;
    private readonly Channel<RoomActivity> _queue;
    private readonly IServiceProvider _services;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RoomActivityPublisher> _logger;
    private long _dropped;

    /// <summary>Created by the silo's container.</summary>
    public RoomActivityPublisher(
        IOptions<RoomEventOptions> options, IServiceProvider services, IHostApplicationLifetime lifetime, TimeProvider timeProvider,
        ILogger<RoomActivityPublisher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _queue = Channel.CreateBounded<RoomActivity>(new BoundedChannelOptions(options.Value.PublishQueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: a full queue refuses the newest event
        });
        _services = services;
        _lifetime = lifetime;
        _timeProvider = timeProvider;
        _logger = logger;
        RoomEventMetrics.EnsureCreated();
    }

    /// <inheritdoc/>
    public bool Publish(RoomActivity activity)
    {
        if (_queue.Writer.TryWrite(activity))
        {
            return true;
        }

        RoomEventMetrics.OnDropped("publish-queue-full");
        // One line per thousand drops: a stuck stream must not flood the log as well.
        if (Interlocked.Increment(ref _dropped) % 1000 == 1)
        {
            Log.QueueFull(_logger, Volatile.Read(ref _dropped));
        }

        return false;
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Streams are usable once the silo has started.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (_lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try
            {
                await started.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        var provider = _services.GetRequiredKeyedService<IStreamProvider>(RoomActivity.StreamProvider);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                while (_queue.Reader.TryRead(out var activity))
                {
                    await PublishOneAsync(provider, activity, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The silo stops; what is still queued is lost with it (counted below).
        }

        var left = 0;
        while (_queue.Reader.TryRead(out _))
        {
            left++;
        }

        if (left > 0)
        {
            RoomEventMetrics.OnDropped("publish-failed", left);
            Log.LostAtStop(_logger, left);
        }
    }

    private async Task PublishOneAsync(IStreamProvider provider, RoomActivity activity, CancellationToken cancellationToken)
    {
        var stream = provider.GetStream<RoomActivity>(StreamId.Create(RoomActivity.StreamNamespace, RoomActivity.StreamKey(activity.Room)));
        var delay = FirstRetry;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await stream.OnNextAsync(activity).ConfigureAwait(false);
                RoomEventMetrics.OnPublished();
                return;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (attempt == Attempts)
                {
                    RoomEventMetrics.OnDropped("publish-failed");
                    Log.PublishFailed(_logger, activity.Room, activity.Sequence, attempt, exception);
                    return;
                }

                Log.PublishRetry(_logger, activity.Room, activity.Sequence, attempt, exception.GetType().Name);
            }

            await Task.Delay(delay, _timeProvider, cancellationToken).ConfigureAwait(false);
            delay *= 2;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2200, Level = LogLevel.Warning,
            Message = "Room events: the publication queue is full, {Dropped} events dropped so far (is the event stream reachable?)")]
        public static partial void QueueFull(ILogger logger, long dropped);

        [LoggerMessage(EventId = 2201, Level = LogLevel.Information,
            Message = "Room {Room}: publishing event {Sequence} failed (attempt {Attempt}, {Error}); retrying")]
        public static partial void PublishRetry(ILogger logger, string room, long sequence, int attempt, string error);

        [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Room {Room}: event {Sequence} dropped after {Attempts} failed publications")]
        public static partial void PublishFailed(ILogger logger, string room, long sequence, int attempts, Exception exception);

        [LoggerMessage(EventId = 2203, Level = LogLevel.Warning, Message = "Room events: {Count} events still queued were lost as the silo stopped")]
        public static partial void LostAtStop(ILogger logger, int count);
    }
}
