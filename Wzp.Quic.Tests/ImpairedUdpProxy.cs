using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Wzp.Quic.Tests;

/// <summary>
/// A UDP relay between clients and one server that drops, duplicates and reorders packets in both
/// directions with seeded probabilities. Clients connect to <see cref="EndPoint"/>; each client gets
/// its own upstream socket so the server sees distinct peers. A reordered packet goes out after the
/// next one in its direction, or after <see cref="MaxHold"/> when none follows: a real network delays
/// a packet, it does not keep it until more traffic comes (which on a quiet link can be never).
/// </summary>
internal sealed class ImpairedUdpProxy : IAsyncDisposable
{
    private readonly Socket _front = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly IPEndPoint _server;
    private readonly ConcurrentDictionary<IPEndPoint, Upstream> _upstreams = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random;
    private readonly List<Task> _loops = [];
    private readonly double _drop;
    private readonly double _duplicate;
    private readonly double _reorder;
    private long _dropped;
    private long _duplicated;
    private long _reordered;

    private static readonly TimeSpan MaxHold = TimeSpan.FromMilliseconds(30);

    public ImpairedUdpProxy(IPEndPoint server, double drop, double duplicate, double reorder, int seed)
    {
        _server = server;
        _drop = drop;
        _duplicate = duplicate;
        _reorder = reorder;
        _random = new Random(seed);
        _front.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _loops.Add(Task.Run(FrontLoopAsync));
    }

    public IPEndPoint EndPoint => (IPEndPoint)_front.LocalEndPoint!;

    public long Dropped => Interlocked.Read(ref _dropped);

    public long Duplicated => Interlocked.Read(ref _duplicated);

    public long Reordered => Interlocked.Read(ref _reordered);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _front.Dispose();
        foreach (Upstream u in _upstreams.Values)
        {
            u.Socket.Dispose();
        }

        try
        {
            await Task.WhenAll(_loops);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Stopping.
        }

        _stop.Dispose();
    }

    private async Task FrontLoopAsync()
    {
        byte[] buffer = new byte[65536];
        var from = new IPEndPoint(IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult r;
            try
            {
                r = await _front.ReceiveFromAsync(buffer, SocketFlags.None, from, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            var client = (IPEndPoint)r.RemoteEndPoint;
            Upstream upstream = _upstreams.GetOrAdd(client, c =>
            {
                var u = new Upstream(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
                u.Socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                lock (_loops)
                {
                    _loops.Add(Task.Run(() => BackLoopAsync(u, c)));
                }

                return u;
            });
            Impair(buffer.AsSpan(0, r.ReceivedBytes), upstream.Up, p => upstream.Socket.SendTo(p, SocketFlags.None, _server));
        }
    }

    private async Task BackLoopAsync(Upstream upstream, IPEndPoint client)
    {
        byte[] buffer = new byte[65536];
        while (!_stop.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await upstream.Socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            Impair(buffer.AsSpan(0, n), upstream.Down, p => _front.SendTo(p, SocketFlags.None, client));
        }
    }

    private void Impair(ReadOnlySpan<byte> packet, Direction direction, Action<byte[]> send)
    {
        double roll;
        lock (_random)
        {
            roll = _random.NextDouble();
        }

        byte[] copy = packet.ToArray();
        lock (direction)
        {
            try
            {
                if (roll < _drop)
                {
                    Interlocked.Increment(ref _dropped);
                    return;
                }

                if (roll < _drop + _reorder && direction.Held is null)
                {
                    // Hold this one back; it goes out right after the next packet in this direction.
                    Interlocked.Increment(ref _reordered);
                    direction.Held = copy;
                    _ = ReleaseLaterAsync(direction, copy, send);
                    return;
                }

                send(copy);
                if (roll < _drop + _reorder + _duplicate)
                {
                    Interlocked.Increment(ref _duplicated);
                    send(copy);
                }

                if (direction.Held is { } held)
                {
                    direction.Held = null;
                    send(held);
                }
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                // Stopping, or the kernel refused: both are just more loss.
            }
        }
    }

    private async Task ReleaseLaterAsync(Direction direction, byte[] packet, Action<byte[]> send)
    {
        await Task.Delay(MaxHold).ConfigureAwait(false);
        lock (direction)
        {
            if (!ReferenceEquals(direction.Held, packet))
            {
                return; // already sent behind a later packet
            }

            direction.Held = null;
            try
            {
                send(packet);
            }
            catch (Exception e) when (e is ObjectDisposedException or SocketException)
            {
                // Stopping.
            }
        }
    }

    private sealed class Upstream(Socket socket)
    {
        public Socket Socket { get; } = socket;

        public Direction Up { get; } = new();

        public Direction Down { get; } = new();
    }

    // One direction of one client's traffic; its lock orders the sends of the relay loop and the hold timer.
    private sealed class Direction
    {
        public byte[]? Held { get; set; }
    }
}
