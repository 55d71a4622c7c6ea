using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Wzp.Quic.Native;

namespace Wzp.Quic;

/// <summary>
/// One UDP socket and the native endpoint behind it: the receive loop, the timer and event
/// delivery. Shared by <see cref="QuicListener"/> (many connections) and client connections (one).
/// </summary>
/// <remarks>
/// Locking: <see cref="_lock"/> guards every native call (the shim is not thread-safe) and the
/// sends of the packets those calls produce. <see cref="_dispatchLock"/> serialises event
/// delivery so a connection sees its stream bytes in order even when the receive loop and the
/// timer both drain events; it is never taken while holding <see cref="_lock"/>.
/// </remarks>
internal sealed class QuicEndpoint : IAsyncDisposable
{
    // QUIC packets on our paths are at most ~1500 bytes; anything larger is junk that ngtcp2 rejects
    // anyway, so a truncated copy loses nothing. Events usually carry at most a packet's worth of
    // data; the event buffer grows on the rare larger one.
    private const int ReceiveBufferSize = 4096;
    private const int EventBufferSize = 4096;
    private const int AddressCapacity = 128;
    private const int ReceiveBatch = 64;

    private static readonly double NanosPerTick = 1e9 / Stopwatch.Frequency;

    private readonly Socket _socket;
    private readonly EndpointHandle _handle;
    private readonly object _lock = new();
    private readonly object _dispatchLock = new();
    private readonly Dictionary<ulong, QuicConnection> _connections = [];
    private readonly Func<ulong, QuicConnection?>? _acceptConnection;
    private readonly Timer _timer;
    private readonly int _fd;
    private byte[] _eventBuffer = GC.AllocateUninitializedArray<byte>(EventBufferSize, pinned: true);
    private readonly bool _batchReceives;
    private ulong _scheduledExpiry = ulong.MaxValue;

    // Set (under _lock) while the socket's send buffer is full: the shim keeps the unsent packets and
    // SendWhenWritableAsync sends the first of them as soon as the kernel takes it, then the rest.
    private bool _sendBlocked;
    private long _handlerFailures;

    // Sends made by a datagram handler on the dispatching thread (the gateway's fan-out) are not
    // flushed one by one: the packets collect in the native queue and leave together, one sendmmsg
    // for up to 64, when the dispatch loop runs dry.
    private int _dispatchThread;
    private bool _flushPending;
    private Task _receiveLoop = Task.CompletedTask;
    private bool _disposed;

    private QuicEndpoint(Socket socket, EndpointHandle handle, Func<ulong, QuicConnection?>? acceptConnection)
    {
        _socket = socket;
        _handle = handle;
        _acceptConnection = acceptConnection;
        _batchReceives = acceptConnection is not null;
        // Borrowed for sendmmsg in the shim; valid until DisposeAsync closes the socket, which it
        // does only after every native call has stopped (they all check _disposed under _lock).
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
        _timer = new Timer(static state => ((QuicEndpoint)state!).OnTimer(), this, Timeout.Infinite, Timeout.Infinite);
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public static ulong Now() => (ulong)(Stopwatch.GetTimestamp() * NanosPerTick);

    /// <summary>Binds a socket and creates the native endpoint; the receive loop starts with <see cref="Start"/>.</summary>
    public unsafe static QuicEndpoint Create(
        QuicEndpointOptions options,
        IPEndPoint bindTo,
        bool isServer,
        Func<ulong, QuicConnection?>? acceptConnection,
        string? certificatePath = null,
        string? privateKeyPath = null,
        string? serverName = null,
        string? trustedCertificatesPath = null,
        TimeSpan keepAlive = default,
        int maxConnections = 0,
        int maxConnectionsPerAddress = 0,
        bool requireRetry = false,
        int retryThreshold = 0,
        byte[]? staticSecret = null,
        TimeSpan silentTimeout = default,
        int maxSilentConnections = 0,
        int maxSilentConnectionsPerAddress = 0)
    {
        var socket = new Socket(bindTo.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        var strings = new List<nint>();
        try
        {
            socket.ReceiveBufferSize = options.SocketBufferSize;
            socket.SendBufferSize = options.SocketBufferSize;
            socket.Bind(bindTo);

            nint Utf8(string? s)
            {
                if (s is null)
                {
                    return 0;
                }

                nint p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }

            var config = new NativeMethods.Config
            {
                IsServer = isServer ? 1UL : 0UL,
                Alpn = Utf8(options.Alpn),
                CertFile = Utf8(certificatePath),
                KeyFile = Utf8(privateKeyPath),
                CaFile = Utf8(trustedCertificatesPath),
                ServerName = Utf8(serverName),
                IdleTimeoutNs = ToNanos(options.IdleTimeout),
                HandshakeTimeoutNs = ToNanos(options.HandshakeTimeout),
                KeepAliveNs = ToNanos(keepAlive),
                MaxDatagramFrameSize = (ulong)options.MaxDatagramFrameSize,
                MaxConnections = (ulong)maxConnections,
                MaxConnectionsPerAddress = (ulong)maxConnectionsPerAddress,
                RequireRetry = requireRetry ? 1UL : 0UL,
                RetryThreshold = (ulong)retryThreshold,
                StreamWindow = (ulong)options.StreamReceiveWindow,
                MaxStreamSendBuffer = (ulong)options.StreamSendBufferLimit,
                PeerUniStreams = (ulong)options.PeerUnidirectionalStreams,
                SilentTimeoutNs = ToNanos(silentTimeout),
                MaxSilentConnections = (ulong)maxSilentConnections,
                MaxSilentConnectionsPerAddress = (ulong)maxSilentConnectionsPerAddress,
            };
            if (staticSecret is not null)
            {
                nint secret = Marshal.AllocCoTaskMem(staticSecret.Length);
                strings.Add(secret);
                Marshal.Copy(staticSecret, 0, secret, staticSecret.Length);
                config.StaticSecret = secret;
            }

            SocketAddress local = socket.LocalEndPoint!.Serialize();
            Span<byte> localBytes = stackalloc byte[local.Size];
            local.Buffer.Span[..local.Size].CopyTo(localBytes);
            byte* err = stackalloc byte[256];
            err[0] = 0;
            int rv;
            nint native;
            fixed (byte* lp = localBytes)
            {
                rv = NativeMethods.wzp_endpoint_new(&config, lp, (uint)localBytes.Length, out native, err, 256);
            }

            if (rv != 0)
            {
                throw new InvalidOperationException("QUIC endpoint: " + Marshal.PtrToStringUTF8((nint)err));
            }

            return new QuicEndpoint(socket, new EndpointHandle(native), acceptConnection);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        finally
        {
            foreach (nint p in strings)
            {
                Marshal.FreeCoTaskMem(p);
            }
        }
    }

    public void Start() => _receiveLoop = Task.Run(ReceiveLoopAsync);

    /// <summary>Starts a client connection; the caller registers the connection object under the id.</summary>
    public unsafe ulong Connect(IPEndPoint remote, Func<ulong, QuicConnection> create)
    {
        SocketAddress sa = remote.Serialize();
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ulong now = Now();
            int rv;
            ulong id;
            fixed (byte* p = sa.Buffer.Span)
            {
                rv = NativeMethods.wzp_endpoint_connect(_handle, p, (uint)sa.Size, now, out id);
            }

            if (rv != 0)
            {
                throw new InvalidOperationException($"QUIC connect failed ({rv})");
            }

            _connections[id] = create(id);
            FlushLocked(now);
            return id;
        }
    }

    public unsafe QuicListenerStatistics GetStatistics()
    {
        NativeMethods.EndpointStats s;
        lock (_lock)
        {
            if (_disposed)
            {
                return default;
            }

            NativeMethods.wzp_endpoint_get_stats(_handle, &s);
        }

        return new QuicListenerStatistics(
            (long)s.Connections,
            (long)s.PacketsReceived,
            (long)s.PacketsSent,
            (long)s.PacketsDropped,
            (long)s.ConnectionsRefused,
            (long)s.StatelessResetsSent,
            (long)s.RetriesSent,
            (long)s.VersionNegotiationsSent,
            (long)s.HandshakesInProgress,
            (long)s.SilentClosed,
            (long)s.SendBlocked,
            Interlocked.Read(ref _handlerFailures));
    }

    // ---------------------------------------------------------------- per-connection operations

    /// <returns>1 sent, 0 dropped, negative: the connection is gone or not ready.</returns>
    public unsafe int SendDatagram(ulong id, ReadOnlySpan<byte> datagram)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return NativeMethods.ErrNoConn;
            }

            ulong now = Now();
            int rv;
            fixed (byte* p = datagram)
            {
                rv = NativeMethods.wzp_conn_send_datagram(_handle, id, p, (uint)datagram.Length, now);
                if (rv == NativeMethods.ErrTxFull)
                {
                    FlushLocked(now);
                    rv = NativeMethods.wzp_conn_send_datagram(_handle, id, p, (uint)datagram.Length, now);
                }
            }

            FlushOrDeferLocked(now);
            return rv;
        }
    }

    /// <returns>Number of datagrams sent (not dropped), or a negative error.</returns>
    public unsafe int SendDatagrams(ulong id, ReadOnlySpan<byte> payloads, ReadOnlySpan<int> lengths)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return NativeMethods.ErrNoConn;
            }

            ulong now = Now();
            int total = 0;
            int offset = 0;
            int index = 0;
            fixed (byte* data = payloads)
            fixed (int* lens = lengths)
            {
                while (index < lengths.Length)
                {
                    int processed = NativeMethods.wzp_conn_send_datagrams(
                        _handle, id, data + offset, (uint*)(lens + index), (uint)(lengths.Length - index), out uint sent, now);
                    if (processed < 0)
                    {
                        return total > 0 ? total : processed;
                    }

                    total += (int)sent;
                    for (int i = 0; i < processed; i++)
                    {
                        offset += lengths[index + i];
                    }

                    index += processed;
                    if (index < lengths.Length)
                    {
                        FlushLocked(now);
                    }
                }
            }

            FlushOrDeferLocked(now);
            return total;
        }
    }

    /// <returns>Bytes accepted into the send buffer, or a negative error.</returns>
    public unsafe long StreamWrite(ulong id, ReadOnlySpan<byte> data, bool fin, Action? beforeUnlockIfShort)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return NativeMethods.ErrNoConn;
            }

            ulong now = Now();
            long rv;
            fixed (byte* p = data)
            {
                rv = NativeMethods.wzp_conn_stream_write(_handle, id, p, (uint)data.Length, fin ? 1 : 0, now);
            }

            if (rv >= 0 && rv < data.Length)
            {
                // Registered under the lock: the "writable" event cannot slip in before the waiter exists.
                beforeUnlockIfShort?.Invoke();
            }

            FlushLocked(now);
            return rv;
        }
    }

    public void StreamConsumed(ulong id, int bytes)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            NativeMethods.wzp_conn_stream_consumed(_handle, id, (ulong)bytes);
            FlushLocked(Now());
        }
    }

    public unsafe void Close(ulong id, ulong errorCode, string reason)
    {
        byte[] reasonBytes = Encoding.UTF8.GetBytes(reason);
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            ulong now = Now();
            fixed (byte* p = reasonBytes)
            {
                NativeMethods.wzp_conn_close(_handle, id, errorCode, p, (uint)reasonBytes.Length, now);
            }

            FlushLocked(now);
        }

        // The CLOSED event is left to the receive loop or the timer: draining here would run other
        // connections' datagram handlers on the caller's thread, perhaps under the caller's locks.
        // The caller marks its QuicConnection closed itself.
    }

    public unsafe bool TryGetStatistics(ulong id, out NativeMethods.ConnStats stats)
    {
        lock (_lock)
        {
            stats = default;
            if (_disposed)
            {
                return false;
            }

            fixed (NativeMethods.ConnStats* p = &stats)
            {
                return NativeMethods.wzp_conn_get_stats(_handle, id, p) == 0;
            }
        }
    }

    public unsafe IPEndPoint? GetRemoteEndPoint(ulong id)
    {
        byte* buf = stackalloc byte[AddressCapacity];
        uint len;
        lock (_lock)
        {
            if (_disposed || NativeMethods.wzp_conn_get_remote(_handle, id, buf, AddressCapacity, out len) != 0)
            {
                return null;
            }
        }

        var sa = new SocketAddress(_socket.AddressFamily, (int)len);
        new ReadOnlySpan<byte>(buf, (int)len).CopyTo(sa.Buffer.Span);
        return (IPEndPoint)new IPEndPoint(IPAddress.Any, 0).Create(sa);
    }

    /// <summary>Tests only: the next <paramref name="count"/> flushes meet a full socket buffer.</summary>
    internal void SimulateFullSocket(uint count)
    {
        lock (_lock)
        {
            NativeMethods.wzp_test_fail_sends(_handle, count);
        }
    }

    public int GetMaxDatagramPayload(ulong id)
    {
        lock (_lock)
        {
            return _disposed ? 0 : (int)NativeMethods.wzp_conn_max_datagram_payload(_handle, id);
        }
    }

    // ---------------------------------------------------------------- loop, timer, events

    private async Task ReceiveLoopAsync()
    {
        byte[] buffer = GC.AllocateUninitializedArray<byte>(ReceiveBufferSize, pinned: true);
        var from = new SocketAddress(_socket.AddressFamily);
        while (true)
        {
            int received;
            try
            {
                received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException) when (!Volatile.Read(ref _disposed))
            {
                // ICMP errors surface as socket errors on some kernels; UDP carries on.
                continue;
            }
            catch (SocketException)
            {
                return;
            }

            lock (_lock)
            {
                if (_disposed)
                {
                    return;
                }

                ulong now = Now();
                FeedLocked(buffer, received, from, now);

                // A listener drains what is already queued in the kernel before flushing, so ACKs
                // and replies for a burst go out together. A client, with one connection and light
                // traffic, would mostly pay the extra FIONREAD system call for nothing.
                for (int i = 0; _batchReceives && i < ReceiveBatch && _socket.Available > 0; i++)
                {
                    try
                    {
                        received = _socket.ReceiveFrom(buffer, SocketFlags.None, from);
                    }
                    catch (SocketException)
                    {
                        break;
                    }

                    FeedLocked(buffer, received, from, now);
                }

                FlushLocked(now);
            }

            DrainEvents();
        }
    }

    private unsafe void FeedLocked(byte[] buffer, int length, SocketAddress from, ulong now)
    {
        fixed (byte* p = buffer)
        fixed (byte* a = from.Buffer.Span)
        {
            NativeMethods.wzp_endpoint_recv(_handle, a, (uint)from.Size, p, (uint)length, now);
        }
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _scheduledExpiry = ulong.MaxValue;
            ulong now = Now();
            NativeMethods.wzp_endpoint_handle_timers(_handle, now);
            FlushLocked(now);
        }

        DrainEvents();
    }

    private void FlushOrDeferLocked(ulong now)
    {
        if (_dispatchThread == Environment.CurrentManagedThreadId)
        {
            _flushPending = true;
        }
        else
        {
            FlushLocked(now);
        }
    }

    /// <summary>Sends every packet the native side has ready, then re-arms the timer.</summary>
    private void FlushLocked(ulong now)
    {
        _flushPending = false;

        // The shim never blocks on the socket. When the send buffer is full it keeps the packets
        // and says so; they then wait for SendWhenWritableAsync (later flushes would only meet the
        // same full buffer), and meanwhile datagrams that find the queue full are dropped and counted.
        if (!_sendBlocked && NativeMethods.wzp_endpoint_send_ready(_handle, _fd, now) == NativeMethods.ErrWouldBlock)
        {
            _sendBlocked = true;
            _ = Task.Run(SendWhenWritableAsync);
        }

        // Re-arm only when the next expiry moved earlier: sending moves it nearly every time, and a
        // timer that fires early costs one empty round, cheaper than a Change per datagram.
        ulong next = NativeMethods.wzp_endpoint_next_expiry(_handle);
        if (next < _scheduledExpiry)
        {
            _scheduledExpiry = next;
            ulong dueNs = next > now ? next - now : 0;
            long dueMs = (long)Math.Min((dueNs + 999_999) / 1_000_000, int.MaxValue - 1);
            _timer.Change(dueMs, Timeout.Infinite);
        }
    }

    /// <summary>
    /// Sends the first queued packet with an asynchronous send, which completes once the kernel has
    /// room for it (the runtime waits for the socket to become writable), then flushes the rest.
    /// </summary>
    private async Task SendWhenWritableAsync()
    {
        byte[] packet = GC.AllocateUninitializedArray<byte>(ReceiveBufferSize);
        var to = new SocketAddress(_socket.AddressFamily);
        int length;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            length = PopPacketLocked(packet, to);
        }

        if (length > 0)
        {
            try
            {
                await _socket.SendToAsync(packet.AsMemory(0, length), SocketFlags.None, to).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // An error of this one packet (e.g. an unreachable address): to QUIC, packet loss.
            }
        }

        lock (_lock)
        {
            _sendBlocked = false;
            if (!_disposed)
            {
                FlushLocked(Now());
            }
        }
    }

    private unsafe int PopPacketLocked(byte[] packet, SocketAddress to)
    {
        int length;
        uint saLen;
        fixed (byte* p = packet)
        fixed (byte* a = to.Buffer.Span)
        {
            length = NativeMethods.wzp_endpoint_pop_packet(_handle, p, (uint)packet.Length, a, (uint)to.Buffer.Length, out saLen, Now());
        }

        if (length > 0)
        {
            to.Size = (int)saLen;
        }

        return length;
    }

    /// <summary>Delivers queued native events to their connections, in order.</summary>
    public unsafe void DrainEvents()
    {
        lock (_dispatchLock)
        {
            while (true)
            {
                NativeMethods.Event ev;
                QuicConnection? connection;
                lock (_lock)
                {
                    if (_disposed)
                    {
                        return;
                    }

                    int polled;
                    fixed (byte* buf = _eventBuffer)
                    {
                        polled = NativeMethods.wzp_endpoint_poll_event(_handle, &ev, buf, (uint)_eventBuffer.Length);
                    }

                    if (polled == 0)
                    {
                        if (_flushPending)
                        {
                            FlushLocked(Now());
                        }

                        return;
                    }

                    if (polled == NativeMethods.ErrTooLarge)
                    {
                        // Stream data released from the reorder buffer in one piece: grow and poll again.
                        _eventBuffer = GC.AllocateUninitializedArray<byte>((int)System.Numerics.BitOperations.RoundUpToPowerOf2(ev.DataLen), pinned: true);
                        continue;
                    }

                    _connections.TryGetValue(ev.ConnId, out connection);
                    if (ev.Type == NativeMethods.EvClosed)
                    {
                        _connections.Remove(ev.ConnId);
                    }
                }

                var data = new ReadOnlySpan<byte>(_eventBuffer, 0, (int)ev.DataLen);
                if (connection is null && (ev.Type != NativeMethods.EvConnected || _acceptConnection is null))
                {
                    continue;
                }

                int outer = _dispatchThread;
                _dispatchThread = Environment.CurrentManagedThreadId;
                try
                {
                    if (connection is null)
                    {
                        connection = _acceptConnection!(ev.ConnId);
                        if (connection is null)
                        {
                            continue;
                        }

                        lock (_lock)
                        {
                            _connections[ev.ConnId] = connection;
                        }
                    }

                    Dispatch(connection, ev, data);
                }
                catch (Exception e)
                {
                    // Whatever throws while an event is delivered (a datagram handler, the accept
                    // callback, a connection's own bookkeeping) must not take the receive loop or
                    // the timer, and with them every other connection, down: it is counted and only
                    // its own connection pays. A closed connection has nothing left to close.
                    _dispatchThread = outer;
                    Interlocked.Increment(ref _handlerFailures);
                    if (ev.Type != NativeMethods.EvClosed)
                    {
                        Close(ev.ConnId, QuicDefaults.HandlerFailedError, EventName(ev.Type) + " handler failed: " + e.GetType().Name);
                    }
                }
                finally
                {
                    _dispatchThread = outer;
                }
            }
        }
    }

    private static void Dispatch(QuicConnection connection, in NativeMethods.Event ev, ReadOnlySpan<byte> data)
    {
        switch (ev.Type)
        {
            case NativeMethods.EvConnected:
                connection.OnConnected(Encoding.ASCII.GetString(data));
                break;
            case NativeMethods.EvDatagram:
                connection.OnDatagram(data);
                break;
            case NativeMethods.EvStreamData:
                connection.OnStreamData(data);
                break;
            case NativeMethods.EvStreamFin:
                connection.OnStreamFin(reset: ev.Flags != 0, ev.Code);
                break;
            case NativeMethods.EvStreamWritable:
                connection.OnWritable();
                break;
            case NativeMethods.EvClosed:
                connection.OnClosed(ToCloseInfo(ev, data));
                break;
            default:
                break;
        }
    }

    private static string EventName(uint type) => type switch
    {
        NativeMethods.EvConnected => "connected",
        NativeMethods.EvDatagram => "datagram",
        NativeMethods.EvStreamData => "stream data",
        NativeMethods.EvStreamFin => "stream end",
        NativeMethods.EvStreamWritable => "writable",
        _ => "event",
    };

    private static QuicCloseInfo ToCloseInfo(in NativeMethods.Event ev, ReadOnlySpan<byte> reason) => new(
        IsLocal: (ev.Flags & NativeMethods.CloseRemote) == 0 && (ev.Flags & (NativeMethods.CloseIdle | NativeMethods.CloseHandshakeTimeout)) == 0,
        IsApplicationError: (ev.Flags & NativeMethods.CloseApplication) != 0,
        ErrorCode: ev.Code,
        Reason: Encoding.UTF8.GetString(reason),
        IsIdleTimeout: (ev.Flags & NativeMethods.CloseIdle) != 0,
        IsHandshakeTimeout: (ev.Flags & NativeMethods.CloseHandshakeTimeout) != 0,
        IsStatelessReset: (ev.Flags & NativeMethods.CloseStatelessReset) != 0);

    public ValueTask DisposeAsync() => DisposeAsync(sayGoodbye: true);

    /// <param name="sayGoodbye">False only in tests that simulate a peer that vanished.</param>
    internal async ValueTask DisposeAsync(bool sayGoodbye)
    {
        List<QuicConnection> open;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            // Say goodbye to every peer before the socket goes, so they do not wait for an idle timeout.
            if (sayGoodbye)
            {
                CloseAllLocked();
            }

            _disposed = true;
            open = [.. _connections.Values];
            _connections.Clear();
        }

        await _timer.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _receiveLoop.ConfigureAwait(false);
        }
        catch (Exception) when (_receiveLoop.IsFaulted)
        {
            // The loop only ends by disposal; a fault here has nothing left to clean up.
        }

        lock (_dispatchLock)
        {
            lock (_lock)
            {
                _handle.Dispose();
            }
        }

        foreach (QuicConnection c in open)
        {
            c.OnClosed(QuicCloseInfo.Aborted("endpoint disposed"));
        }
    }

    private unsafe void CloseAllLocked()
    {
        ulong now = Now();
        foreach (ulong id in _connections.Keys)
        {
            NativeMethods.wzp_conn_close(_handle, id, 0, null, 0, now);
        }

        FlushLocked(now);
    }

    private static ulong ToNanos(TimeSpan t) => t <= TimeSpan.Zero ? 0 : (ulong)t.Ticks * 100;
}
