using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

[Collection(QuicSocketCollection.Name)]
public sealed class QuicServerTests(CertificateFixture certs, ITestOutputHelper output)
{
    [Fact]
    public async Task HundredConcurrentConnections_DatagramsAreRoutedToTheirOwnConnection()
    {
        const int Count = 100;
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());

        // Server: each connection must only ever see its own client's index; it echoes it back.
        var owners = new ConditionalWeakTable<QuicConnection, StrongBox<int>>();
        int misrouted = 0;
        using var acceptCts = new CancellationTokenSource();
        var serverConnections = new List<QuicConnection>();
        Task acceptLoop = Task.Run(async () =>
        {
            while (!acceptCts.IsCancellationRequested)
            {
                QuicConnection s;
                try
                {
                    s = await listener.AcceptAsync(acceptCts.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                lock (serverConnections)
                {
                    serverConnections.Add(s);
                }

                s.SetDatagramHandler((connection, datagram) =>
                {
                    int index = BinaryPrimitives.ReadInt32LittleEndian(datagram);
                    StrongBox<int> owner = owners.GetValue(connection, _ => new StrongBox<int>(index));
                    if (owner.Value != index)
                    {
                        Interlocked.Increment(ref misrouted);
                    }

                    connection.SendDatagram(datagram);
                });
            }
        });

        QuicConnection[] clients = await Task.WhenAll(Enumerable.Range(0, Count).Select(
            _ => QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout)));
        try
        {
            await Task.WhenAll(clients.Select(async (client, index) =>
            {
                for (int round = 0; round < 5; round++)
                {
                    byte[] payload = new byte[64];
                    BinaryPrimitives.WriteInt32LittleEndian(payload, index);
                    BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(4), round);
                    byte[] echo = await TestUtil.SendUntilReceivedAsync(client, client, payload);
                    Assert.Equal(payload, echo);
                }
            }));

            Assert.Equal(0, Volatile.Read(ref misrouted));
            lock (serverConnections)
            {
                Assert.Equal(Count, serverConnections.Count);
            }

            Assert.Equal(Count, listener.GetStatistics().Connections);
        }
        finally
        {
            await acceptCts.CancelAsync();
            await acceptLoop;
            foreach (QuicConnection c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task FanOutFromADatagramHandler_ReachesEveryOtherConnection()
    {
        // The gateway's pattern: an uplink datagram, handled inline, is forwarded to every other
        // member; the forwarded packets leave in batches (more than the 64-packet send queue).
        const int Members = 100;
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var clients = new List<QuicConnection>();
        var servers = new List<QuicConnection>();
        for (int i = 0; i < Members; i++)
        {
            var (c, s) = await TestUtil.ConnectPairAsync(listener);
            clients.Add(c);
            servers.Add(s);
        }

        try
        {
            QuicConnection[] all = [.. servers];
            foreach (QuicConnection s in servers)
            {
                s.SetDatagramHandler((from, datagram) =>
                {
                    foreach (QuicConnection to in all)
                    {
                        if (to != from)
                        {
                            to.SendDatagram(datagram);
                        }
                    }
                });
            }

            var received = new bool[Members];
            int count = 0;
            for (int i = 1; i < Members; i++)
            {
                int index = i;
                clients[i].SetDatagramHandler((_, d) =>
                {
                    if (d.Length == 1 && d[0] == 0x5a && !received[index])
                    {
                        received[index] = true;
                        Interlocked.Increment(ref count);
                    }
                });
            }

            // Resend until everyone has it: loopback may drop a datagram under load.
            await TestUtil.WaitUntilAsync(
                () =>
                {
                    clients[0].SendDatagram([0x5a]);
                    return Volatile.Read(ref count) == Members - 1;
                },
                "the fan-out to reach every member");
        }
        finally
        {
            foreach (QuicConnection c in clients.Concat(servers))
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ThrowingDatagramHandler_ClosesOnlyItsOwnConnection()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (faultyClient, faultyServer) = await TestUtil.ConnectPairAsync(listener);
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (faultyClient)
        await using (faultyServer)
        await using (client)
        await using (server)
        {
            faultyServer.SetDatagramHandler((_, _) => throw new InvalidOperationException("bug"));
            faultyClient.SendDatagram([1]);
            QuicCloseInfo seen = await faultyClient.Closed.WaitAsync(TestUtil.Timeout);
            Assert.Equal(QuicDefaults.HandlerFailedError, seen.ErrorCode);

            byte[] payload = [2];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(server, client, payload));
        }
    }

    [Fact]
    public async Task HundredThousandJunkPackets_NeitherCrashNorDisturbAnEstablishedConnection()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            // An established client speaks at once (a Wzp client sends its hello); one that stays
            // silent through the flood would rightly be closed at the silent-connection deadline.
            await TestUtil.SendUntilReceivedAsync(client, server, [1]);
            byte[] initial = await TestUtil.CaptureClientInitialAsync();
            long receivedBefore = listener.GetStatistics().PacketsReceived;
            using var junk = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            var random = new Random(1234);
            byte[] packet = new byte[1500];
            for (int i = 0; i < 100_000; i++)
            {
                int length;
                switch (i % 4)
                {
                    case 0:
                        // Pure noise of any length.
                        length = random.Next(1, 1500);
                        random.NextBytes(packet.AsSpan(0, length));
                        break;
                    case 1:
                        // A real client Initial with a few bytes flipped (header, CIDs, token, payload).
                        length = initial.Length;
                        initial.CopyTo(packet, 0);
                        for (int f = random.Next(1, 4); f > 0; f--)
                        {
                            packet[random.Next(length)] ^= (byte)random.Next(1, 256);
                        }

                        break;
                    case 2:
                        // Long header, QUIC v1, random CIDs and body: passes the first header checks.
                        length = random.Next(20, 1400);
                        random.NextBytes(packet.AsSpan(0, length));
                        packet[0] = (byte)(0xc0 | (packet[0] & 0x3f));
                        BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(1), 1);
                        packet[5] = (byte)random.Next(0, 21);
                        break;
                    default:
                        // Short header with an unknown 16-byte CID: stateless-reset territory.
                        length = random.Next(1, 1400);
                        random.NextBytes(packet.AsSpan(0, length));
                        packet[0] = (byte)(0x40 | (packet[0] & 0x3f));
                        break;
                }

                junk.SendTo(packet.AsSpan(0, length), SocketFlags.None, listener.LocalEndPoint);
                if (i % 200 == 199)
                {
                    // Pace the flood to what the listener processes, so the junk reaches the shim
                    // instead of overflowing the kernel's socket buffer.
                    await WaitForListenerAsync(listener, receivedBefore + i + 1 - 200);
                }
            }

            await WaitForListenerAsync(listener, receivedBefore + 100_000);

            QuicListenerStatistics stats = listener.GetStatistics();
            output.WriteLine($"after junk: {stats}");
            Assert.Equal(1L, stats.Connections);
            Assert.True(stats.PacketsReceived - receivedBefore >= 95_000, "most junk should have reached the endpoint");
            Assert.True(stats.StatelessResetsSent > 0);
            Assert.True(stats.VersionNegotiationsSent > 0);

            // The established connection still works both ways, datagrams and stream.
            byte[] payload = [9, 8, 7];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(server, client, payload));
            await TestUtil.WriteFrameAsync(client, payload);
            Assert.Equal(payload, await TestUtil.ReadFrameAsync(server));
            Assert.False(client.IsClosed);
            Assert.False(server.IsClosed);

            // And new clients are still served.
            var (client2, server2) = await TestUtil.ConnectPairAsync(listener);
            await client2.DisposeAsync();
            await server2.DisposeAsync();
        }
    }

    [Fact]
    public async Task VanishedPeer_IsClosedAfterIdleTimeout()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.IdleTimeout = TimeSpan.FromSeconds(2)));
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (server)
        {
            await client.VanishAsync();
            QuicCloseInfo info = await server.Closed.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.True(info.IsIdleTimeout);
            await TestUtil.WaitUntilAsync(() => listener.GetStatistics().Connections == 0, "the connection to be freed");
        }
    }

    [Fact]
    public async Task ReconnectingPeer_GetsAFreshConnection()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client1, server1) = await TestUtil.ConnectPairAsync(listener);
        await client1.VanishAsync();

        var (client2, server2) = await TestUtil.ConnectPairAsync(listener);
        await using (client2)
        await using (server2)
        await using (server1)
        {
            Assert.NotSame(server1, server2);
            Assert.NotEqual(server1.RemoteEndPoint, server2.RemoteEndPoint);
            byte[] payload = [42];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client2, server2, payload));
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(server2, client2, payload));
        }
    }

    [Fact]
    public async Task RestartedServerWithSameResetKey_ResetsItsFormerClientsAtOnce()
    {
        byte[] key = new byte[32];
        Random.Shared.NextBytes(key);
        QuicListener first = QuicListener.Start(certs.ListenerOptions(o => o.StatelessResetKey = key));
        IPEndPoint address = first.LocalEndPoint;
        var (client, server) = await TestUtil.ConnectPairAsync(first);
        await using (client)
        {
            // The server "crashes": no CONNECTION_CLOSE, all state gone.
            await first.DisposeAsync(sayGoodbye: false);
            await server.DisposeAsync();

            await using QuicListener second = QuicListener.Start(certs.ListenerOptions(o =>
            {
                o.EndPoint = address;
                o.StatelessResetKey = key;
            }));
            client.SendDatagram([1]);
            QuicCloseInfo info = await client.Closed.WaitAsync(TestUtil.Timeout);
            Assert.True(info.IsStatelessReset, info.ToString());
            Assert.True(second.GetStatistics().StatelessResetsSent >= 1);
        }
    }

    [Fact]
    public async Task AddressValidation_WithRetry_StillCompletesHandshake()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.RequireAddressValidation = true));
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.Equal(1L, listener.GetStatistics().RetriesSent);
            byte[] payload = [5];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
        }
    }

    [Fact]
    public async Task HalfOpenHandshakesPastTheThreshold_MakeNewClientsValidateTheirAddress()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.AddressValidationThreshold = 1));

        // A client Initial replayed from a socket that never answers: one half-open handshake.
        byte[] initial = await TestUtil.CaptureClientInitialAsync();
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.SendTo(initial, listener.LocalEndPoint);
        await TestUtil.WaitUntilAsync(() => listener.GetStatistics().HandshakesInProgress == 1, "the half-open handshake");
        Assert.Equal(0L, listener.GetStatistics().RetriesSent);

        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.Equal(1L, listener.GetStatistics().RetriesSent);
            byte[] payload = [3];
            Assert.Equal(payload, await TestUtil.SendUntilReceivedAsync(client, server, payload));
        }
    }

    [Fact]
    public async Task ConnectionLimitPerAddress_RefusesCleanly()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.MaxConnectionsPerAddress = 1));
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            QuicException e = await Assert.ThrowsAsync<QuicException>(
                () => QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout));
            Assert.Equal(QuicDefaults.ConnectionRefusedError, e.CloseInfo.ErrorCode);
            Assert.Equal(1L, listener.GetStatistics().ConnectionsRefused);
        }
    }

    [Fact]
    public async Task TotalConnectionLimit_RefusesCleanly()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.MaxConnections = 2));
        var (client1, server1) = await TestUtil.ConnectPairAsync(listener);
        var (client2, server2) = await TestUtil.ConnectPairAsync(listener);
        await using (client1)
        await using (server1)
        await using (client2)
        await using (server2)
        {
            // Both speak: a silent connection would make room for the newcomer instead (see
            // HostileClientTests), so only a table of speaking connections refuses.
            await TestUtil.SendUntilReceivedAsync(client1, server1, [1]);
            await TestUtil.SendUntilReceivedAsync(client2, server2, [2]);
            QuicException e = await Assert.ThrowsAsync<QuicException>(
                () => QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout));
            Assert.Equal(QuicDefaults.ConnectionRefusedError, e.CloseInfo.ErrorCode);
            Assert.False(e.CloseInfo.IsApplicationError);
        }
    }

    [Fact]
    public async Task OpeningAndClosingThousandConnections_DoesNotLeakMemory()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        using var acceptCts = new CancellationTokenSource();
        Task acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    QuicConnection s = await listener.AcceptAsync(acceptCts.Token);
                    _ = s.Closed.ContinueWith(_ => s.DisposeAsync(), TaskScheduler.Default);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        async Task CycleAsync(int count)
        {
            for (int i = 0; i < count; i++)
            {
                QuicConnection c = await QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout);
                c.SendDatagram([1, 2, 3]);
                await c.CloseAsync(0, "done");
                await c.DisposeAsync();
            }

            await TestUtil.WaitUntilAsync(() => listener.GetStatistics().Connections == 0, "server connections to drain", TimeSpan.FromSeconds(30));
        }

        await CycleAsync(300); // warm up pools, JIT, GC heaps and allocator arenas
        long before = SettledMemory();
        await CycleAsync(1000);
        long after = SettledMemory();

        await acceptCts.CancelAsync();
        await acceptLoop;
        long growth = after - before;
        output.WriteLine($"working set before {before / 1024} KiB, after {after / 1024} KiB, growth {growth / 1024} KiB");
        Assert.True(growth < 30L * 1024 * 1024, $"process memory grew by {growth / 1024} KiB over 1,000 connections");
    }

    /// <summary>Waits until the listener has read <paramref name="target"/> packets, or its counter stops moving (the kernel dropped some).</summary>
    private static async Task WaitForListenerAsync(QuicListener listener, long target)
    {
        long last = -1;
        int still = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TestUtil.Timeout)
        {
            long now = listener.GetStatistics().PacketsReceived;
            if (now >= target)
            {
                return;
            }

            still = now == last ? still + 1 : 0;
            if (still > 20)
            {
                return;
            }

            last = now;
            await Task.Delay(1);
        }
    }

    /// <summary>Resident memory after a full GC: native leaks (ngtcp2, GnuTLS, the shim) show up here.</summary>
    private static long SettledMemory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using Process p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64;
    }
}
