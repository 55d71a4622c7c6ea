using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Wzp.Mls.Codec;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Interop;

/// <summary>
/// ts-mls (an independent RFC 9420 implementation in TypeScript, npm package pinned in Interop/package-lock.json)
/// as a peer process: <c>node Interop/peer.mjs</c>, one JSON request a line on stdin, one reply a line on stdout,
/// binary values as hex. The peer holds any number of named members. Node comes from <c>WZP_NODE</c> or PATH;
/// its packages from <c>npm ci</c> (scripts/install-deps.sh runs it, and so does the first test if they are missing).
/// Without node or npm the tests fail saying so: an interop suite that skips silently proves nothing.
/// </summary>
internal sealed class TsMlsPeer : IDisposable
{
    // Not a timing assertion: only a bound on a hung peer process, so a broken peer fails the test instead of the run.
    private static readonly TimeSpan ReplyDeadline = TimeSpan.FromMinutes(2);
    private static readonly Lock InstallLock = new();

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private TsMlsPeer(Process process)
    {
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr) _stderr.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
    }

    public static string Directory { get; } = FindDirectory();

    public static TsMlsPeer Start()
    {
        EnsurePackages();
        var start = new ProcessStartInfo(NodeExecutable, "peer.mjs")
        {
            WorkingDirectory = Directory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        return new TsMlsPeer(Process.Start(start) ?? throw new InvalidOperationException("node did not start"));
    }

    private static string NodeExecutable => Environment.GetEnvironmentVariable("WZP_NODE") is { Length: > 0 } node ? node : "node";

    /// <summary>Sends one request and returns the reply; a refusal by ts-mls fails with its error text.</summary>
    public JsonObject Call(string op, JsonObject? request = null)
    {
        var reply = TryCall(op, request);
        if (reply["ok"]!.GetValue<bool>()) return reply;
        throw new InvalidOperationException($"ts-mls refused {op}: {reply["error"]}");
    }

    /// <summary>Sends one request and returns the reply as it is (<c>ok</c> false on a refusal).</summary>
    public JsonObject TryCall(string op, JsonObject? request = null)
    {
        request ??= [];
        request["op"] = op;
        _process.StandardInput.WriteLine(request.ToJsonString());
        _process.StandardInput.Flush();
        using var deadline = new CancellationTokenSource(ReplyDeadline);
        string? line;
        try
        {
            line = _process.StandardOutput.ReadLineAsync(deadline.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            throw new InvalidOperationException($"ts-mls peer gave no reply to {op} within {ReplyDeadline}. stderr:\n{StandardError}");
        }
        if (line is null) throw new InvalidOperationException($"ts-mls peer exited during {op}. stderr:\n{StandardError}");
        return JsonNode.Parse(line)!.AsObject();
    }

    private string StandardError
    {
        get
        {
            lock (_stderr) return _stderr.ToString();
        }
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(10))) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }

    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    public static string Hex(ITlsEncodable value) => Hex(Tls.Encode(value));

    public static byte[] Bytes(JsonNode? node) => Convert.FromHexString(node?.GetValue<string>() ?? throw new InvalidOperationException("missing value"));

    public static MlsMessage Message(JsonNode? node) => Tls.Decode<MlsMessage>(Bytes(node));

    private static string FindDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "Wzp.Mls.Tests", "Interop");
            if (File.Exists(Path.Combine(candidate, "peer.mjs"))) return candidate;
        }
        throw new InvalidOperationException($"Wzp.Mls.Tests/Interop/peer.mjs not found above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs <c>npm ci</c> once if ts-mls is not installed yet; fails with what to do if node or npm is missing.</summary>
    private static void EnsurePackages()
    {
        lock (InstallLock)
        {
            var version = Run(NodeExecutable, "--version", out var nodeOutput);
            if (version != 0)
                throw new InvalidOperationException(
                    $"Node.js 18 or later is required for the ts-mls interop tests and '{NodeExecutable}' could not be run ({nodeOutput.Trim()}). " +
                    "Run scripts/install-deps.sh (it installs Debian's nodejs and npm) or set WZP_NODE to a node executable.");
            if (!Version.TryParse(nodeOutput.Trim().TrimStart('v'), out var found) || found.Major < 18)
                throw new InvalidOperationException(
                    $"Node.js 18 or later is required for the ts-mls interop tests; '{NodeExecutable}' is {nodeOutput.Trim()}. " +
                    "Run scripts/install-deps.sh or set WZP_NODE to a newer node executable.");
            if (File.Exists(Path.Combine(Directory, "node_modules", "ts-mls", "package.json"))) return;
            var npm = Run("npm", "ci --no-audit --no-fund", out var npmOutput);
            if (npm != 0)
                throw new InvalidOperationException(
                    $"'npm ci' in {Directory} failed (exit {npm}); the interop tests need ts-mls from the npm registry. Output:\n{npmOutput}");
        }
    }

    private static int Run(string file, string arguments, out string output)
    {
        var start = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            output = stdout + stderr.GetAwaiter().GetResult();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output = e.Message;
            return -1;
        }
    }
}
