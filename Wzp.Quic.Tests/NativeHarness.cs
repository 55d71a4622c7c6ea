using System.Diagnostics;
using System.Runtime.CompilerServices;
using Xunit;
using Xunit.Abstractions;

namespace Wzp.Quic.Tests;

/// <summary>Builds a C harness of native/tests with the shim under AddressSanitizer and UBSan, and runs it.</summary>
internal static class NativeHarness
{
    public static string NativeDirectory { get; } = Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "Wzp.Quic", "native"));

    public static async Task<string> BuildAndRunAsync(string name, CertificateFixture certs, ITestOutputHelper output)
    {
        string exe = await BuildAsync(name, certs, output);
        return await RunAsync(exe, output, certs.CertificatePath, certs.PrivateKeyPath);
    }

    // Compiles native/tests/NAME.c with the shim, under AddressSanitizer and UBSan.
    public static async Task<string> BuildAsync(string name, CertificateFixture certs, ITestOutputHelper output)
    {
        string exe = Path.Combine(certs.Directory, name);
        await RunAsync(
            "sh",
            output,
            "-c",
            "gcc -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer " +
            $"-I'{NativeDirectory}' -o '{exe}' '{NativeDirectory}/tests/{name}.c' '{NativeDirectory}/wzpquic.c' " +
            "`pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls`");
        return exe;
    }

    public static async Task<string> RunAsync(string file, ITestOutputHelper output, params string[] args)
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
