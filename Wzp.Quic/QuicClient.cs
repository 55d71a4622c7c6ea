using System.Net;
using System.Net.Sockets;

namespace Wzp.Quic;

/// <summary>Opens client connections. Each connection has its own UDP socket.</summary>
public static class QuicClient
{
    /// <summary>Resolves <paramref name="host"/> and connects; the host name is the default TLS server name.</summary>
    public static async Task<QuicConnection> ConnectAsync(string host, int port, QuicClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentNullException.ThrowIfNull(options);
        IPAddress[] addresses = IPAddress.TryParse(host, out IPAddress? literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (addresses.Length == 0)
        {
            throw new SocketException((int)SocketError.HostNotFound);
        }

        IPAddress address = Array.Find(addresses, a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses[0];
        return await ConnectAsync(new IPEndPoint(address, port), options, literal is null ? host : null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Connects to <paramref name="remote"/> and completes when the handshake did. Throws
    /// <see cref="QuicException"/> when the server refuses (e.g. no common ALPN: transport error
    /// <see cref="QuicDefaults.NoApplicationProtocolError"/>) or the handshake times out.
    /// </summary>
    public static Task<QuicConnection> ConnectAsync(IPEndPoint remote, QuicClientOptions options, CancellationToken cancellationToken = default) =>
        ConnectAsync(remote, options, null, cancellationToken);

    private static async Task<QuicConnection> ConnectAsync(IPEndPoint remote, QuicClientOptions options, string? hostName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        IPEndPoint bindTo = options.LocalEndPoint ?? (remote.AddressFamily == AddressFamily.InterNetworkV6
            ? new IPEndPoint(IPAddress.IPv6Any, 0)
            : new IPEndPoint(IPAddress.Any, 0));
        QuicEndpoint endpoint = QuicEndpoint.Create(
            options,
            bindTo,
            isServer: false,
            acceptConnection: null,
            serverName: options.ServerName ?? hostName ?? "localhost",
            trustedCertificatesPath: options.TrustedCertificatesPath,
            keepAlive: options.KeepAliveInterval);
        QuicConnection? connection = null;
        try
        {
            endpoint.Start();
            endpoint.Connect(remote, id => connection = new QuicConnection(endpoint, id, isServer: false, ownsEndpoint: true, options.DatagramReceiveQueueCapacity));
            endpoint.DrainEvents();
            await connection!.Connected.WaitAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                await endpoint.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }
}
