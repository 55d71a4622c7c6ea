using System.Runtime.InteropServices;

namespace Wzp.Quic.Native;

/// <summary>P/Invoke surface of native/wzpquic.h. Layouts mirror the C structs field by field.</summary>
internal static unsafe partial class NativeMethods
{
    private const string Lib = "libwzpquic";

    public const int ErrNoConn = -1;
    public const int ErrState = -2;
    public const int ErrTooLarge = -3;
    public const int ErrTxFull = -6;
    public const int ErrWouldBlock = -7;

    public const uint EvConnected = 1;
    public const uint EvDatagram = 2;
    public const uint EvStreamData = 3;
    public const uint EvStreamFin = 4;
    public const uint EvClosed = 5;
    public const uint EvStreamWritable = 6;

    public const uint CloseRemote = 1;
    public const uint CloseApplication = 2;
    public const uint CloseIdle = 4;
    public const uint CloseHandshakeTimeout = 8;
    public const uint CloseStatelessReset = 16;

    [StructLayout(LayoutKind.Sequential)]
    public struct Config
    {
        public ulong IsServer;
        public nint Alpn;
        public nint CertFile;
        public nint KeyFile;
        public nint CaFile;
        public nint ServerName;
        public ulong IdleTimeoutNs;
        public ulong HandshakeTimeoutNs;
        public ulong KeepAliveNs;
        public ulong MaxDatagramFrameSize;
        public ulong MaxConnections;
        public ulong MaxConnectionsPerAddress;
        public ulong RequireRetry;
        public ulong RetryThreshold;
        public ulong StreamWindow;
        public ulong MaxStreamSendBuffer;
        public ulong PeerUniStreams;
        public nint StaticSecret;
        public ulong SilentTimeoutNs;
        public ulong MaxSilentConnections;
        public ulong MaxSilentConnectionsPerAddress;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Event
    {
        public ulong ConnId;
        public uint Type;
        public uint Flags;
        public ulong Code;
        public long StreamId;
        public uint DataLen;
        public uint Reserved;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct ConnStats
    {
        public ulong SmoothedRttNs;
        public ulong MinRttNs;
        public ulong LatestRttNs;
        public ulong Cwnd;
        public ulong BytesInFlight;
        public ulong DatagramsSent;
        public ulong DatagramsReceived;
        public ulong DatagramsDropped;
        public ulong DatagramsLost;
        public ulong PacketsSent;
        public ulong PacketsReceived;
        public ulong StreamBytesUnacked;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct EndpointStats
    {
        public ulong Connections;
        public ulong PacketsReceived;
        public ulong PacketsSent;
        public ulong PacketsDropped;
        public ulong ConnectionsRefused;
        public ulong StatelessResetsSent;
        public ulong RetriesSent;
        public ulong HandshakesInProgress;
        public ulong VersionNegotiationsSent;
        public ulong EventsDropped;
        public ulong SilentClosed;
        public ulong SendBlocked;
    }

    [LibraryImport(Lib)]
    public static partial int wzp_endpoint_new(Config* config, byte* localSa, uint localSaLen, out nint endpoint, byte* err, uint errCap);

    [LibraryImport(Lib)]
    public static partial void wzp_endpoint_free(nint endpoint);

    [LibraryImport(Lib)]
    public static partial int wzp_endpoint_connect(EndpointHandle ep, byte* remoteSa, uint remoteSaLen, ulong now, out ulong connId);

    [LibraryImport(Lib)]
    public static partial void wzp_endpoint_recv(EndpointHandle ep, byte* remoteSa, uint remoteSaLen, byte* pkt, uint pktLen, ulong now);

    [LibraryImport(Lib)]
    public static partial void wzp_endpoint_handle_timers(EndpointHandle ep, ulong now);

    [LibraryImport(Lib)]
    public static partial ulong wzp_endpoint_next_expiry(EndpointHandle ep);

    [LibraryImport(Lib)]
    public static partial int wzp_endpoint_pop_packet(EndpointHandle ep, byte* buf, uint cap, byte* sa, uint saCap, out uint saLen, ulong now);

    [LibraryImport(Lib)]
    public static partial int wzp_endpoint_send_ready(EndpointHandle ep, int fd, ulong now);

    [LibraryImport(Lib)]
    public static partial int wzp_endpoint_poll_event(EndpointHandle ep, Event* ev, byte* buf, uint cap);

    [LibraryImport(Lib)]
    public static partial void wzp_endpoint_get_stats(EndpointHandle ep, EndpointStats* stats);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_send_datagram(EndpointHandle ep, ulong connId, byte* data, uint len, ulong now);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_send_datagrams(EndpointHandle ep, ulong connId, byte* data, uint* lens, uint count, out uint sent, ulong now);

    [LibraryImport(Lib)]
    public static partial long wzp_conn_stream_write(EndpointHandle ep, ulong connId, byte* data, uint len, int fin, ulong now);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_stream_consumed(EndpointHandle ep, ulong connId, ulong n);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_close(EndpointHandle ep, ulong connId, ulong appErrorCode, byte* reason, uint reasonLen, ulong now);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_get_stats(EndpointHandle ep, ulong connId, ConnStats* stats);

    [LibraryImport(Lib)]
    public static partial int wzp_conn_get_remote(EndpointHandle ep, ulong connId, byte* sa, uint saCap, out uint saLen);

    [LibraryImport(Lib)]
    public static partial uint wzp_conn_max_datagram_payload(EndpointHandle ep, ulong connId);

    [LibraryImport(Lib)]
    public static partial void wzp_test_fail_sends(EndpointHandle ep, uint count);

    [LibraryImport(Lib)]
    public static partial uint wzp_address_bucket(byte* sa, uint saLen, byte* key, uint cap);
}

/// <summary>Owns one native endpoint (and with it every native connection on it).</summary>
internal sealed class EndpointHandle : SafeHandle
{
    public EndpointHandle()
        : base(0, ownsHandle: true)
    {
    }

    public EndpointHandle(nint handle)
        : base(0, ownsHandle: true)
    {
        SetHandle(handle);
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        NativeMethods.wzp_endpoint_free(handle);
        return true;
    }
}
