using System.Net;

namespace Wzp.Quic;

/// <summary>Settings shared by both ends of a QUIC connection.</summary>
public abstract class QuicEndpointOptions
{
    /// <summary>The ALPN protocol offered (client) or required (server). Defaults to <c>wzp/1</c>
    /// (PROTOCOL.md §3); tests use <c>h3</c> to talk to Debian's ngtcp2 example programs.</summary>
    public string Alpn { get; set; } = QuicDefaults.Alpn;

    /// <summary>Idle timeout announced in the transport parameters; the connection closes silently
    /// when nothing is received for this long. Defaults to 30 s (PROTOCOL.md §3).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed for the handshake. Defaults to 10 s.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The <c>max_datagram_frame_size</c> transport parameter: the largest DATAGRAM frame
    /// this side accepts, payload plus 3 bytes of framing. Defaults to 1203, so that a media
    /// datagram of the protocol's maximum 1200 bytes fits (PROTOCOL.md §3 asks for at least 1200;
    /// with exactly 1200 the largest payload would be 1197). Must be 1200 to 1400.</summary>
    public int MaxDatagramFrameSize { get; set; } = 1203;

    /// <summary>Receive window of the control stream in bytes. Defaults to 256 KiB, which bounds
    /// what a peer can make us buffer when the application does not read.</summary>
    public int StreamReceiveWindow { get; set; } = 256 * 1024;

    /// <summary>Most control-stream bytes kept until the peer acknowledges them; writes wait for
    /// acknowledgements beyond this. Defaults to 1 MiB.</summary>
    public int StreamSendBufferLimit { get; set; } = 1024 * 1024;

    /// <summary>Datagrams held for a connection whose application has not read them (when no
    /// datagram handler is set); the oldest is dropped and counted beyond this. Defaults to 1024.</summary>
    public int DatagramReceiveQueueCapacity { get; set; } = 1024;

    /// <summary>UDP socket send and receive buffer sizes in bytes. Defaults to 4 MiB (the kernel
    /// may cap it at net.core.rmem_max/wmem_max).</summary>
    public int SocketBufferSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>Unidirectional streams the peer may open; their data is ignored. Wzp uses none.
    /// Only interop tests set it: HTTP/3 peers (Debian's gtlsclient/gtlsserver) abort the handshake
    /// when they cannot open their three control streams.</summary>
    internal int PeerUnidirectionalStreams { get; set; }

    internal virtual void Validate()
    {
        if (string.IsNullOrEmpty(Alpn) || System.Text.Encoding.UTF8.GetByteCount(Alpn) > 255)
        {
            throw new ArgumentException("Alpn must be 1 to 255 bytes.", nameof(Alpn));
        }

        RequirePositive(IdleTimeout, nameof(IdleTimeout));
        RequirePositive(HandshakeTimeout, nameof(HandshakeTimeout));
        if (MaxDatagramFrameSize is < 1200 or > 1400)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDatagramFrameSize), "must be 1200 to 1400");
        }

        if (StreamReceiveWindow < 65_536 + 4)
        {
            throw new ArgumentOutOfRangeException(nameof(StreamReceiveWindow), "must hold one control frame (65540 bytes)");
        }

        if (StreamSendBufferLimit < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(StreamSendBufferLimit));
        }

        if (DatagramReceiveQueueCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(DatagramReceiveQueueCapacity));
        }
    }

    private protected static void RequirePositive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, "must be positive");
        }
    }
}

/// <summary>Settings of a <see cref="QuicListener"/> (the gateway side).</summary>
public sealed class QuicListenerOptions : QuicEndpointOptions
{
    /// <summary>Local address to bind; port 0 picks a free port (see <see cref="QuicListener.LocalEndPoint"/>).
    /// Defaults to 127.0.0.1:4433 (the all-in-one mode of DESIGN.md).</summary>
    public IPEndPoint EndPoint { get; set; } = new(IPAddress.Loopback, 4433);

    /// <summary>PEM file of the TLS certificate. Required.</summary>
    public string CertificatePath { get; set; } = "";

    /// <summary>PEM file of the certificate's private key (PKCS#8). Required.</summary>
    public string PrivateKeyPath { get; set; } = "";

    /// <summary>When the two files do not exist, generate a self-signed certificate there on start
    /// (the gateway is authenticated by the Wzp handshake, not by TLS). Defaults to true.</summary>
    public bool GenerateSelfSignedCertificate { get; set; } = true;

    /// <summary>Connections held at most; further Initial packets are refused with
    /// CONNECTION_REFUSED. Defaults to 10,000.</summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>Connections held at most per source IP address, where all of an IPv6 /64 counts as one
    /// address (a single host is routinely given a whole /64). Defaults to 256 (many clients may
    /// share one NAT address).</summary>
    public int MaxConnectionsPerAddress { get; set; } = 256;

    /// <summary>Validate client addresses with a Retry round trip before keeping any state. Costs one
    /// round trip per handshake; worth it under spoofed-source floods. Defaults to false.</summary>
    public bool RequireAddressValidation { get; set; }

    /// <summary>While this many handshakes are in progress, new clients must first validate their
    /// address with a Retry round trip (as with <see cref="RequireAddressValidation"/>), so a flood of
    /// Initials from spoofed addresses cannot pin ~130 KB each until the handshake timeout. Defaults
    /// to 256; 0 turns it off.</summary>
    public int AddressValidationThreshold { get; set; } = 256;

    /// <summary>32 secret bytes from which stateless-reset tokens and Retry tokens are derived. Keep
    /// them across restarts (e.g. beside the certificate, readable by the gateway only) so that a
    /// restarted gateway answers its former clients' packets with a stateless reset and they
    /// reconnect at once instead of waiting out the idle timeout. Null (the default): random per start.</summary>
    public byte[]? StatelessResetKey { get; set; }

    /// <summary>
    /// A connection is silent until its client sends application data (control-stream bytes or a
    /// datagram); the handshake counts as silence. A silent connection is closed this long after its
    /// first packet (application error <see cref="QuicDefaults.SilentConnectionError"/>, or
    /// CONNECTION_REFUSED during the handshake), so that connections that never speak cannot hold
    /// the server's slots. Defaults to 5 s: a real client finishes the handshake and sends its first
    /// message within a few round trips, even after a Retry and a lost packet. Must be at least 100 ms.
    /// </summary>
    public TimeSpan SilentConnectionTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Silent connections held at most. At this limit, or at <see cref="MaxConnections"/>,
    /// the oldest silent connection is closed to make room for a newcomer that proved its address
    /// with a Retry round trip; only when every connection speaks are newcomers refused. Defaults to 512.</summary>
    public int MaxSilentConnections { get; set; } = 512;

    /// <summary>Silent connections held at most per source address (IPv6: per /64); more are refused.
    /// Defaults to 128, below <see cref="MaxSilentConnections"/> so that a few addresses cannot hold
    /// them all, yet room for many clients behind one NAT starting at once.</summary>
    public int MaxSilentConnectionsPerAddress { get; set; } = 128;

    /// <summary>Accepted connections waiting for <see cref="QuicListener.AcceptAsync"/> at most;
    /// beyond it new connections are closed at once. Defaults to 1024.</summary>
    public int AcceptQueueCapacity { get; set; } = 1024;

    internal override void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(EndPoint);
        if (string.IsNullOrEmpty(CertificatePath) || string.IsNullOrEmpty(PrivateKeyPath))
        {
            throw new ArgumentException("CertificatePath and PrivateKeyPath are required.");
        }

        if (StatelessResetKey is not null && StatelessResetKey.Length != 32)
        {
            throw new ArgumentException("StatelessResetKey must be 32 bytes.", nameof(StatelessResetKey));
        }

        if (AddressValidationThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(AddressValidationThreshold));
        }

        if (SilentConnectionTimeout < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentOutOfRangeException(nameof(SilentConnectionTimeout), "must be at least 100 ms");
        }

        if (MaxSilentConnections < 1 || MaxSilentConnectionsPerAddress < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxSilentConnections), "limits must be positive");
        }

        if (MaxConnections < 1 || MaxConnectionsPerAddress < 1 || AcceptQueueCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConnections), "limits must be positive");
        }
    }
}

/// <summary>Settings of <see cref="QuicClient.ConnectAsync(IPEndPoint, QuicClientOptions, CancellationToken)"/>.</summary>
public sealed class QuicClientOptions : QuicEndpointOptions
{
    /// <summary>TLS server name (SNI). Defaults to the host name given to ConnectAsync, or
    /// <c>localhost</c> when connecting to an address.</summary>
    public string? ServerName { get; set; }

    /// <summary>PEM file of trusted certificates. When null (the default) the server certificate is
    /// neither checked nor trusted: Wzp authenticates the gateway in its own handshake (PROTOCOL.md §5).
    /// When set, the chain and <see cref="ServerName"/> are verified.</summary>
    public string? TrustedCertificatesPath { get; set; }

    /// <summary>Local address to bind the connection's socket to; port 0 picks a free port. Defaults to
    /// null: any address of the remote's family. Useful on multi-homed hosts (and in tests, to
    /// connect from several loopback addresses).</summary>
    public IPEndPoint? LocalEndPoint { get; set; }

    /// <summary>Send a PING when nothing was sent for this long, so NAT bindings and the idle timer
    /// stay alive. Defaults to 10 s; <see cref="TimeSpan.Zero"/> turns it off.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(10);

    internal override void Validate()
    {
        base.Validate();
        if (KeepAliveInterval < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepAliveInterval));
        }

        if (LocalEndPoint is { Port: < 0 or > 65535 })
        {
            throw new ArgumentOutOfRangeException(nameof(LocalEndPoint));
        }
    }
}

/// <summary>Protocol constants.</summary>
public static class QuicDefaults
{
    /// <summary>Largest datagram payload with the default <see cref="QuicEndpointOptions.MaxDatagramFrameSize"/>.</summary>
    public const int MaxDatagramPayload = 1200;

    /// <summary>ALPN of the Wzp protocol (PROTOCOL.md §3).</summary>
    public const string Alpn = "wzp/1";

    /// <summary>Transport error code a peer sees when no ALPN matched: CRYPTO_ERROR (0x100) plus
    /// the TLS alert no_application_protocol (120).</summary>
    public const ulong NoApplicationProtocolError = 0x100 + 120;

    /// <summary>Application error code with which a connection is closed when one of its handlers (or
    /// the delivery of an event to it) throws.</summary>
    public const ulong HandlerFailedError = 0xfffe;

    /// <summary>Application error code with which the listener closes a connection whose client sent no
    /// application data within <see cref="QuicListenerOptions.SilentConnectionTimeout"/>, or that made
    /// room for a newcomer at a limit.</summary>
    public const ulong SilentConnectionError = 0xfffd;

    /// <summary>Transport error CONNECTION_REFUSED, sent when the server is at a connection limit.</summary>
    public const ulong ConnectionRefusedError = 0x2;
}
