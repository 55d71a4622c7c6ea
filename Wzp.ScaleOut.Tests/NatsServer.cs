using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Wzp.ScaleOut.Tests;

/// <summary>Debian's nats-server with JetStream, on the repository's scripts/nats-server.conf (port and store overridden).</summary>
public sealed class NatsServer : IDisposable
{
    private readonly ChildProcess _process;

    private NatsServer(ChildProcess process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>The nats-server binary, or null when it is not installed.</summary>
    public static string? Executable { get; } = new[] { "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server" }.FirstOrDefault(File.Exists);

    public static async Task<NatsServer> StartAsync(string directory)
    {
        var port = Ports.FreeTcp();
        var store = Path.Combine(directory, "nats");
        Directory.CreateDirectory(store);
        var process = ChildProcess.Start("nats", Executable ?? throw new InvalidOperationException("nats-server is not installed"),
            ["-c", Path.Combine(Builds.RepositoryRoot, "scripts", "nats-server.conf"), "-a", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-sd", store],
            new Dictionary<string, string>(), directory, directory);
        var nats = new NatsServer(process, port);
        await Eventually.True(nats.GreetsAsync, TimeSpan.FromSeconds(20), "nats-server sends its INFO");
        await Eventually.True(() => process.Output.Contains("Server is ready", StringComparison.Ordinal), TimeSpan.FromSeconds(20), "nats-server is ready");
        return nats;
    }

    private async Task<bool> GreetsAsync()
    {
        if (_process.HasExited) throw new InvalidOperationException("nats-server exited: " + _process.Output);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port);
        var buffer = new byte[4];
        var n = await client.GetStream().ReadAsync(buffer);
        return System.Text.Encoding.ASCII.GetString(buffer, 0, n) == "INFO";
    }

    public void Dispose() => _process.Dispose();
}
