using Xunit.Abstractions;

namespace Wzp.Protocol.Tests.Fuzzing;

/// <summary>
/// Issue 12's fuzzing of the managed parsers of untrusted bytes. In the normal suite each target runs for a few
/// seconds (about 30 s for all six); a long run sets <c>WZP_FUZZ_INPUTS</c> (e.g. 1000000 per target) or
/// <c>WZP_FUZZ_SECONDS</c>, and <c>WZP_FUZZ_SEED</c> replays a reported failure:
/// <code>WZP_FUZZ_INPUTS=1000000 dotnet test Wzp.Protocol.Tests -c Release --filter FullyQualifiedName~Fuzzing --logger "console;verbosity=detailed"</code>
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan ShortRun = TimeSpan.FromSeconds(5);

    private readonly FuzzMaterial _material = new();

    public void Dispose() => _material.Dispose();

    private void Run(FuzzTarget target)
    {
        var options = FuzzOptions.FromEnvironment(ShortRun);
        var report = new Fuzzer(target, options).Run();
        output.WriteLine($"seed {options.Seed}: {report}");
        Assert.True(report.Executions > target.Seeds().Count(), "the fuzzer ran beyond its seeds");
        (target as IDisposable)?.Dispose();
    }

    [Fact]
    public void MediaDatagrams_ArbitraryAndMutated_AreDroppedWithAReason_NeverThrowOrAllocate() => Run(new MediaDatagramTarget(_material));

    [Fact]
    public void LinkDatagrams_ArbitraryAndMutated_AreDroppedWithAReason_NeverThrowOrAllocate() => Run(new LinkDatagramTarget(_material));

    [Fact]
    public void ControlFrames_InAnySplit_ThrowOnlyControlFrameException() => Run(new ControlFrameTarget(_material));

    [Fact]
    public void EveryControlMessage_DecodesOrFailsWithItsError_AndItsConsumerRefusesRatherThanThrows() => Run(new ControlMessageTarget(_material));

    [Fact]
    public void Credentials_JsonAndCanonicalBytes_ParseOrFailWithFormatException() => Run(new CredentialTarget(_material));

    [Fact]
    public void LinkOffersAndAccepts_ParseToNullOrAreRefused_NeverThrow() => Run(new LinkNegotiationTarget(_material));
}
