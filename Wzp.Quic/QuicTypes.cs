using System.Buffers;

namespace Wzp.Quic;

/// <summary>How a connection ended.</summary>
/// <param name="IsLocal">True when this side closed it (including a local protocol error).</param>
/// <param name="IsApplicationError">True when <paramref name="ErrorCode"/> is an application error
/// code (from <see cref="QuicConnection.CloseAsync"/>); false for a QUIC transport error code.</param>
/// <param name="ErrorCode">The error code of the CONNECTION_CLOSE frame; 0 when none was exchanged.</param>
/// <param name="Reason">The reason phrase of the CONNECTION_CLOSE frame, if any.</param>
/// <param name="IsIdleTimeout">Nothing arrived for the idle timeout; no frame was exchanged.</param>
/// <param name="IsHandshakeTimeout">The handshake did not finish in time.</param>
/// <param name="IsStatelessReset">The peer answered with a stateless reset (it lost the connection's state).</param>
public sealed record QuicCloseInfo(
    bool IsLocal,
    bool IsApplicationError,
    ulong ErrorCode,
    string Reason,
    bool IsIdleTimeout = false,
    bool IsHandshakeTimeout = false,
    bool IsStatelessReset = false)
{
    internal static QuicCloseInfo Aborted(string reason) => new(true, true, 0, reason);

    /// <inheritdoc />
    public override string ToString()
    {
        if (IsIdleTimeout)
        {
            return "idle timeout";
        }

        if (IsHandshakeTimeout)
        {
            return "handshake timeout";
        }

        if (IsStatelessReset)
        {
            return "stateless reset by peer";
        }

        string who = IsLocal ? "locally" : "by peer";
        string kind = IsApplicationError ? "application" : "transport";
        return $"closed {who}, {kind} error 0x{ErrorCode:x}{(Reason.Length > 0 ? ": " + Reason : "")}";
    }
}

/// <summary>Thrown by operations on a connection that closed, or a handshake that failed.</summary>
public sealed class QuicException : IOException
{
    /// <summary>Creates the exception for a close.</summary>
    public QuicException(QuicCloseInfo closeInfo)
        : base("QUIC connection " + closeInfo)
    {
        CloseInfo = closeInfo;
    }

    /// <summary>How the connection ended.</summary>
    public QuicCloseInfo CloseInfo { get; }
}

/// <summary>A snapshot of a connection's transport state and counters.</summary>
/// <param name="SmoothedRtt">Smoothed round-trip time (RFC 9002).</param>
/// <param name="MinRtt">Smallest round-trip time seen.</param>
/// <param name="LatestRtt">Most recent round-trip sample.</param>
/// <param name="CongestionWindow">Congestion window in bytes.</param>
/// <param name="BytesInFlight">Bytes sent and not yet acknowledged or declared lost.</param>
/// <param name="DatagramsSent">DATAGRAM frames written into packets.</param>
/// <param name="DatagramsReceived">DATAGRAM frames received.</param>
/// <param name="DatagramsDropped">Datagrams dropped at send time (congestion window full, too large).</param>
/// <param name="DatagramsLost">Datagrams sent and later declared lost.</param>
/// <param name="DatagramsReceiveDropped">Received datagrams dropped because the application did not read them.</param>
/// <param name="PacketsSent">QUIC packets sent.</param>
/// <param name="PacketsReceived">QUIC packets received.</param>
/// <param name="StreamBytesUnacknowledged">Control-stream bytes buffered until acknowledged.</param>
public readonly record struct QuicConnectionStatistics(
    TimeSpan SmoothedRtt,
    TimeSpan MinRtt,
    TimeSpan LatestRtt,
    long CongestionWindow,
    long BytesInFlight,
    long DatagramsSent,
    long DatagramsReceived,
    long DatagramsDropped,
    long DatagramsLost,
    long DatagramsReceiveDropped,
    long PacketsSent,
    long PacketsReceived,
    long StreamBytesUnacknowledged);

/// <summary>Counters of a listener's endpoint.</summary>
/// <param name="Connections">Connections held, including handshakes in progress and closing ones.</param>
/// <param name="PacketsReceived">UDP datagrams fed to the endpoint.</param>
/// <param name="PacketsSent">UDP datagrams sent.</param>
/// <param name="PacketsDropped">Received datagrams that were unroutable or malformed (plus sends the socket refused).</param>
/// <param name="ConnectionsRefused">Initials refused at a connection limit.</param>
/// <param name="StatelessResetsSent">Stateless resets sent for unknown connection IDs.</param>
/// <param name="RetriesSent">Retry packets sent (address validation).</param>
/// <param name="VersionNegotiationsSent">Version negotiation packets sent.</param>
/// <param name="HandshakesInProgress">Connections whose handshake has not completed.</param>
/// <param name="SilentConnectionsClosed">Connections closed because their client sent no application
/// data in time (<see cref="QuicListenerOptions.SilentConnectionTimeout"/>) or to make room for a newcomer.</param>
/// <param name="SendsBlocked">Times the socket's send buffer was full; the packets waited for it, none was dropped.</param>
/// <param name="HandlerFailures">Exceptions thrown while delivering an event to a connection (its handlers
/// included); each closed that connection with <see cref="QuicDefaults.HandlerFailedError"/>, never the endpoint.</param>
public readonly record struct QuicListenerStatistics(
    long Connections,
    long PacketsReceived,
    long PacketsSent,
    long PacketsDropped,
    long ConnectionsRefused,
    long StatelessResetsSent,
    long RetriesSent,
    long VersionNegotiationsSent,
    long HandshakesInProgress,
    long SilentConnectionsClosed = 0,
    long SendsBlocked = 0,
    long HandlerFailures = 0);

/// <summary>A received datagram in a pooled buffer. Dispose it to return the buffer.</summary>
public struct QuicDatagram : IDisposable
{
    private byte[]? _buffer;

    internal QuicDatagram(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    /// <summary>Payload length in bytes.</summary>
    public int Length { get; }

    /// <summary>The payload; invalid after <see cref="Dispose"/>.</summary>
    public readonly ReadOnlySpan<byte> Span => _buffer.AsSpan(0, Length);

    /// <summary>The payload; invalid after <see cref="Dispose"/>.</summary>
    public readonly ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        byte[]? buffer = _buffer;
        _buffer = null;
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>Receives datagrams inline on the endpoint's receive loop. The span is only valid during
/// the call; the handler must not block (it delays every connection of the endpoint). Datagrams it
/// sends on the same endpoint leave together when the loop runs dry (one sendmmsg for many). If it
/// throws, its connection is closed with <see cref="QuicDefaults.HandlerFailedError"/>.</summary>
public delegate void QuicDatagramHandler(QuicConnection connection, ReadOnlySpan<byte> datagram);
