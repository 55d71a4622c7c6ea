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

    private Task<string> BuildHarnessAsync(string name) => NativeHarness.BuildAsync(name, certs, output);

    private Task<string> RunAsync(string file, params string[] args) => NativeHarness.RunAsync(file, output, args);
}
