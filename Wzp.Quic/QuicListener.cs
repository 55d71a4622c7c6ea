using System.Net;
using System.Threading.Channels;

namespace Wzp.Quic;

/// <summary>
/// A QUIC server endpoint on one UDP socket: many connections routed by connection ID. Yields each
/// connection once its handshake has completed.
/// </summary>
public sealed class QuicListener : IAsyncDisposable
{
    private readonly Channel<QuicConnection> _accepted;
    private readonly QuicListenerOptions _options;
    private QuicEndpoint _endpoint = null!;

    private QuicListener(QuicListenerOptions options)
    {
        _options = options;
        _accepted = Channel.CreateBounded<QuicConnection>(new BoundedChannelOptions(options.AcceptQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = true,
        });
    }

    /// <summary>The bound address (with the actual port when the options asked for port 0).</summary>
    public IPEndPoint LocalEndPoint => _endpoint.LocalEndPoint;

    /// <summary>
    /// Binds the socket and starts serving. When the certificate files are missing and
    /// <see cref="QuicListenerOptions.GenerateSelfSignedCertificate"/> is set, a self-signed
    /// certificate is generated there first.
    /// </summary>
    public static QuicListener Start(QuicListenerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.GenerateSelfSignedCertificate)
        {
            QuicCertificate.EnsureSelfSigned(options.CertificatePath, options.PrivateKeyPath);
        }

        var listener = new QuicListener(options);
        listener._endpoint = QuicEndpoint.Create(
            options,
            options.EndPoint,
            isServer: true,
            listener.OnConnected,
            certificatePath: options.CertificatePath,
            privateKeyPath: options.PrivateKeyPath,
            maxConnections: options.MaxConnections,
            maxConnectionsPerAddress: options.MaxConnectionsPerAddress,
            requireRetry: options.RequireAddressValidation,
            retryThreshold: options.AddressValidationThreshold,
            staticSecret: options.StatelessResetKey,
            silentTimeout: options.SilentConnectionTimeout,
            maxSilentConnections: options.MaxSilentConnections,
            maxSilentConnectionsPerAddress: options.MaxSilentConnectionsPerAddress);
        listener._endpoint.Start();
        return listener;
    }

    /// <summary>Waits for the next connection whose handshake completed.</summary>
    public ValueTask<QuicConnection> AcceptAsync(CancellationToken cancellationToken = default) =>
        _accepted.Reader.ReadAsync(cancellationToken);

    /// <summary>Endpoint counters (connections, packets, refusals, stateless replies).</summary>
    public QuicListenerStatistics GetStatistics() => _endpoint.GetStatistics();

    /// <summary>Closes every connection (error code 0) and the socket.</summary>
    public ValueTask DisposeAsync() => DisposeAsync(sayGoodbye: true);

    /// <param name="sayGoodbye">False only in tests that simulate a crashed server.</param>
    internal async ValueTask DisposeAsync(bool sayGoodbye)
    {
        _accepted.Writer.TryComplete();
        await _endpoint.DisposeAsync(sayGoodbye).ConfigureAwait(false);
        while (_accepted.Reader.TryRead(out QuicConnection? c))
        {
            await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    private QuicConnection? OnConnected(ulong id)
    {
        var connection = new QuicConnection(_endpoint, id, isServer: true, ownsEndpoint: false, _options.DatagramReceiveQueueCapacity);
        if (!_accepted.Writer.TryWrite(connection))
        {
            // Nobody is accepting: refuse rather than hold connections without an owner.
            _endpoint.Close(id, QuicDefaults.ConnectionRefusedError, "accept queue full");
            return null;
        }

        return connection;
    }
}
