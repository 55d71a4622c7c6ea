using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Wzp.Quic.Native;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

/// <summary>
/// Clients that lie, flood and stay silent on purpose (issue 12, defects 3, 4 and 8): none of them may
/// keep an honest newcomer out or take the endpoint down. Spoofed sources are sockets bound to other
/// 127.0.0.x addresses (all of 127/8 is local on Linux) that never answer.
/// </summary>
[Collection(QuicSocketCollection.Name)]
public sealed class HostileClientTests(CertificateFixture certs, ITestOutputHelper output)
{
    private static readonly TimeSpan NewcomerDeadline = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Defect 3. Initials from 32 spoofed addresses hold more half-open handshakes than the Retry
    /// threshold, so the newcomer needs a Retry; meanwhile short-header junk (each packet asks for a
    /// stateless reset) and Initials with fresh random CIDs (each asks for a Retry) keep coming. When
    /// resets and Retry shared one budget, the junk emptied it and the newcomer never got its Retry.
    /// </summary>
    [Fact]
    public async Task SpoofedInitialsAndShortHeaderFlood_NewClientConnectsWithinTwoSeconds()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.AddressValidationThreshold = 16));
        List<Socket> spoofed = BindLoopbackSockets(32);
        try
        {
            // Genuine Initials (each with its own CID) replayed from addresses that never answer.
            var initials = new List<byte[]>();
            for (int i = 0; i < 48; i++)
            {
                initials.Add(await TestUtil.CaptureClientInitialAsync());
            }

            for (int i = 0; i < initials.Count; i++)
            {
                spoofed[i % spoofed.Count].SendTo(initials[i], listener.LocalEndPoint);
            }

            await TestUtil.WaitUntilAsync(() => listener.GetStatistics().HandshakesInProgress >= 16, "the spoofed handshakes to pass the Retry threshold");

            using var stop = new CancellationTokenSource();
            long junkSent = 0;
            long initialsSent = 0;
            Task flood = Task.Factory.StartNew(
                () => Flood(listener.LocalEndPoint, spoofed, initials[0], stop.Token, ref junkSent, ref initialsSent),
                TaskCreationOptions.LongRunning);
            try
            {
                // Let the flood drain every budget it can reach before the newcomer arrives.
                await TestUtil.WaitUntilAsync(() => listener.GetStatistics().StatelessResetsSent >= 200, "the junk to be answered");
                await TestUtil.WaitUntilAsync(() => Interlocked.Read(ref junkSent) >= 20_000, "the junk flood to build up");

                // Several newcomers one after the other: with a shared budget one of them could slip
                // through while the flood thread was descheduled; every one must get in.
                for (int n = 0; n < 5; n++)
                {
                    long retriesBefore = listener.GetStatistics().RetriesSent;
                    var sw = Stopwatch.StartNew();
                    QuicConnection client = await QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions())
                        .WaitAsync(NewcomerDeadline);
                    sw.Stop();
                    await using (client)
                    {
                        QuicListenerStatistics stats = listener.GetStatistics();
                        output.WriteLine($"newcomer {n} connected in {sw.ElapsedMilliseconds} ms under {Interlocked.Read(ref junkSent)} junk and {Interlocked.Read(ref initialsSent)} spoofed Initials: {stats}");
                        Assert.True(stats.RetriesSent > retriesBefore, "the newcomer should have been asked to validate its address");
                        Assert.True(stats.HandshakesInProgress >= 16, "the spoofed handshakes should still be held");
                    }
                }
            }
            finally
            {
                await stop.CancelAsync();
                await flood;
            }
        }
        finally
        {
            spoofed.ForEach(s => s.Dispose());
        }
    }

    /// <summary>
    /// Defect 3 again, on a simulated clock (native/tests/retry_budget_harness.c): a steady flood,
    /// without the pauses a descheduled test thread leaves for a budget to refill, so that the old
    /// shared budget fails every time rather than most times, as it does in the socket test above.
    /// </summary>
    [Fact]
    public async Task ShimUnderSanitizers_SteadySpoofedFlood_EveryNewcomerGetsItsRetry()
    {
        string result = await NativeHarness.BuildAndRunAsync("retry_budget_harness", certs, output);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
    }

    /// <summary>
    /// Defect 4. The slots (512 in all, 16 per address) scaled down to 128 and 4: 32 addresses
    /// fill the table with connections that complete the handshake and never say a word. A newcomer
    /// still gets in, long before the silent connections' deadline: the oldest silent one makes room.
    /// </summary>
    [Fact]
    public async Task SilentConnectionsFrom32Addresses_DoNotKeepNewClientsOut()
    {
        const int Addresses = 32;
        const int PerAddress = 4;
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o =>
        {
            o.MaxConnections = Addresses * PerAddress;
            o.MaxConnectionsPerAddress = PerAddress;
        }));
        var silent = new List<QuicConnection>();
        try
        {
            for (int a = 0; a < Addresses; a++)
            {
                var from = new IPEndPoint(new IPAddress([127, 0, 1, (byte)(a + 1)]), 0);
                silent.AddRange(await Task.WhenAll(Enumerable.Range(0, PerAddress).Select(
                    _ => QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions { LocalEndPoint = from }).WaitAsync(TestUtil.Timeout))));
            }

            Assert.Equal(Addresses * PerAddress, listener.GetStatistics().Connections);

            var sw = Stopwatch.StartNew();
            QuicConnection newcomer = await QuicClient.ConnectAsync(listener.LocalEndPoint, new QuicClientOptions()).WaitAsync(NewcomerDeadline);
            await using (newcomer)
            {
                output.WriteLine($"newcomer connected in {sw.ElapsedMilliseconds} ms: {listener.GetStatistics()}");
                QuicListenerStatistics stats = listener.GetStatistics();
                Assert.Equal(1L, stats.SilentConnectionsClosed);
                await TestUtil.WaitUntilAsync(() => silent.Any(c => c.IsClosed), "the evicted client to hear of it");
                QuicConnection evicted = Assert.Single(silent, c => c.IsClosed);
                QuicCloseInfo info = await evicted.Closed.WaitAsync(TestUtil.Timeout);
                Assert.Equal(QuicDefaults.SilentConnectionError, info.ErrorCode);
            }
        }
        finally
        {
            foreach (QuicConnection c in silent)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task SilentConnection_IsClosedAtItsDeadline_ASpeakingOneStays()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o => o.SilentConnectionTimeout = TimeSpan.FromMilliseconds(500)));
        var (quiet, quietServer) = await TestUtil.ConnectPairAsync(listener);
        var (talker, talkerServer) = await TestUtil.ConnectPairAsync(listener);
        await using (quiet)
        await using (quietServer)
        await using (talker)
        await using (talkerServer)
        {
            await TestUtil.SendUntilReceivedAsync(talker, talkerServer, [1]);
            QuicCloseInfo info = await quiet.Closed.WaitAsync(TestUtil.Timeout);
            Assert.Equal(QuicDefaults.SilentConnectionError, info.ErrorCode);
            Assert.True(info.IsApplicationError);
            Assert.True((await quietServer.Closed.WaitAsync(TestUtil.Timeout)).IsLocal);

            // Well past the deadline, the connection that spoke still works both ways.
            await Task.Delay(TimeSpan.FromMilliseconds(700));
            Assert.False(talker.IsClosed);
            Assert.Equal([2], await TestUtil.SendUntilReceivedAsync(talker, talkerServer, [2]));
            Assert.Equal([3], await TestUtil.SendUntilReceivedAsync(talkerServer, talker, [3]));
            Assert.Equal(1L, listener.GetStatistics().SilentConnectionsClosed);
        }
    }

    /// <summary>
    /// Defect 4: per-address limits count all of an IPv6 /64 as one address. The machine has only ::1,
    /// so the rule is checked on the shim's own bucketing function (the limits use nothing else);
    /// native/tests/ipv6_prefix_harness.c drives whole handshakes from one /64.
    /// </summary>
    [Theory]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true)]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2:a:b:c:d", true)]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:3::1", false)]
    [InlineData("127.0.0.1", "::ffff:127.0.0.1", true)]
    [InlineData("127.0.0.1", "127.0.0.2", false)]
    [InlineData("::1", "::2", true)]
    [InlineData("fe80::1", "fe81::1", false)]
    public void AddressBucket_IPv6CountsPerSlash64_IPv4PerAddress(string a, string b, bool same)
    {
        byte[] ka = Bucket(IPAddress.Parse(a));
        byte[] kb = Bucket(IPAddress.Parse(b));
        Assert.NotEmpty(ka);
        Assert.Equal(same, ka.AsSpan().SequenceEqual(kb));
    }

    [Fact]
    public async Task ShimUnderSanitizers_SilentConnectionsFromOneIPv6Slash64_DoNotKeepNewClientsOut()
    {
        string result = await NativeHarness.BuildAndRunAsync("ipv6_prefix_harness", certs, output);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
    }

    /// <summary>
    /// Defect 8: an exception while an event other than a datagram is delivered (here the listener's
    /// accept callback) used to escape DrainEvents and end the receive loop: the endpoint went deaf.
    /// </summary>
    [Fact]
    public async Task ThrowingAcceptCallback_ClosesOnlyThatConnection_EndpointKeepsServing()
    {
        QuicEndpoint? endpoint = null;
        int accepted = 0;
        QuicConnection? second = null;
        QuicListenerOptions options = certs.ListenerOptions();
        endpoint = QuicEndpoint.Create(
            options,
            options.EndPoint,
            isServer: true,
            id =>
            {
                if (Interlocked.Increment(ref accepted) == 1)
                {
                    throw new InvalidOperationException("bug in the accept callback");
                }

                return second = new QuicConnection(endpoint!, id, isServer: true, ownsEndpoint: false, 16);
            },
            certificatePath: certs.CertificatePath,
            privateKeyPath: certs.PrivateKeyPath);
        await using (endpoint)
        {
            endpoint.Start();
            QuicConnection first = await QuicClient.ConnectAsync(endpoint.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout);
            await using (first)
            {
                QuicCloseInfo info = await first.Closed.WaitAsync(TestUtil.Timeout);
                Assert.Equal(QuicDefaults.HandlerFailedError, info.ErrorCode);
                Assert.Contains("connected handler failed", info.Reason, StringComparison.Ordinal);
            }

            QuicConnection client = await QuicClient.ConnectAsync(endpoint.LocalEndPoint, new QuicClientOptions()).WaitAsync(TestUtil.Timeout);
            await using (client)
            {
                await TestUtil.WaitUntilAsync(() => Volatile.Read(ref second) is not null, "the second connection to be accepted");
                Assert.Equal([7], await TestUtil.SendUntilReceivedAsync(client, second!, [7]));
                Assert.Equal([8], await TestUtil.SendUntilReceivedAsync(second!, client, [8]));
                Assert.Equal(1L, endpoint.GetStatistics().HandlerFailures);
            }
        }
    }

    /// <summary>Defect 8: send_ready with a socket that refuses packets (native/tests/send_blocked_harness.c).</summary>
    [Fact]
    public async Task ShimUnderSanitizers_FullSocketBuffer_StopsAtOnceAndLosesNoPacket()
    {
        string result = await NativeHarness.BuildAndRunAsync("send_blocked_harness", certs, output);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
    }

    /// <summary>
    /// Defect 8, the managed half: when the socket's send buffer is full (simulated: loopback never
    /// fills), the packets already queued wait for it, are sent once it is writable, and none is lost;
    /// datagrams beyond the queue are dropped and counted instead of spinning.
    /// </summary>
    [Fact]
    public async Task FullSocketBuffer_QueuedPacketsWaitForIt_NoneIsLost()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            await TestUtil.SendUntilReceivedAsync(client, server, [0xff]);
            int received = 0;
            server.SetDatagramHandler((_, d) =>
            {
                if (d.Length == 100)
                {
                    Interlocked.Increment(ref received);
                }
            });

            QuicListenerStatistics before = client.Endpoint.GetStatistics();
            client.Endpoint.SimulateFullSocket(3);
            int accepted = 0;
            byte[] payload = new byte[100];
            for (int i = 0; i < 40; i++)
            {
                payload[0] = (byte)i;
                if (client.SendDatagram(payload))
                {
                    accepted++;
                }
            }

            byte[] frame = new byte[50_000];
            Random.Shared.NextBytes(frame);
            await TestUtil.WriteFrameAsync(client, frame);
            Assert.Equal(frame, await TestUtil.ReadFrameAsync(server));

            await TestUtil.WaitUntilAsync(() => Volatile.Read(ref received) == accepted, $"all {accepted} queued datagrams to arrive");
            QuicListenerStatistics after = client.Endpoint.GetStatistics();
            output.WriteLine($"accepted {accepted} of 40 while blocked; {after}");
            Assert.Equal(3L, after.SendsBlocked - before.SendsBlocked);
            Assert.Equal(before.PacketsDropped, after.PacketsDropped);
            Assert.InRange(accepted, 1, 39);
            Assert.True(client.GetStatistics().DatagramsDropped >= 40 - accepted);
        }
    }

    /// <summary>
    /// Found by fuzz/fuzz_packet_input.c: ngtcp2 0.12 asserts on an empty DATAGRAM frame, and Debian
    /// builds it with assertions, so one empty datagram aborted the whole process (every connection
    /// of a gateway with it). Now it is dropped and counted; the connection carries on.
    /// </summary>
    [Fact]
    public async Task EmptyDatagram_IsDroppedAndCounted_ProcessAndConnectionLive()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions());
        var (client, server) = await TestUtil.ConnectPairAsync(listener);
        await using (client)
        await using (server)
        {
            Assert.False(client.SendDatagram(ReadOnlySpan<byte>.Empty));
            Assert.False(server.SendDatagram([]));
            // The one non-empty datagram carries what the last exchange below expects, so that its
            // arrival ahead of the resends cannot confuse the check.
            Assert.Equal(1, server.SendDatagrams(new byte[] { 5 }, [0, 1, 0]));
            Assert.True(client.GetStatistics().DatagramsDropped >= 1);
            Assert.Equal([4], await TestUtil.SendUntilReceivedAsync(client, server, [4]));
            Assert.Equal([5], await TestUtil.SendUntilReceivedAsync(server, client, [5]));
        }
    }

    private static unsafe byte[] Bucket(IPAddress address)
    {
        SocketAddress sa = new IPEndPoint(address, 4433).Serialize();
        byte* key = stackalloc byte[32];
        uint n;
        fixed (byte* p = sa.Buffer.Span)
        {
            n = NativeMethods.wzp_address_bucket(p, (uint)sa.Size, key, 32);
        }

        return new ReadOnlySpan<byte>(key, (int)n).ToArray();
    }

    private static List<Socket> BindLoopbackSockets(int count)
    {
        var sockets = new List<Socket>();
        for (int i = 0; i < count; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(new IPAddress([127, 0, 2, (byte)(i + 1)]), 0));
            sockets.Add(s);
        }

        return sockets;
    }

    // About 40,000 short-header junk packets a second (each asks for a stateless reset: twenty times
    // the reset budget) and 4,000 Initials with fresh random CIDs (header-valid, so each asks for a
    // Retry) from the spoofed addresses. Spread evenly, as a real flood is: bursts would leave the
    // budget gaps in which to refill. And paced so that the listener keeps up: a kernel that drops
    // the newcomer's Initial for a full socket buffer would test the kernel, not the budgets.
    private static void Flood(IPEndPoint target, List<Socket> spoofed, byte[] initialTemplate, CancellationToken stop, ref long junkSent, ref long initialsSent)
    {
        using var junk = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        junk.Bind(new IPEndPoint(new IPAddress([127, 0, 3, 1]), 0));
        var random = new Random(12);
        byte[] packet = new byte[100];
        byte[] initial = (byte[])initialTemplate.Clone();
        int dcidLength = initial[5];
        long tick = Stopwatch.Frequency / 40_000;
        long next = Stopwatch.GetTimestamp();
        for (long i = 0; !stop.IsCancellationRequested; i++)
        {
            while (Stopwatch.GetTimestamp() < next)
            {
                Thread.SpinWait(10);
            }

            next += tick;
            random.NextBytes(packet);
            packet[0] = (byte)(0x40 | (packet[0] & 0x3f));
            junk.SendTo(packet, target);
            Interlocked.Increment(ref junkSent);
            if (i % 10 == 9)
            {
                random.NextBytes(initial.AsSpan(6, dcidLength));
                spoofed[(int)(i / 10 % spoofed.Count)].SendTo(initial, target);
                Interlocked.Increment(ref initialsSent);
            }
        }
    }
}
