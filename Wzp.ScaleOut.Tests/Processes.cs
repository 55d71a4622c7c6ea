using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

// Every test here starts processes that bind ports and compete for two cores: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Wzp.ScaleOut.Tests;

/// <summary>Where the silo and gateway executables of this build are.</summary>
public static class Builds
{
    /// <summary>The repository root (the folder holding Wzp.sln).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>Debug or Release: the configuration this test assembly was built in, so the hosts match it.</summary>
    public static string Configuration { get; } =
        typeof(Builds).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyConfigurationAttribute), false)
            .OfType<System.Reflection.AssemblyConfigurationAttribute>().Single().Configuration;

    public static string SiloDll => Output("Wzp.Silo");

    public static string GatewayDll => Output("Wzp.Gateway");

    private static string Output(string project)
    {
        var path = Path.Combine(RepositoryRoot, project, "bin", Configuration, "net10.0", project + ".dll");
        if (!File.Exists(path)) throw new FileNotFoundException($"{project} is not built at {path} (the test project references it; build it)");
        return path;
    }

    private static string FindRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Wzp.sln"))) return folder.FullName;
        }
        throw new InvalidOperationException("Wzp.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// Free loopback ports: bound to 0, then released, and never handed out twice in one test run (the processes
/// bind them a little later, so two requests must not get the same one).
/// </summary>
public static class Ports
{
    private static readonly HashSet<int> Given = [];

    public static int FreeTcp() => Unique(() =>
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    });

    public static int FreeUdp() => Unique(() =>
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    });

    private static int Unique(Func<int> next)
    {
        lock (Given)
        {
            while (true)
            {
                var port = next();
                if (Given.Add(port)) return port;
            }
        }
    }
}

/// <summary>
/// A child process with its output kept for diagnostics. Stopped by its id (the process and its children),
/// never by name.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _logFile;

    private ChildProcess(string name, Process process, string logFile)
    {
        Name = name;
        _process = process;
        _logFile = logFile;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote so far (standard output and error, interleaved as received).</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts <paramref name="fileName"/> with the given environment added to this one's.</summary>
    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment,
        string workingDirectory, string logDirectory)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(name, process, Path.Combine(logDirectory, name + ".log"));
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        if (!process.Start()) throw new InvalidOperationException($"{name} did not start");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Runs a host built in this repository (<c>dotnet Wzp.X.dll</c>) with settings as environment variables.</summary>
    public static ChildProcess StartDotnet(string name, string dll, IReadOnlyDictionary<string, string> environment, string workingDirectory, string logDirectory) =>
        Start(name, "dotnet", [dll], environment, workingDirectory, logDirectory);

    private void Append(string? line)
    {
        if (line is null) return;
        _output.Enqueue(line);
        try
        {
            File.AppendAllText(_logFile, line + "\n");
        }
        catch (IOException)
        {
            // The log file is a convenience; the in-memory copy is what failures print.
        }
    }

    /// <summary>Waits for the process to exit on its own.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGKILL to the process and its children, by id; returns once it is gone.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
    }

    /// <summary>SIGTERM: the process shuts down gracefully (Ctrl+C, a service manager's stop).</summary>
    public void Terminate() => Signal(15);

    /// <summary>SIGSTOP: the process hangs with every socket open (what a stuck machine or a long GC pause looks
    /// like to its peers), until <see cref="Resume"/>.</summary>
    public void Pause() => Signal(19);

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal(18);

    private void Signal(int signal)
    {
        if (!_process.HasExited && Native.kill(_process.Id, signal) != 0)
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed with errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        public static extern int kill(int pid, int sig);
    }

    public void Dispose()
    {
        Resume();
        Kill();
        _process.Dispose();
    }
}

/// <summary>A private redis-server on a free port, no persistence.</summary>
public sealed class RedisServer : IDisposable
{
    private readonly ChildProcess _process;

    private RedisServer(ChildProcess process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>The redis-server binary, or null when it is not installed.</summary>
    public static string? Executable { get; } = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);

    public static async Task<RedisServer> StartAsync(string directory)
    {
        var port = Ports.FreeTcp();
        var process = ChildProcess.Start("redis", Executable ?? throw new InvalidOperationException("redis-server is not installed"),
            ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
            new Dictionary<string, string>(), directory, directory);
        var redis = new RedisServer(process, port);
        await Eventually.True(redis.PingAsync, TimeSpan.FromSeconds(20), "redis-server answers PING");
        return redis;
    }

    private async Task<bool> PingAsync()
    {
        if (_process.HasExited) throw new InvalidOperationException("redis-server exited: " + _process.Output);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray());
        var buffer = new byte[16];
        var n = await stream.ReadAsync(buffer);
        return System.Text.Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
    }

    public void Dispose() => _process.Dispose();
}

/// <summary>
/// <see cref="Wzp.Cluster.Tests.Eventually"/> for processes: polled every 100 ms, and a process that exited fails
/// the wait at once instead of at the deadline.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    public static Task True(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        Cluster.Tests.Eventually.Poll(condition, timeout, what, PollInterval, ProcessExited);

    public static Task True(Func<bool> condition, TimeSpan timeout, string what) =>
        True(() => Task.FromResult(condition()), timeout, what);

    private static bool ProcessExited(Exception exception) =>
        exception is InvalidOperationException { Message: var message } && message.Contains("exited", StringComparison.Ordinal);
}
