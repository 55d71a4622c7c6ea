using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A UDP load balancer in miniature: clients send to <see cref="EndPoint"/>, each client's flow goes out from its
/// own socket to <see cref="Target"/>, and answers come back. Changing the target moves every flow at once, as a
/// balancer does when a gateway dies or the pool changes.
/// </summary>
internal sealed class SwitchingUdpForwarder : IAsyncDisposable
{
    private readonly Socket _front = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly ConcurrentDictionary<IPEndPoint, Socket> _flows = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private volatile IPEndPoint _target;

    public SwitchingUdpForwarder(IPEndPoint target)
    {
        _target = target;
        _front.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _loops.Add(Task.Run(FrontLoopAsync));
    }

    public IPEndPoint EndPoint => (IPEndPoint)_front.LocalEndPoint!;

    public IPEndPoint Target
    {
        get => _target;
        set => _target = value;
    }

    private async Task FrontLoopAsync()
    {
        var buffer = new byte[65_536];
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _front.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested) return;
                continue;
            }
            var client = (IPEndPoint)received.RemoteEndPoint;
            var flow = _flows.GetOrAdd(client, c =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                lock (_loops) _loops.Add(Task.Run(() => BackLoopAsync(socket, c)));
                return socket;
            });
            try
            {
                await flow.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), _target);
            }
            catch (SocketException)
            {
                // The target is gone (ICMP unreachable): the packet is lost, as on a real network.
            }
        }
    }

    private async Task BackLoopAsync(Socket flow, IPEndPoint client)
    {
        var buffer = new byte[65_536];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var received = await flow.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                await _front.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), client);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // An ICMP error of an earlier send; the flow goes on.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _front.Dispose();
        foreach (var socket in _flows.Values) socket.Dispose();
        Task[] loops;
        lock (_loops) loops = [.. _loops];
        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }
}
