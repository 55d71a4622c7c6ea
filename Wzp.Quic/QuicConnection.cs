using System.Buffers;
using System.Net;
using System.Threading.Channels;
using Wzp.Quic.Native;

namespace Wzp.Quic;

/// <summary>
/// One QUIC connection: unreliable datagrams (RFC 9221) for media and one bidirectional control
/// stream, opened by the client, for reliable bytes.
/// </summary>
/// <remarks>
/// Datagrams are delivered either to a handler set with <see cref="SetDatagramHandler"/> (inline on
/// the endpoint's receive loop, no allocation: the gateway's path) or, when none is set, through the
/// bounded <see cref="Datagrams"/> channel in pooled buffers. The control stream has one reader and
/// one writer at a time.
/// </remarks>
public sealed class QuicConnection : IAsyncDisposable
{
    private readonly QuicEndpoint _endpoint;
    private readonly ulong _id;
    private readonly bool _ownsEndpoint;
    private readonly Channel<QuicDatagram> _datagrams;
    private readonly Channel<StreamChunk> _streamChunks;
    private readonly TaskCompletionSource<string> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<QuicCloseInfo> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _streamOpened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile QuicDatagramHandler? _datagramHandler;
    private TaskCompletionSource? _writable;
    private StreamChunk _current;
    private long _receiveDropped;
    private int _disposed;

    internal QuicConnection(QuicEndpoint endpoint, ulong id, bool isServer, bool ownsEndpoint, int datagramCapacity)
    {
        _endpoint = endpoint;
        _id = id;
        IsServer = isServer;
        _ownsEndpoint = ownsEndpoint;
        _datagrams = Channel.CreateBounded<QuicDatagram>(
            new BoundedChannelOptions(datagramCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleWriter = true,
            },
            dropped =>
            {
                Interlocked.Increment(ref _receiveDropped);
                dropped.Dispose();
            });
        _streamChunks = Channel.CreateUnbounded<StreamChunk>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
        if (!isServer)
        {
            // The client opens the stream; its writes need no wait.
            _streamOpened.TrySetResult();
        }
    }

    /// <summary>True on the listener side.</summary>
    public bool IsServer { get; }

    /// <summary>The peer's address (as of the handshake).</summary>
    public IPEndPoint RemoteEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>The negotiated ALPN protocol.</summary>
    public string NegotiatedAlpn { get; private set; } = "";

    /// <summary>Largest datagram payload the peer accepts (from its max_datagram_frame_size).</summary>
    public int MaxDatagramPayload { get; private set; }

    /// <summary>Completes when the connection has closed, with how it ended. Never faults.</summary>
    public Task<QuicCloseInfo> Closed => _closed.Task;

    /// <summary>True once the connection closed (locally, by the peer, or by timeout).</summary>
    public bool IsClosed => _closed.Task.IsCompleted;

    /// <summary>Received datagrams when no handler is set. Dispose each item to return its buffer.
    /// Completes when the connection closes.</summary>
    public ChannelReader<QuicDatagram> Datagrams => _datagrams.Reader;

    internal Task<string> Connected => _connected.Task;

    internal QuicEndpoint Endpoint => _endpoint;

    /// <summary>
    /// Queues one datagram into a QUIC packet and sends it now. Never blocks or waits: returns false
    /// when it was dropped (congestion window full, too large, connection closed).
    /// </summary>
    public bool SendDatagram(ReadOnlySpan<byte> datagram) => _endpoint.SendDatagram(_id, datagram) == 1;

    /// <summary>
    /// Sends several datagrams, coalescing as many as fit into each QUIC packet (fewer packets and
    /// system calls than one <see cref="SendDatagram"/> each). <paramref name="payloads"/> holds them
    /// back to back with sizes in <paramref name="lengths"/>. Returns how many were sent; the rest
    /// were dropped.
    /// </summary>
    public int SendDatagrams(ReadOnlySpan<byte> payloads, ReadOnlySpan<int> lengths)
    {
        long total = 0;
        foreach (int l in lengths)
        {
            if (l < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths));
            }

            total += l;
        }

        if (total > payloads.Length)
        {
            throw new ArgumentException("lengths exceed payloads", nameof(lengths));
        }

        return Math.Max(0, _endpoint.SendDatagrams(_id, payloads, lengths));
    }

    /// <summary>
    /// Delivers datagrams inline to <paramref name="handler"/> instead of <see cref="Datagrams"/>
    /// (null restores the channel). Datagrams already in the channel stay there.
    /// </summary>
    public void SetDatagramHandler(QuicDatagramHandler? handler) => _datagramHandler = handler;

    /// <summary>
    /// Writes bytes to the control stream. Completes once they are buffered (kept until the peer
    /// acknowledges them); waits only when <see cref="QuicEndpointOptions.StreamSendBufferLimit"/>
    /// bytes are unacknowledged. On the server it first waits for the client to open the stream.
    /// </summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        await WaitStreamOpenAsync(cancellationToken).ConfigureAwait(false);
        while (true)
        {
            TaskCompletionSource? wait = null;
            long written = _endpoint.StreamWrite(_id, data.Span, fin: false, () => wait = _writable = new(TaskCreationOptions.RunContinuationsAsynchronously));
            ThrowIfWriteFailed(written);
            data = data[(int)written..];
            if (data.IsEmpty)
            {
                return;
            }

            if (wait is not null)
            {
                await Task.WhenAny(wait.Task, _closed.Task).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Ends the control stream in this direction (the peer's read returns 0 once it has read everything).</summary>
    public async ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        await WaitStreamOpenAsync(cancellationToken).ConfigureAwait(false);
        ThrowIfWriteFailed(_endpoint.StreamWrite(_id, [], fin: true, null));
    }

    /// <summary>
    /// Reads control-stream bytes into <paramref name="buffer"/>. Returns 0 when the peer ended the
    /// stream; throws <see cref="QuicException"/> when the connection closed first.
    /// </summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        if (_current.Buffer is null)
        {
            try
            {
                _current = await _streamChunks.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException e) when (e.InnerException is QuicException inner)
            {
                throw new QuicException(inner.CloseInfo);
            }
            catch (ChannelClosedException)
            {
                return 0;
            }
        }

        int n = Math.Min(buffer.Length, _current.Length - _current.Offset);
        _current.Buffer.AsSpan(_current.Offset, n).CopyTo(buffer.Span);
        _current.Offset += n;
        if (_current.Offset == _current.Length)
        {
            // Stream bytes are the application's plaintext (Wzp's control messages carry tokens): never hand them
            // to the next renter of the pool.
            ArrayPool<byte>.Shared.Return(_current.Buffer, clearArray: true);
            _current = default;
        }

        // Open the flow-control window only as the application consumes, so an application that
        // stops reading stops the peer instead of growing our memory.
        _endpoint.StreamConsumed(_id, n);
        return n;
    }

    /// <summary>Reads exactly <c>buffer.Length</c> bytes; throws <see cref="EndOfStreamException"/> if the stream ends first.</summary>
    public async ValueTask ReadExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            int n = await ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException("control stream ended");
            }

            buffer = buffer[n..];
        }
    }

    /// <summary>
    /// Closes the connection with an application error code and reason, which the peer sees in its
    /// <see cref="Closed"/>. Completes when the close has been sent. Idempotent.
    /// </summary>
    public Task CloseAsync(ulong errorCode, string reason = "")
    {
        ArgumentNullException.ThrowIfNull(reason);
        if (!IsClosed)
        {
            _endpoint.Close(_id, errorCode, reason);
            OnClosed(new QuicCloseInfo(true, true, errorCode, reason));
        }

        return Task.CompletedTask;
    }

    /// <summary>Transport state and counters. After the connection is freed, the counters read zero
    /// except the receive drops counted here.</summary>
    public QuicConnectionStatistics GetStatistics()
    {
        _endpoint.TryGetStatistics(_id, out NativeMethods.ConnStats s);
        return new QuicConnectionStatistics(
            TimeSpan.FromTicks((long)(s.SmoothedRttNs / 100)),
            TimeSpan.FromTicks((long)(s.MinRttNs == ulong.MaxValue ? 0 : s.MinRttNs / 100)),
            TimeSpan.FromTicks((long)(s.LatestRttNs / 100)),
            (long)s.Cwnd,
            (long)s.BytesInFlight,
            (long)s.DatagramsSent,
            (long)s.DatagramsReceived,
            (long)s.DatagramsDropped,
            (long)s.DatagramsLost,
            Interlocked.Read(ref _receiveDropped),
            (long)s.PacketsSent,
            (long)s.PacketsReceived,
            (long)s.StreamBytesUnacked);
    }

    /// <summary>Closes with error code 0 if still open and releases the connection's resources
    /// (on the client, its socket too).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await CloseAsync(0, "").ConfigureAwait(false);
        if (_ownsEndpoint)
        {
            await _endpoint.DisposeAsync().ConfigureAwait(false);
        }

        while (_datagrams.Reader.TryRead(out QuicDatagram d))
        {
            d.Dispose();
        }
    }

    /// <summary>Drops a client connection's socket without a word to the peer, as a crashed or
    /// unplugged client would. For tests of the peer's idle handling.</summary>
    internal async ValueTask VanishAsync()
    {
        if (!_ownsEndpoint || Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _endpoint.DisposeAsync(sayGoodbye: false).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override string ToString() => $"QUIC {(IsServer ? "server" : "client")} connection #{_id} {RemoteEndPoint}";

    // ---------------------------------------------------------------- events (dispatch thread)

    internal void OnConnected(string alpn)
    {
        NegotiatedAlpn = alpn;
        RemoteEndPoint = _endpoint.GetRemoteEndPoint(_id) ?? RemoteEndPoint;
        MaxDatagramPayload = _endpoint.GetMaxDatagramPayload(_id);
        _connected.TrySetResult(alpn);
    }

    internal void OnDatagram(ReadOnlySpan<byte> data)
    {
        QuicDatagramHandler? handler = _datagramHandler;
        if (handler is not null)
        {
            handler(this, data);
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(data.Length, 1));
        data.CopyTo(buffer);
        if (!_datagrams.Writer.TryWrite(new QuicDatagram(buffer, data.Length)))
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal void OnStreamData(ReadOnlySpan<byte> data)
    {
        _streamOpened.TrySetResult();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(data.Length);
        data.CopyTo(buffer);
        if (!_streamChunks.Writer.TryWrite(new StreamChunk(buffer, data.Length)))
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    internal void OnStreamFin(bool reset, ulong code)
    {
        _streamOpened.TrySetResult();
        if (reset)
        {
            _streamChunks.Writer.TryComplete(new QuicException(new QuicCloseInfo(false, true, code, "control stream reset by peer")));
        }
        else
        {
            _streamChunks.Writer.TryComplete();
        }
    }

    internal void OnWritable() => Interlocked.Exchange(ref _writable, null)?.TrySetResult();

    internal void OnClosed(QuicCloseInfo info)
    {
        if (!_closed.TrySetResult(info))
        {
            return;
        }

        var error = new QuicException(info);
        _connected.TrySetException(error);
        _streamOpened.TrySetException(error);
        _ = _connected.Task.Exception; // observed: a failed connect is reported through ConnectAsync
        _ = _streamOpened.Task.Exception;
        _datagrams.Writer.TryComplete();
        _streamChunks.Writer.TryComplete(error);
        Interlocked.Exchange(ref _writable, null)?.TrySetResult();
    }

    private async ValueTask WaitStreamOpenAsync(CancellationToken cancellationToken)
    {
        if (!_streamOpened.Task.IsCompletedSuccessfully)
        {
            await _streamOpened.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void ThrowIfWriteFailed(long rv)
    {
        if (rv >= 0)
        {
            return;
        }

        if (_closed.Task.IsCompleted)
        {
            throw new QuicException(_closed.Task.Result);
        }

        throw rv == NativeMethods.ErrNoConn
            ? new QuicException(QuicCloseInfo.Aborted("connection is gone"))
            : new InvalidOperationException("The control stream is closed for writing or not open yet.");
    }

    private record struct StreamChunk(byte[] Buffer, int Length)
    {
        public int Offset { get; set; }
    }
}
