using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Wzp.Quic;

namespace Wzp.Benchmarks;

/// <summary>
/// QUIC DATAGRAM throughput over loopback (Wzp.Quic on ngtcp2) against plain .NET UDP datagrams of
/// the same size and count, sender and receivers in this process, in the same run (issue 3):
/// (a) one connection, 160-byte datagrams back to back, coalesced several per QUIC packet; goal
///     ≥ 150 % of the plain UDP rate;
/// (b) 100 connections, one datagram to each in turn (the gateway's fan-out; nothing to coalesce);
///     goal ≥ 50 % of plain UDP to 100 sockets. Measured twice: sends from the benchmark thread (one
///     system call each), and sends from a datagram handler as the gateway makes them (one uplink
///     datagram forwarded to all 100; the packets leave in sendmmsg batches).
/// Every case keeps at most <see cref="Window"/> datagrams in flight (sent and not yet received) so
/// neither side measures how fast it can overflow a socket buffer. Datagrams/s = 1e9 / Mean (ns);
/// the Ratio column compares each case with its UDP baseline. Memory per idle connection is printed
/// by the fan-out setup.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class QuicDatagramBenchmarks
{
    private const int PayloadSize = 160;
    private const int PerInvoke = 20_000;
    private const int Window = 256;
    private const int Connections = 100;
    private const int Coalesce = 8;

    private readonly byte[] _payload = new byte[PayloadSize * Coalesce];
    private readonly int[] _lengths = Enumerable.Repeat(PayloadSize, Coalesce).ToArray();
    private string _dir = "";
    private QuicListener _listener = null!;
    private QuicConnection _client = null!;
    private readonly List<QuicConnection> _fanOutServer = [];
    private readonly List<QuicConnection> _fanOutClients = [];
    private Socket _udpSender = null!;
    private Socket[] _udpReceivers = [];
    private EndPoint[] _udpTargets = [];
    private CancellationTokenSource _stop = new();
    private long _received;
    private QuicConnection _speaker = null!;

    [GlobalSetup]
    public void Setup()
    {
        Random.Shared.NextBytes(_payload);
        _dir = Path.Combine(Path.GetTempPath(), "wzp-bench-" + Guid.NewGuid().ToString("N"));
        _listener = QuicListener.Start(new QuicListenerOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            CertificatePath = Path.Combine(_dir, "cert.pem"),
            PrivateKeyPath = Path.Combine(_dir, "key.pem"),
            // Receivers here only listen and all come from 127.0.0.1: without these the listener closes them as silent
            // connections after 5 s and refuses more than 128 at once (issue 12's defaults for a public listener).
            SilentConnectionTimeout = TimeSpan.FromMinutes(30),
            MaxSilentConnections = 4096,
            MaxSilentConnectionsPerAddress = 4096,
        });

        // (a): one connection; the server counts what arrives.
        _client = ConnectCounted(serverCounts: true).Client;

        // (b): 100 connections; the clients count what the server fans out to them.
        long before = SettledMemory();
        for (int i = 0; i < Connections; i++)
        {
            var (client, server) = ConnectCounted(serverCounts: false);
            _fanOutClients.Add(client);
            _fanOutServer.Add(server);
        }

        long after = SettledMemory();

        // The speaker of the handler case: its server side forwards every uplink to the 100.
        var (speaker, speakerServer) = ConnectCounted(serverCounts: false);
        _speaker = speaker;
        speaker.SetDatagramHandler(null);
        QuicConnection[] recipients = [.. _fanOutServer];
        speakerServer.SetDatagramHandler((_, datagram) =>
        {
            foreach (QuicConnection to in recipients)
            {
                to.SendDatagram(datagram);
            }
        });
        _fanOutServer.Add(speakerServer);
        _fanOutClients.Add(speaker);
        Console.WriteLine($"// memory per idle connection (client and server side, same process): {(after - before) / Connections} bytes");

        // Plain UDP baselines: one sender, 100 receivers, each receiving on its own loop like the QUIC clients.
        _udpSender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _udpSender.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _udpReceivers = new Socket[Connections];
        _udpTargets = new EndPoint[Connections];
        for (int i = 0; i < Connections; i++)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveBufferSize = 4 << 20 };
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _udpReceivers[i] = s;
            _udpTargets[i] = s.LocalEndPoint!;
            _ = Task.Run(() => UdpReceiveLoopAsync(s));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop.Cancel();
        foreach (Socket s in _udpReceivers)
        {
            s.Dispose();
        }

        _udpSender.Dispose();
        foreach (QuicConnection c in _fanOutClients.Concat(_fanOutServer).Append(_client))
        {
            c.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        _listener.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    [BenchmarkCategory("a: one connection"), Benchmark(Baseline = true, OperationsPerInvoke = PerInvoke, Description = "plain UDP, 1 socket")]
    public void UdpOneSocket()
    {
        long start = Interlocked.Read(ref _received);
        for (int sent = 0; sent < PerInvoke; sent++)
        {
            WaitForWindow(start + sent);
            _udpSender.SendTo(_payload.AsSpan(0, PayloadSize), SocketFlags.None, _udpTargets[0]);
        }

        WaitForAll(start + PerInvoke);
    }

    [BenchmarkCategory("a: one connection"), Benchmark(OperationsPerInvoke = PerInvoke, Description = "QUIC datagrams, coalesced")]
    public void QuicOneConnectionCoalesced()
    {
        long start = Interlocked.Read(ref _received);
        long accepted = 0;
        var spin = new SpinWait();
        while (accepted < PerInvoke)
        {
            WaitForWindow(start + accepted);
            int n = _client.SendDatagrams(_payload, _lengths);
            accepted += n;
            if (n < Coalesce)
            {
                // Congestion window full (the rest were dropped): let ACKs come back.
                spin.SpinOnce();
            }
        }

        WaitForAll(start + accepted);
    }

    [BenchmarkCategory("b: fan-out to 100"), Benchmark(Baseline = true, OperationsPerInvoke = PerInvoke, Description = "plain UDP, 100 sockets")]
    public void UdpFanOut()
    {
        long start = Interlocked.Read(ref _received);
        for (int sent = 0; sent < PerInvoke; sent++)
        {
            WaitForWindow(start + sent);
            _udpSender.SendTo(_payload.AsSpan(0, PayloadSize), SocketFlags.None, _udpTargets[sent % Connections]);
        }

        WaitForAll(start + PerInvoke);
    }

    [BenchmarkCategory("b: fan-out to 100"), Benchmark(OperationsPerInvoke = PerInvoke, Description = "QUIC datagrams, 100 connections")]
    public void QuicFanOut()
    {
        long start = Interlocked.Read(ref _received);
        long accepted = 0;
        for (int next = 0; accepted < PerInvoke; next++)
        {
            WaitForWindow(start + accepted);
            if (_fanOutServer[next % Connections].SendDatagram(_payload.AsSpan(0, PayloadSize)))
            {
                accepted++;
            }
        }

        WaitForAll(start + accepted);
    }

    [BenchmarkCategory("b: fan-out to 100"), Benchmark(OperationsPerInvoke = PerInvoke, Description = "QUIC datagrams, 100 connections, from handler")]
    public void QuicFanOutFromHandler()
    {
        long start = Interlocked.Read(ref _received);
        long uplinks = 0;
        var spin = new SpinWait();
        while (uplinks * Connections < PerInvoke)
        {
            // Each accepted uplink becomes 100 downlinks; the window counts downlinks.
            WaitForWindow(start + (uplinks * Connections));
            if (_speaker.SendDatagram(_payload.AsSpan(0, PayloadSize)))
            {
                uplinks++;
            }
            else
            {
                spin.SpinOnce();
            }
        }

        WaitForAll(start + (uplinks * Connections));
    }

    private (QuicConnection Client, QuicConnection Server) ConnectCounted(bool serverCounts)
    {
        Task<QuicConnection> accept = _listener.AcceptAsync().AsTask();
        QuicConnection client = QuicClient.ConnectAsync(_listener.LocalEndPoint, new QuicClientOptions()).GetAwaiter().GetResult();
        QuicConnection server = accept.GetAwaiter().GetResult();
        (serverCounts ? server : client).SetDatagramHandler((_, _) => Interlocked.Increment(ref _received));
        return (client, server);
    }

    private async Task UdpReceiveLoopAsync(Socket socket)
    {
        byte[] buffer = new byte[2048];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                Interlocked.Increment(ref _received);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Benchmark cleanup.
        }
    }

    private void WaitForWindow(long sentSoFar)
    {
        var spin = new SpinWait();
        while (sentSoFar - Interlocked.Read(ref _received) >= Window)
        {
            spin.SpinOnce();
        }
    }

    /// <summary>Waits for the stragglers; gives up after a quiet second (a datagram lost on loopback).</summary>
    private void WaitForAll(long target)
    {
        var quiet = Stopwatch.StartNew();
        long last = Interlocked.Read(ref _received);
        var spin = new SpinWait();
        while (last < target && quiet.ElapsedMilliseconds < 1000)
        {
            spin.SpinOnce();
            long now = Interlocked.Read(ref _received);
            if (now != last)
            {
                last = now;
                quiet.Restart();
            }
        }
    }

    private static long SettledMemory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using Process p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }
}
