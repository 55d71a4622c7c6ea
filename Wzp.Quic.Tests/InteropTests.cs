using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

/// <summary>
/// Handshakes with independent peers: Debian's ngtcp2 example programs (packages ngtcp2-client and
/// ngtcp2-server). They speak only ALPN h3 and no DATAGRAM, so the check stops at the handshake.
/// </summary>
[Collection(QuicSocketCollection.Name)]
public sealed class InteropTests(CertificateFixture certs, ITestOutputHelper output)
{
    private readonly Dictionary<Process, System.Collections.Concurrent.ConcurrentQueue<string>> _logs = [];

    [Fact]
    public async Task Gtlsclient_CompletesHandshake_AgainstOurServerOfferingH3()
    {
        await using QuicListener listener = QuicListener.Start(certs.ListenerOptions(o =>
        {
            o.Alpn = "h3";
            o.PeerUnidirectionalStreams = 3;
        }));
        Task<QuicConnection> accept = listener.AcceptAsync().AsTask();
        using Process client = StartTool(
            "gtlsclient",
            "--timeout=5s", "--exit-on-all-streams-close",
            "127.0.0.1", listener.LocalEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            await using QuicConnection server = await accept.WaitAsync(TestUtil.Timeout);
            Assert.Equal("h3", server.NegotiatedAlpn);
            Assert.Equal(IPAddress.Loopback, server.RemoteEndPoint.Address);
        }
        finally
        {
            Stop(client);
        }
    }

    [Fact]
    public async Task OurClient_CompletesHandshake_AgainstGtlsserver()
    {
        int port = FreeUdpPort();
        using Process server = StartTool(
            "gtlsserver",
            "127.0.0.1", port.ToString(System.Globalization.CultureInfo.InvariantCulture), certs.PrivateKeyPath, certs.CertificatePath);
        try
        {
            // The server needs a moment to bind; retry short handshakes until one succeeds.
            var options = new QuicClientOptions { Alpn = "h3", HandshakeTimeout = TimeSpan.FromSeconds(1), PeerUnidirectionalStreams = 3 };
            var sw = Stopwatch.StartNew();
            QuicConnection? connection = null;
            while (connection is null)
            {
                try
                {
                    connection = await QuicClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), options).WaitAsync(TestUtil.Timeout);
                }
                catch (QuicException e) when (e.CloseInfo.IsHandshakeTimeout && sw.Elapsed < TestUtil.Timeout && !server.HasExited)
                {
                    output.WriteLine("retrying: " + e.Message);
                }
            }

            await using (connection)
            {
                Assert.Equal("h3", connection.NegotiatedAlpn);
            }
        }
        finally
        {
            Stop(server);
        }
    }

    private Process StartTool(string name, params string[] args)
    {
        var psi = new ProcessStartInfo(name)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException(name + " did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{name} is missing: install the Debian packages ngtcp2-client and ngtcp2-server (scripts/install-deps.sh)", e);
        }

        // Keep the tools' chatter (the tail is printed on failure) and never let a full pipe block them.
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _logs[p] = log;
        p.OutputDataReceived += (_, e) => Keep(log, e.Data);
        p.ErrorDataReceived += (_, e) => Keep(log, e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private void Stop(Process p)
    {
        if (!p.HasExited)
        {
            p.Kill();
        }

        p.WaitForExit();
        output.WriteLine($"{p.StartInfo.FileName} exit code {p.ExitCode}");
        if (_logs.TryGetValue(p, out var log))
        {
            foreach (string line in log)
            {
                output.WriteLine(line);
            }
        }
    }

    private static void Keep(System.Collections.Concurrent.ConcurrentQueue<string> log, string? line)
    {
        if (line is null)
        {
            return;
        }

        log.Enqueue(line);
        while (log.Count > 200)
        {
            log.TryDequeue(out _);
        }
    }

    private static int FreeUdpPort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
