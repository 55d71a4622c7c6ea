using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Streams;
using Orleans.Streams.Core;

namespace Wzp.Grains;

/// <summary>
/// Delivers one room's events to every configured webhook URL, in order, retrying with exponential backoff.
/// </summary>
/// <remarks>
/// Activated by the implicit subscription of the room's stream: Orleans keeps one activation per grain key in the
/// cluster, so exactly one dispatcher handles each room's events whichever silo published them. The stream hands
/// an event over and returns at once (<see cref="OnNextAsync"/> only queues it); delivery runs as a loop of its
/// own per URL in this activation, so a slow or dead receiver holds back neither the stream, nor other rooms, nor
/// the room itself. Each URL keeps at most <see cref="WebhookOptions.BufferPerRoom"/> events; past that the
/// oldest is dropped (counted). Events redelivered by the stream (at-least-once) are recognized by their sequence.
/// </remarks>
[ImplicitStreamSubscription(RoomActivity.StreamNamespace)]
public sealed partial class RoomWebhookGrain : Grain, IRoomWebhookGrain, IStreamSubscriptionObserver, IAsyncObserver<RoomActivity>
{
    private readonly WebhookOptions _options;
    private readonly WebhookSender _sender;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RoomWebhookGrain> _logger;
    private readonly List<Target> _targets;
    private readonly CancellationTokenSource _deactivating = new();
    private long _lastSequence;
    private long _delivered;
    private long _failedAttempts;
    private long _dropped;

    /// <summary>Created by Orleans.</summary>
    public RoomWebhookGrain(IOptions<WebhookOptions> options, WebhookSender sender, TimeProvider timeProvider, ILogger<RoomWebhookGrain> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _sender = sender;
        _timeProvider = timeProvider;
        _logger = logger;
        _targets = [.. _options.Urls.Select(url => new Target(new Uri(url)))];
    }

    /// <inheritdoc/>
    public Task OnSubscribed(IStreamSubscriptionHandleFactory handleFactory)
    {
        ArgumentNullException.ThrowIfNull(handleFactory);
        return handleFactory.Create<RoomActivity>().ResumeAsync(this);
    }

    /// <inheritdoc/>
    public Task OnNextAsync(RoomActivity item, StreamSequenceToken? token = null)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (_targets.Count == 0 || item.Sequence <= _lastSequence)
        {
            // No webhook configured, or a redelivery of an event already taken.
            return Task.CompletedTask;
        }

        _lastSequence = item.Sequence;
        byte[] body;
        try
        {
            body = WebhookPayload.Serialize(item);
        }
        catch (Exception exception)
        {
            _dropped++;
            RoomEventMetrics.OnDropped("webhook-bad-event");
            Log.BadEvent(_logger, item.Sequence, exception);
            return Task.CompletedTask;
        }

        var now = _timeProvider.GetTimestamp();
        foreach (var target in _targets)
        {
            if (target.Queue.Count >= _options.BufferPerRoom)
            {
                var oldest = target.Queue.Dequeue();
                target.Attempt = 0;
                _dropped++;
                RoomEventMetrics.OnDropped("webhook-buffer-full");
                Log.BufferFull(_logger, item.Room, WebhookSender.Redact(target.Url), oldest.Sequence, _options.BufferPerRoom);
            }

            target.Queue.Enqueue(new Pending(item.Room, item.Sequence, body, now));
            if (!target.Running)
            {
                target.Running = true;
                // Not awaited: runs on this activation between other calls, never inside one.
                _ = DeliverAsync(target);
            }
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task OnCompletedAsync() => Task.CompletedTask;

    /// <inheritdoc/>
    public Task OnErrorAsync(Exception ex)
    {
        Log.StreamError(_logger, ex);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<WebhookDispatchStatus> GetStatus() =>
        Task.FromResult(new WebhookDispatchStatus(_targets.Sum(t => t.Queue.Count), _delivered, _failedAttempts, _dropped));

    /// <inheritdoc/>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating.Cancel();
        var pending = _targets.Sum(t => t.Queue.Count);
        if (pending > 0)
        {
            _dropped += pending;
            RoomEventMetrics.OnDropped("webhook-deactivated", pending);
            Log.LostAtDeactivation(_logger, pending, reason.Description);
        }

        // Not disposed: a delivery loop may still read its token on the way out.
        return base.OnDeactivateAsync(reason, cancellationToken);
    }

    private async Task DeliverAsync(Target target)
    {
        var url = WebhookSender.Redact(target.Url);
        try
        {
            while (target.Queue.TryPeek(out var pending))
            {
                if (_timeProvider.GetElapsedTime(pending.QueuedAt) > _options.GiveUpAfter)
                {
                    target.Queue.Dequeue();
                    target.Attempt = 0;
                    _dropped++;
                    RoomEventMetrics.OnDropped("webhook-expired");
                    Log.GaveUp(_logger, pending.Room, url, pending.Sequence, _options.GiveUpAfter);
                    continue;
                }

                // An idle-looking activation (no calls while a receiver is down) must not be collected with its events.
                DelayDeactivation(_options.MaxBackoff + _options.Timeout + TimeSpan.FromMinutes(1));
                var (delivered, problem) = await _sender.SendAsync(target.Url, pending.Body, _deactivating.Token);
                RoomEventMetrics.OnDelivery(delivered);
                if (delivered)
                {
                    // The head may have been dropped meanwhile (buffer full): dequeue only what was sent.
                    if (target.Queue.TryPeek(out var head) && ReferenceEquals(head, pending))
                    {
                        target.Queue.Dequeue();
                    }

                    target.Attempt = 0;
                    _delivered++;
                    continue;
                }

                _failedAttempts++;
                var backoff = Backoff(target.Attempt++);
                Log.DeliveryFailed(_logger, pending.Room, url, pending.Sequence, problem, target.Attempt, backoff);
                await Task.Delay(backoff, _timeProvider, _deactivating.Token);
            }
        }
        catch (OperationCanceledException) when (_deactivating.IsCancellationRequested)
        {
            // Deactivating: OnDeactivateAsync counted what was left.
        }
        catch (Exception exception)
        {
            // A bug, not a receiver's failure: the next event starts the loop again.
            Log.LoopFailed(_logger, url, exception);
        }
        finally
        {
            target.Running = false;
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var factor = Math.Pow(2, Math.Min(attempt, 30));
        var backoff = TimeSpan.FromTicks((long)Math.Min(_options.InitialBackoff.Ticks * factor, _options.MaxBackoff.Ticks));
        return backoff;
    }

    private sealed record Pending(string Room, long Sequence, byte[] Body, long QueuedAt);

    private sealed class Target(Uri url)
    {
        public Uri Url { get; } = url;

        public Queue<Pending> Queue { get; } = new();

        public bool Running { get; set; }

        public int Attempt { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2210, Level = LogLevel.Warning,
            Message = "Room {Room}: webhook {Url} did not take event {Sequence} ({Problem}, attempt {Attempt}); retrying in {Backoff}")]
        public static partial void DeliveryFailed(ILogger logger, string room, string url, long sequence, string problem, int attempt, TimeSpan backoff);

        [LoggerMessage(EventId = 2211, Level = LogLevel.Warning,
            Message = "Room {Room}: webhook {Url} buffer full ({Capacity} events): event {Sequence} dropped")]
        public static partial void BufferFull(ILogger logger, string room, string url, long sequence, int capacity);

        [LoggerMessage(EventId = 2212, Level = LogLevel.Warning,
            Message = "Room {Room}: webhook {Url} gave up event {Sequence}, undelivered for {GiveUpAfter}")]
        public static partial void GaveUp(ILogger logger, string room, string url, long sequence, TimeSpan giveUpAfter);

        [LoggerMessage(EventId = 2213, Level = LogLevel.Warning, Message = "Webhook dispatcher: {Count} undelivered events lost at deactivation ({Reason})")]
        public static partial void LostAtDeactivation(ILogger logger, int count, string reason);

        [LoggerMessage(EventId = 2214, Level = LogLevel.Error, Message = "Webhook dispatcher: the delivery loop for {Url} failed")]
        public static partial void LoopFailed(ILogger logger, string url, Exception exception);

        [LoggerMessage(EventId = 2215, Level = LogLevel.Warning, Message = "Webhook dispatcher: the room-events stream reported an error")]
        public static partial void StreamError(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 2216, Level = LogLevel.Error, Message = "Webhook dispatcher: event {Sequence} could not be serialized and was dropped")]
        public static partial void BadEvent(ILogger logger, long sequence, Exception exception);
    }
}
