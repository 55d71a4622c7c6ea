using System.Diagnostics;
using System.Runtime.CompilerServices;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

/// <summary>
/// Runs the C shim under AddressSanitizer, LeakSanitizer and UBSan through a small C harness
/// (native/tests/sanitizer_harness.c): handshake, lossy stream transfer both ways, datagrams,
/// junk, close and teardown. Managed tests cannot see a use-after-free or a leak inside C; this can.
/// </summary>
[Collection(QuicSocketCollection.Name)]
public sealed class NativeShimTests(CertificateFixture certs, ITestOutputHelper output)
{
    [Fact]
    public async Task Shim_UnderAddressAndUndefinedBehaviourSanitizers_RunsClean()
    {
        string exe = await BuildHarnessAsync("sanitizer_harness");
        string result = await RunAsync(exe, certs.CertificatePath, certs.PrivateKeyPath);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
    }

    /// <summary>
    /// A minute of a call over a path that loses, duplicates and reorders 30 % of the packets each way
    /// (native/tests/impaired_path_harness.c, six seeds, simulated clock): the connection stays up, every
    /// control message arrives and datagrams still flow at the end. Before the shim kept the congestion
    /// window's last packet for stream data, four of the six seeds wedged and idled out.
    /// </summary>
    [Fact]
    public async Task ImpairedPath_ConnectionNeverWedges_ControlArrives_MediaKeepsFlowing()
    {
        string exe = await BuildHarnessAsync("impaired_path_harness");
        string result = await RunAsync(exe, certs.CertificatePath, certs.PrivateKeyPath);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
    }

    // Compiles native/tests/NAME.c with the shim, under AddressSanitizer and UBSan.
    private async Task<string> BuildHarnessAsync(string name)
    {
        string native = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "Wzp.Quic", "native"));
        string exe = Path.Combine(certs.Directory, name);
        await RunAsync(
            "sh",
            "-c",
            "gcc -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer " +
            $"-I'{native}' -o '{exe}' '{native}/tests/{name}.c' '{native}/wzpquic.c' " +
            "`pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls`");
        return exe;
    }

    private async Task<string> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0";
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        string text = await stdout + await stderr;
        output.WriteLine(text);
        Assert.True(p.ExitCode == 0, $"{file} exited with {p.ExitCode}:\n{text}");
        return text;
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
