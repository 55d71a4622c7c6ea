using System.Diagnostics;
using System.Runtime.CompilerServices;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

/// <summary>
/// The short run of every libFuzzer target (scripts/fuzz.sh, 30 s each) as part of the test suite, so
/// that a regression in the shim's packet input is caught by the README's test command. Longer
/// campaigns: <c>scripts/fuzz.sh 1800</c>, or with <c>-runs=N</c> after the seconds.
/// </summary>
[Collection(QuicSocketCollection.Name)]
public sealed class FuzzTests(ITestOutputHelper output)
{
    [Fact]
    public async Task LibFuzzerTargets_ShortRun_FindNoCrashLeakOrHang()
    {
        string script = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "scripts", "fuzz.sh"));
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("30");
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        string text = await stdout + await stderr;
        output.WriteLine(text);
        Assert.False(
            p.ExitCode == 3,
            "clang with libFuzzer is not installed; install it with `sudo scripts/install-deps.sh` " +
            "(Debian 12: apt-get install clang libclang-rt-14-dev).\n" + text);
        Assert.True(p.ExitCode == 0, $"scripts/fuzz.sh exited with {p.ExitCode} (a crash, leak or hang; the input is kept under Wzp.Quic/obj/fuzz):\n{text}");
        Assert.Contains("fuzz_packet_input OK", text, StringComparison.Ordinal);
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
