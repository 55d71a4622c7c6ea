using System.Diagnostics;
using System.Runtime.CompilerServices;
using Xunit.Abstractions;

namespace Wzp.Protocol.Tests.Fuzzing;

/// <summary>
/// The short run of the coverage-guided managed fuzzing (scripts/fuzz-managed.sh: AFL++ over SharpFuzz-instrumented
/// Wzp.Protocol, 20 s per target) in the suite, so a parser regression is caught by the README's test command.
/// Longer campaigns: <c>scripts/fuzz-managed.sh 1800</c>.
/// </summary>
public sealed class AflFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] Targets = ["media-datagram", "link-datagram", "control-frames", "control-messages", "credentials", "link-negotiation"];

    [Fact]
    public async Task EveryManagedTarget_UnderAfl_FindsNoCrashOrHang()
    {
        var script = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "..", "scripts", "fuzz-managed.sh"));
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("20");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(10));
        var text = await stdout + await stderr;
        output.WriteLine(text);
        Assert.False(process.ExitCode == 3, "afl-fuzz or the build is missing: run scripts/install-deps.sh (Debian 12: apt-get install afl++)\n" + text);
        Assert.True(process.ExitCode == 0, $"scripts/fuzz-managed.sh exited with {process.ExitCode} (a crash or hang, kept in obj/fuzz-managed/findings):\n{text}");
        foreach (var target in Targets) Assert.Contains($"{target} OK", text, StringComparison.Ordinal);
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
