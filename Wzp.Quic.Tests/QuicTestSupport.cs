using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit;

namespace Wzp.Quic.Tests;

/// <summary>Every test that opens sockets runs here, one at a time: they measure process memory and
/// spawn peers, which parallel tests would disturb.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QuicSocketCollection : ICollectionFixture<CertificateFixture>
{
    public const string Name = "quic-sockets";
}

/// <summary>One self-signed certificate for the whole collection, generated the way a gateway does on first start.</summary>
public sealed class CertificateFixture : IDisposable
{
    public CertificateFixture()
    {
        Directory = Path.Combine(Path.GetTempPath(), "wzp-quic-tests-" + Guid.NewGuid().ToString("N"));
        CertificatePath = Path.Combine(Directory, "cert.pem");
        PrivateKeyPath = Path.Combine(Directory, "key.pem");
        QuicCertificate.EnsureSelfSigned(CertificatePath, PrivateKeyPath);
    }

    public string Directory { get; }

    public string CertificatePath { get; }

    public string PrivateKeyPath { get; }

    public QuicListenerOptions ListenerOptions(Action<QuicListenerOptions>? configure = null)
    {
        var options = new QuicListenerOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            CertificatePath = CertificatePath,
            PrivateKeyPath = PrivateKeyPath,
            GenerateSelfSignedCertificate = false,
        };
        configure?.Invoke(options);
        return options;
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}

internal static class TestUtil
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public static async Task<(QuicConnection Client, QuicConnection Server)> ConnectPairAsync(QuicListener listener, QuicClientOptions? options = null)
    {
        Task<QuicConnection> accept = listener.AcceptAsync().AsTask();
        QuicConnection client = await QuicClient.ConnectAsync(listener.LocalEndPoint, options ?? new QuicClientOptions()).WaitAsync(Timeout);
        QuicConnection server = await accept.WaitAsync(Timeout);
        return (client, server);
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or the deadline passes.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > (timeout ?? Timeout))
            {
                throw new TimeoutException("timed out waiting for " + what);
            }

            await Task.Delay(2);
        }
    }

    /// <summary>
    /// Sends <paramref name="payload"/> until the receiver reports it, so a rare loopback drop does
    /// not fail the test; datagrams are unreliable by design.
    /// </summary>
    public static async Task<byte[]> SendUntilReceivedAsync(QuicConnection sender, QuicConnection receiver, byte[] payload)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < Timeout)
        {
            sender.SendDatagram(payload);
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            try
            {
                using QuicDatagram d = await receiver.Datagrams.ReadAsync(cts.Token);
                return d.Span.ToArray();
            }
            catch (OperationCanceledException)
            {
                // Lost on the way (or not yet delivered): send again.
            }
        }

        throw new TimeoutException("datagram never arrived");
    }

    /// <summary>Gets the bytes of a genuine client Initial by pointing a client at a plain UDP socket.</summary>
    public static async Task<byte[]> CaptureClientInitialAsync()
    {
        using var sink = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sink.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var cts = new CancellationTokenSource();
        Task<QuicConnection> connect = QuicClient.ConnectAsync((IPEndPoint)sink.LocalEndPoint!, new QuicClientOptions(), cts.Token);
        byte[] buffer = new byte[2048];
        int n = await sink.ReceiveAsync(buffer).WaitAsync(Timeout);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connect);
        return buffer[..n];
    }

    public static async Task WriteFrameAsync(QuicConnection c, byte[] payload)
    {
        byte[] frame = new byte[4 + payload.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)payload.Length);
        payload.CopyTo(frame, 4);
        await c.WriteAsync(frame);
    }

    public static async Task<byte[]> ReadFrameAsync(QuicConnection c)
    {
        byte[] header = new byte[4];
        await c.ReadExactlyAsync(header).AsTask().WaitAsync(Timeout);
        byte[] payload = new byte[System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header)];
        await c.ReadExactlyAsync(payload).AsTask().WaitAsync(Timeout);
        return payload;
    }
}
