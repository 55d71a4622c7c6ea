using System.Net;
using System.Text;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client.Tests;

/// <summary>
/// The access token never leaves the client before the gateway is verified (PROTOCOL.md §5.4): a gateway that
/// cannot prove it belongs to the pinned cluster reads every byte the client writes and finds no token in them.
/// </summary>
[Collection(SocketCollection.Name)]
public sealed class TokenSecrecyTests : IDisposable
{
    private const string Token = "grant.eyJyb29tIjoicG9kY2FzdCJ9.secret-4711";

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public enum Rogue
    {
        /// <summary>A valid credential, but from another cluster than the pinned one.</summary>
        OtherCluster,

        /// <summary>Claims the pinned cluster key, signed by another key.</summary>
        ForgedSignature,
    }

    [Theory]
    [InlineData(Rogue.OtherCluster)]
    [InlineData(Rogue.ForgedSignature)]
    public async Task PinnedClient_GatewayWithAWrongCredential_SeesNoToken(Rogue rogue)
    {
        using var pinned = Identity.Generate();
        using var other = Identity.Generate();
        using var gatewayKey = Identity.Generate();
        var now = DateTimeOffset.UtcNow;
        var credential = GatewayCredential.Issue(other, "rogue", gatewayKey.PublicKey, now.AddHours(-1), now.AddDays(1));
        if (rogue == Rogue.ForgedSignature) credential = credential with { ClusterKey = pinned.PublicKey.ToArray() };

        await using var listener = QuicListener.Start(new QuicListenerOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            CertificatePath = _dir.File("cert.pem"),
            PrivateKeyPath = _dir.File("key.pem"),
        });
        var captured = CaptureAsync(listener, gatewayKey, credential);

        using var identity = Identity.Generate();
        var options = new WzpClientOptions
        {
            Gateway = new GatewayAddress("127.0.0.1", listener.LocalEndPoint.Port),
            Identity = identity,
            Room = "podcast",
            Token = Token,
            PinnedClusterFingerprint = pinned.Fingerprint,
            KnownClustersPath = _dir.File("known_clusters"),
            Reconnect = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        var refused = await Assert.ThrowsAnyAsync<WzpClientException>(() => WzpClient.ConnectAsync(options));
        Assert.True(refused is ClusterPinMismatchException or HandshakeFailedException, refused.ToString());

        var bytes = await captured.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEmpty(bytes); // the hello did arrive
        Assert.DoesNotContain(Token, Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        Assert.DoesNotContain("token", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    /// <summary>Answers the first hello with a welcome under <paramref name="credential"/>, and returns every byte the client wrote until it closed.</summary>
    private static async Task<byte[]> CaptureAsync(QuicListener listener, Identity gatewayKey, GatewayCredential credential)
    {
        await using var connection = await listener.AcceptAsync();
        using var handshake = new GatewayHandshake(gatewayKey, credential);
        var reader = new ControlFrameReader();
        var all = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = await connection.ReadAsync(buffer);
                if (n == 0) break;
                all.Write(buffer, 0, n);
                buffer.AsSpan(0, n).CopyTo(reader.GetWriteMemory().Span);
                reader.Advance(n);
                while (reader.TryRead(out var message))
                {
                    if (message is Hello hello && handshake.OnHello(hello) is { Succeeded: true } welcome)
                        await connection.WriteAsync(ControlCodec.Encode(welcome.Value!));
                }
            }
        }
        catch (QuicException)
        {
            // The client closed the connection: everything it wrote was read before.
        }
        return all.ToArray();
    }
}
