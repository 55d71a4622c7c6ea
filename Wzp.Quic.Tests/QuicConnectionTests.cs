using System.Net;
using System.Text;
using Xunit;

namespace Wzp.Quic.Tests;

[Collection(QuicSocketCollection.Name)]
public sealed class QuicConnectionTests(CertificateFixture certs)
{
    [Fact]
    public async Task Handshake_Completes_WithWzpAlpnAndDatagramSupport()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        Assert.NotEqual(0, listener.LocalEndPoint.Port);

        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.Equal("wzp/1", client.NegotiatedAlpn);
            Assert.Equal("wzp/1", server.NegotiatedAlpn);
            Assert.True(server.IsServer);
            Assert.False(client.IsServer);
            Assert.Equal(listener.LocalEndPoint, client.RemoteEndPoint);
            Assert.Equal(IPAddress.Loopback, server.RemoteEndPoint.Address);
            Assert.Equal(QuicDefaults.MaxDatagramPayload, client.MaxDatagramPayload);
            Assert.Equal(QuicDefaults.MaxDatagramPayload, server.MaxDatagramPayload);
        }
    }

    [Fact]
    public async Task ConnectByHostName_ResolvesAndVerifiesTheName()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        Task<QuicConnection> accept = listener.AcceptAsync().AsTask();
        var options = new QuicClientOptions { TrustedCertificatesPath = certs.CertificatePath };
        await using QuicConnection client = await QuicClient.ConnectAsync("localhost", listener.LocalEndPoint.Port, options).WaitAsync(TestUtil.Timeout);
        await using QuicConnection server = await accept.WaitAsync(TestUtil.Timeout);
        Assert.Equal(IPAddress.Loopback, client.RemoteEndPoint.Address);
    }

    [Fact]
    public async Task Handshake_WorksOverIPv6()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.EndPoint = new IPEndPoint(IPAddress.IPv6Loopback, 0)));
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.Equal(IPAddress.IPv6Loopback, server.RemoteEndPoint.Address);
            byte[] payload = [6];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
        }
    }

    [Fact]
    public async Task Datagrams_FlowBothWays()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            for (int i = 0; i < 20; i++)
            {
                byte[] up = Encoding.UTF8.GetBytes("up " + i);
                Assert.Equal(up, await TestUtil.SendUntilReceivedAsync(client, server, up));
                byte[] down = new byte[client.MaxDatagramPayload];
                Random.Shared.NextBytes(down);
                Assert.Equal(down, await TestUtil.SendUntilReceivedAsync(server, client, down));
            }

            Assert.False(client.SendDatagram(new byte[client.MaxDatagramPayload + 1]));
            QuicConnectionStatistics stats = client.GetStatistics();
            Assert.True(stats.DatagramsSent >= 20);
            Assert.True(stats.DatagramsReceived >= 20);
            Assert.True(stats.DatagramsDropped >= 1);
            Assert.True(stats.SmoothedRtt > TimeSpan.Zero);
            Assert.True(stats.CongestionWindow > 0);
        }
    }

    [Fact]
    public async Task DatagramHandler_ReceivesInline()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            // Echo on the receive loop, the gateway's pattern.
            server.SetDatagramHandler(static (connection, datagram) => connection.SendDatagram(datagram));
            byte[] payload = [1, 2, 3, 4];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, client, payload));
        }
    }

    [Fact]
    public async Task ControlStream_CarriesSmallAnd64KiBMessagesBothWays()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            byte[] small = Encoding.UTF8.GetBytes("{\"type\":\"hello\"}");
            byte[] large = new byte[65_536];
            Random.Shared.NextBytes(large);

            await TestUtil.WriteFrameAsync(client, small);
            await TestUtil.WriteFrameAsync(client, large);
            Assert.Equal(small, await TestUtil.ReadFrameAsync(server));
            Assert.Equal(large, await TestUtil.ReadFrameAsync(server));

            for (int i = 0; i < 3; i++)
            {
                await TestUtil.WriteFrameAsync(server, large);
                await TestUtil.WriteFrameAsync(server, small);
            }

            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(large, await TestUtil.ReadFrameAsync(client));
                Assert.Equal(small, await TestUtil.ReadFrameAsync(client));
            }

            await client.CompleteWritesAsync();
            Assert.Equal(0, await server.ReadAsync(new byte[16]).AsTask().WaitAsync(TestUtil.Timeout));
            await TestUtil.WaitUntilAsync(() => client.GetStatistics().StreamBytesUnacknowledged == 0, "stream acknowledgements");
        }
    }

    [Fact]
    public async Task Close_WithApplicationErrorCode_IsSeenByPeer()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            await client.CloseAsync(0x1234, "bye now");
            QuicCloseInfo seen = await server.Closed.WaitAsync(TestUtil.Timeout);
            Assert.False(seen.IsLocal);
            Assert.True(seen.IsApplicationError);
            Assert.Equal(0x1234UL, seen.ErrorCode);
            Assert.Equal("bye now", seen.Reason);
            Assert.True((await client.Closed).IsLocal);
            Assert.False(client.SendDatagram([1]));
            await Assert.ThrowsAsync<QuicException>(() => server.ReadAsync(new byte[1]).AsTask());
        }

        var (client2, server2) = await TestUtil.ConnectPairAsync(listener);
        await using (client2)
        await using (server2)
        {
            await server2.CloseAsync(7, "kicked");
            QuicCloseInfo seen = await client2.Closed.WaitAsync(TestUtil.Timeout);
            Assert.Equal(7UL, seen.ErrorCode);
            Assert.Equal("kicked", seen.Reason);
            Assert.False(seen.IsLocal);
        }
    }

    [Fact]
    public async Task OtherAlpn_IsRefusedWithTlsAlert()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        QuicException e = await Assert.ThrowsAsync<QuicException>(
            () => QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions { Alpn = "h3" }).WaitAsync(TestUtil.Timeout));
        Assert.False(e.CloseInfo.IsApplicationError);
        Assert.Equal(QuicDefaults.NoApplicationProtocolError, e.CloseInfo.ErrorCode);

        // The refusal kept no state and the listener still serves.
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.Equal(1L, listener.GetStatistics().Connections);
        }
    }

    [Fact]
    public async Task TrustedCertificate_IsVerified_AndAStrangerIsRejected()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var trusting = new QuicClientOptions { TrustedCertificatesPath = certs.CertificatePath, ServerName = "localhost" };
        var (client, server) = await TestUtil.ConnectPairAsync(listener, trusting);
        await client.DisposeAsync();
        await server.DisposeAsync();

        string otherCert = Path.Combine(certs.Directory, "other-cert.pem");
        QuicCertificate.EnsureSelfSigned(otherCert, Path.Combine(certs.Directory, "other-key.pem"));
        var suspicious = new QuicClientOptions { TrustedCertificatesPath = otherCert, ServerName = "localhost" };
        QuicException e = await Assert.ThrowsAsync<QuicException>(
            () => QuicClient.ConnectAsync(listener.LocalEndPoint, suspicious).WaitAsync(TestUtil.Timeout));
        Assert.True(e.CloseInfo.IsLocal);
        Assert.False(e.CloseInfo.IsApplicationError);
    }

    [Fact]
    public async Task KeepAlive_HoldsAnIdleConnectionOpenBeyondTheIdleTimeout()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.IdleTimeout = TimeSpan.FromSeconds(1)));
        var options = new QuicClientOptions { KeepAliveInterval = TimeSpan.FromMilliseconds(200) };
        var (client, server) = await TestUtil.ConnectPairAsync(listener, options);
        await using (client)
        await using (server)
        {
            // Ten keep-alives span twice the idle timeout; without them the server would have closed.
            long start = server.GetStatistics().PacketsReceived;
            await TestUtil.WaitUntilAsync(() => server.IsClosed || server.GetStatistics().PacketsReceived >= start + 10, "keep-alive packets");
            Assert.False(server.IsClosed);
            Assert.False(client.IsClosed);
        }
    }

    [Fact]
    public async Task ImpairedPath_LossDuplicationAndReordering_StreamStaysIntactAndDatagramsFlow()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        await using var proxy = new ImpairedUdpProxy(listener.LocalEndPoint, drop: 0.1, duplicate: 0.05, reorder: 0.1, seed: 42);
        Task<QuicConnection> accept = listener.AcceptAsync().AsTask();
        await using QuicConnection client = await QuicClient.ConnectAsync(proxy.EndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout);
        await using QuicConnection server = await accept.WaitAsync(TestUtil.Timeout);

        byte[] large = new byte[65_536];
        Random.Shared.NextBytes(large);
        for (int i = 0; i < 3; i++)
        {
            await TestUtil.WriteFrameAsync(client, large);
            await TestUtil.WriteFrameAsync(server, large);
        }

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(large, await TestUtil.ReadFrameAsync(server));
            Assert.Equal(large, await TestUtil.ReadFrameAsync(client));
        }

        byte[] payload = [1, 2, 3];
        Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
        Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(server, client, payload));
        Assert.True(proxy.Dropped > 0 && proxy.Duplicated > 0 && proxy.Reordered > 0, "the path was impaired");
    }
}
