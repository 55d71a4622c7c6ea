namespace Wzp.Protocol.Tests.Fuzzing;

/// <summary>
/// The entry point of this assembly when it runs as a program (the test runner never calls it): the fuzz targets
/// under AFL++, coverage-guided through SharpFuzz's instrumentation of Wzp.Protocol.dll (scripts/fuzz-managed.sh
/// instruments a copy of this output folder and drives afl-fuzz).
/// <code>
/// dotnet Wzp.Protocol.Tests.dll fuzz-seeds TARGET DIR   writes the target's seeds, one file each
/// dotnet Wzp.Protocol.Tests.dll fuzz TARGET             runs TARGET under afl-fuzz (inputs on stdin)
/// </code>
/// </summary>
public static class AflMain
{
    public static int Main(string[] args)
    {
        if (args.Length < 2 || args[0] is not ("fuzz" or "fuzz-seeds") || (args[0] == "fuzz-seeds" && args.Length < 3))
        {
            Console.Error.WriteLine("usage: Wzp.Protocol.Tests fuzz TARGET | fuzz-seeds TARGET DIR");
            Console.Error.WriteLine($"targets: {string.Join(", ", Names)}");
            return 2;
        }
        // In the instrumented copy every branch of Wzp.Protocol writes to SharpFuzz's coverage map, which
        // Fuzzer.Run points at afl-fuzz's shared memory only when it starts: building the material runs
        // instrumented code first, so it writes into a scratch map of the same size meanwhile.
        unsafe
        {
            if (SharpFuzz.Common.Trace.SharedMem == null) SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(MapSize);
        }
        using var material = new FuzzMaterial();
        var target = Create(args[1], material);
        if (target is null)
        {
            Console.Error.WriteLine($"no target '{args[1]}'; targets: {string.Join(", ", Names)}");
            return 2;
        }
        if (args[0] == "fuzz-seeds")
        {
            Directory.CreateDirectory(args[2]);
            var i = 0;
            foreach (var seed in target.Seeds().Where(s => s.Length <= target.MaxInputLength))
                File.WriteAllBytes(Path.Combine(args[2], $"seed-{i++:D3}"), seed);
            Console.WriteLine($"{target.Name}: {i} seeds in {args[2]}");
            return 0;
        }
        var buffer = new byte[target.MaxInputLength];
        // An exception escaping the action is a crash to afl-fuzz: the targets catch their parsers' documented
        // errors themselves and throw only on a finding.
        SharpFuzz.Fuzzer.Run(stream =>
        {
            var length = 0;
            int n;
            while (length < buffer.Length && (n = stream.Read(buffer, length, buffer.Length - length)) > 0) length += n;
            target.Run(buffer.AsSpan(0, length));
        });
        (target as IDisposable)?.Dispose();
        return 0;
    }

    /// <summary>AFL's coverage map size, which SharpFuzz's instrumentation indexes into.</summary>
    private const int MapSize = 1 << 16;

    private static readonly string[] Names = ["media-datagram", "link-datagram", "control-frames", "control-messages", "credentials", "link-negotiation"];

    private static FuzzTarget? Create(string name, FuzzMaterial m) => name switch
    {
        "media-datagram" => new MediaDatagramTarget(m),
        "link-datagram" => new LinkDatagramTarget(m),
        "control-frames" => new ControlFrameTarget(m),
        "control-messages" => new ControlMessageTarget(m),
        "credentials" => new CredentialTarget(m),
        "link-negotiation" => new LinkNegotiationTarget(m),
        _ => null,
    };
}
