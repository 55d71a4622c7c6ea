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
        string native = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "Wzp.Quic", "native"));
        string exe = Path.Combine(certs.Directory, "sanitizer_harness");
        await RunAsync(
            "sh",
            "-c",
            "gcc -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer " +
            $"-I'{native}' -o '{exe}' '{native}/tests/sanitizer_harness.c' '{native}/wzpquic.c' " +
            "`pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls`");

        string result = await RunAsync(exe, certs.CertificatePath, certs.PrivateKeyPath);
        Assert.Contains("HARNESS OK", result, StringComparison.Ordinal);
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
