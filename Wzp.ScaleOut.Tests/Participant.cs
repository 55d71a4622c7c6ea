using System.Diagnostics;
using System.Text;
using Wzp.Client;
using Wzp.Protocol;

namespace Wzp.ScaleOut.Tests;

/// <summary>
/// A client in the room that talks continuously (one frame every 20 ms, 50/s, as a voice call does) and records
/// when each frame of every other speaker arrived.
/// </summary>
public sealed class Participant : IAsyncDisposable
{
    private static readonly long Epoch = Stopwatch.GetTimestamp();
    private readonly Dictionary<string, List<Heard>> _heard = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private Task _talking = Task.CompletedTask;
    private Task _listening = Task.CompletedTask;
    private Task _watching = Task.CompletedTask;
    private readonly List<MemberEvent> _memberEvents = [];
    private long _sendFailures;
    private long _received;
    private bool _record = true;

    private Participant(string name, WzpClient client, GatewayProcess gateway)
    {
        Name = name;
        Client = client;
        Gateway = gateway;
    }

    public string Name { get; }

    /// <summary>The gateway it joined through.</summary>
    public GatewayProcess Gateway { get; }

    public WzpClient Client { get; }

    public long SendFailures => Interlocked.Read(ref _sendFailures);

    /// <summary>Frames received from anyone.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>One received frame: local arrival time, the sender's own clock (the header timestamp, ms) and the
    /// sender's frame number (consecutive for frames it sent, so a gap in them is frames the path lost).</summary>
    public readonly record struct Heard(long Arrival, uint SentAtMs, int Sequence);

    /// <summary>The longest time this participant's own talking loop went without sending (a stalled test host
    /// looks like a media gap at every listener, though the relay lost nothing).</summary>
    public TimeSpan LongestSendStall => TimeSpan.FromTicks(Interlocked.Read(ref _longestSendStallTicks));

    private long _longestSendStallTicks;

    /// <param name="record">Keep every frame's arrival (for gap checks); false only counts them (load runs).</param>
    /// <param name="port">Where to connect instead of the gateway's own port (a load balancer in front of it).</param>
    /// <param name="reconnect">Reconnect when the connection is lost (a member whose flow a balancer moves).</param>
    public static async Task<Participant> JoinAsync(string name, GatewayProcess gateway, string room, Fingerprint cluster, string directory,
        CancellationToken cancellationToken = default, bool record = true, int? port = null, bool reconnect = false)
    {
        var client = await WzpClient.ConnectAsync(new WzpClientOptions
        {
            Gateway = new GatewayAddress("127.0.0.1", port ?? gateway.QuicPort),
            Identity = Identity.Generate(),
            Room = room,
            Alias = name,
            PinnedClusterFingerprint = cluster,
            KnownClustersPath = Path.Combine(directory, "known_clusters"),
            // Most members are about the relay's behaviour when a gateway dies: they must not come back.
            Reconnect = reconnect,
        }, cancellationToken);
        var participant = new Participant(name, client, gateway) { _record = record };
        participant._listening = Task.Run(participant.ListenAsync);
        participant._talking = Task.Run(participant.TalkAsync);
        participant._watching = Task.Run(participant.WatchAsync);
        return participant;
    }

    public bool Sees(string alias) => Client.Members.Any(m => m.Alias == alias);

    /// <summary>Every join and leave this client was told of, in order.</summary>
    public MemberEvent[] MemberEvents
    {
        get
        {
            lock (_memberEvents) return [.. _memberEvents];
        }
    }

    private async Task WatchAsync()
    {
        try
        {
            await foreach (var memberEvent in Client.MemberEvents.ReadAllAsync(_stop.Token))
            {
                lock (_memberEvents) _memberEvents.Add(memberEvent);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public int HeardCount(string speaker)
    {
        lock (_heard) return _heard.TryGetValue(speaker, out var list) ? list.Count : 0;
    }

    public Heard[] HeardFrom(string speaker)
    {
        lock (_heard) return _heard.TryGetValue(speaker, out var list) ? [.. list] : [];
    }

    private async Task TalkAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        var sequence = 0;
        var payload = new byte[160];
        var lastSend = Stopwatch.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                var now = Stopwatch.GetTimestamp();
                var stall = Stopwatch.GetElapsedTime(lastSend, now).Ticks;
                if (stall > Interlocked.Read(ref _longestSendStallTicks)) Interlocked.Exchange(ref _longestSendStallTicks, stall);
                lastSend = now;
                sequence++;
                var sentAt = (uint)Stopwatch.GetElapsedTime(Epoch).TotalMilliseconds;
                Array.Clear(payload);
                Encoding.ASCII.GetBytes($"{Name}:{sequence}:").CopyTo(payload, 0);
                var header = new MediaHeader(false, false, CodecId.Opus24k, false, 0, (ushort)sequence, sentAt, 0, 0, 0, 0);
                if (!Client.TrySend(header, payload)) Interlocked.Increment(ref _sendFailures);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ListenAsync()
    {
        try
        {
            await foreach (var frame in Client.ReceiveAsync(_stop.Token))
            {
                var arrival = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref _received);
                if (!_record) continue;
                var text = Encoding.ASCII.GetString(frame.Payload.Span[..Math.Min(32, frame.Payload.Length)]);
                var colon = text.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0) continue;
                var speaker = text[..colon];
                var rest = text[(colon + 1)..];
                var end = rest.IndexOf(':', StringComparison.Ordinal);
                var sequence = end > 0 && int.TryParse(rest[..end], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
                lock (_heard)
                {
                    if (!_heard.TryGetValue(speaker, out var list)) _heard[speaker] = list = [];
                    list.Add(new Heard(arrival, frame.Header.Timestamp, sequence));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// The longest silence from <paramref name="speaker"/> between <paramref name="from"/> and <paramref name="to"/>
    /// (Stopwatch timestamps): by arrival time, by the sender's timestamps of consecutive frames received, and by
    /// the frames missing in between (the audio the path lost, at 20 ms a frame; a stalled sender loses none).
    /// </summary>
    public (TimeSpan Arrival, TimeSpan Sent, TimeSpan Lost) LongestGap(string speaker, long from, long to)
    {
        var frames = HeardFrom(speaker);
        var arrival = TimeSpan.Zero;
        var sent = TimeSpan.Zero;
        var lost = TimeSpan.Zero;
        Heard? previous = null;
        foreach (var frame in frames)
        {
            if (frame.Arrival < from)
            {
                previous = frame;
                continue;
            }
            if (frame.Arrival > to) break;
            var since = previous is { } p ? p.Arrival : from;
            arrival = Max(arrival, Stopwatch.GetElapsedTime(since, frame.Arrival));
            if (previous is { } q)
            {
                sent = Max(sent, TimeSpan.FromMilliseconds(Math.Max(0, (long)frame.SentAtMs - q.SentAtMs)));
                lost = Max(lost, TimeSpan.FromMilliseconds(20 * Math.Max(0, frame.Sequence - q.Sequence - 1)));
            }
            previous = frame;
        }
        // A flow that stopped is a gap up to the end of the window.
        arrival = Max(arrival, Stopwatch.GetElapsedTime(previous is { } last && last.Arrival > from ? last.Arrival : from, to));
        return (arrival, sent, lost);
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_talking, _listening, _watching);
        await Client.DisposeAsync();
        _stop.Dispose();
    }
}
