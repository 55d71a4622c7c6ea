using System.Diagnostics;

namespace Wzp.Protocol.Tests.Fuzzing;

/// <summary>
/// A mutation fuzzer for managed parsers, in the manner of AFL's havoc stage: every input is a seed of valid
/// encodings (or an earlier input) with random bit flips, byte and boundary-value writes, chunk deletions,
/// duplications and insertions, and splices of two corpus entries. Feedback is the target's outcome: an input
/// that makes the target report an outcome it never reported before (a drop reason, an error, a message type)
/// joins the corpus, so paths past the first check are mutated further. Not coverage-guided like libFuzzer, but
/// cheap enough to run millions of inputs per target inside the test process, with no instrumentation step.
/// </summary>
/// <remarks>
/// Every execution is checked for the three failures a parser of untrusted bytes must never show: an exception
/// other than the target's documented one (the target catches those itself, so anything escaping is a finding),
/// a hang (an input taking longer than <see cref="FuzzOptions.HangAfter"/>), and unbounded allocation (more bytes
/// allocated for one input than the target's bound for that input's length). A failure reports the seed and the
/// input in hex, so the case can be replayed as a unit test.
/// </remarks>
internal sealed class Fuzzer(FuzzTarget target, FuzzOptions options)
{
    private static readonly byte[] Interesting8 = [0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'\\', (byte)'0'];
    private static readonly uint[] Interesting32 = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF];

    private const int MaxCorpus = 512;

    private long _firstRunAllocations;

    public FuzzReport Run()
    {
        var random = new Random(options.Seed);
        var corpus = target.Seeds().Where(s => s.Length <= target.MaxInputLength).ToList();
        if (corpus.Count == 0) corpus.Add([]);
        var outcomes = new Dictionary<string, long>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        var buffer = new byte[target.MaxInputLength];
        long executions = 0;
        foreach (var seed in corpus.ToList()) Execute(seed, outcomes, corpus, ref executions);
        while (executions < options.MaxInputs && clock.Elapsed < options.Duration)
        {
            var length = Mutate(random, corpus, buffer);
            Execute(buffer.AsSpan(0, length), outcomes, corpus, ref executions);
        }
        return new FuzzReport(target.Name, executions, clock.Elapsed, corpus.Count, outcomes, _firstRunAllocations);
    }

    private void Execute(ReadOnlySpan<byte> input, Dictionary<string, long> outcomes, List<byte[]> corpus, ref long executions)
    {
        executions++;
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var started = Stopwatch.GetTimestamp();
        string outcome;
        try
        {
            outcome = target.Run(input);
        }
        catch (Exception e)
        {
            throw new FuzzFindingException(target.Name, options.Seed, input, $"threw {e.GetType().Name}: {e.Message}", e);
        }
        var elapsed = Stopwatch.GetElapsedTime(started);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        if (elapsed > options.HangAfter)
            throw new FuzzFindingException(target.Name, options.Seed, input, $"took {elapsed.TotalMilliseconds:F0} ms");
        var bound = target.AllocationBound(input.Length);
        if (allocated > bound && executions > 1_000)
        {
            // The first run of a path can pay once for lazy statics and its compilation; the same input again must
            // not allocate (it may take another path, a replay drop, but that one must not allocate either).
            var again = GC.GetAllocatedBytesForCurrentThread();
            target.Run(input);
            again = GC.GetAllocatedBytesForCurrentThread() - again;
            if (again > bound)
                throw new FuzzFindingException(target.Name, options.Seed, input, $"allocated {allocated} then {again} bytes, bound {bound}");
            _firstRunAllocations++;
        }
        if (outcomes.TryGetValue(outcome, out var count))
        {
            outcomes[outcome] = count + 1;
            return;
        }
        outcomes[outcome] = 1;
        if (corpus.Count < MaxCorpus) corpus.Add(input.ToArray());
    }

    private int Mutate(Random random, List<byte[]> corpus, byte[] buffer)
    {
        var source = corpus[random.Next(corpus.Count)];
        var length = Math.Min(source.Length, buffer.Length);
        source.AsSpan(0, length).CopyTo(buffer);
        if (random.Next(50) == 0)
        {
            // Now and then something unrelated to any seed.
            length = random.Next(Math.Min(buffer.Length, 256) + 1);
            random.NextBytes(buffer.AsSpan(0, length));
            return length;
        }
        var rounds = 1 << random.Next(5);
        for (var r = 0; r < rounds; r++) length = MutateOnce(random, corpus, buffer, length);
        return length;
    }

    private static int MutateOnce(Random random, List<byte[]> corpus, byte[] buffer, int length)
    {
        switch (random.Next(length == 0 ? 1 : 10))
        {
            case 0: // insert a chunk: random bytes, or a copy from another corpus entry
            {
                var count = Math.Min(random.Next(1, 33), buffer.Length - length);
                if (count <= 0) return length;
                var at = random.Next(length + 1);
                buffer.AsSpan(at, length - at).CopyTo(buffer.AsSpan(at + count));
                var other = corpus[random.Next(corpus.Count)];
                if (other.Length >= count && random.Next(2) == 0) other.AsSpan(random.Next(other.Length - count + 1), count).CopyTo(buffer.AsSpan(at));
                else random.NextBytes(buffer.AsSpan(at, count));
                return length + count;
            }
            case 1:
                buffer[random.Next(length)] ^= (byte)(1 << random.Next(8));
                return length;
            case 2:
                buffer[random.Next(length)] = (byte)random.Next(256);
                return length;
            case 3:
                buffer[random.Next(length)] = Interesting8[random.Next(Interesting8.Length)];
                return length;
            case 4:
            {
                if (length < 4) return length;
                var at = random.Next(length - 3);
                var value = Interesting32[random.Next(Interesting32.Length)];
                if (random.Next(2) == 0) System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(at), value);
                else System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(at), value);
                return length;
            }
            case 5: // delete a chunk
            {
                var count = random.Next(1, Math.Min(length, 32) + 1);
                var at = random.Next(length - count + 1);
                buffer.AsSpan(at + count, length - at - count).CopyTo(buffer.AsSpan(at));
                return length - count;
            }
            case 6: // duplicate a chunk in place
            {
                var count = Math.Min(random.Next(1, Math.Min(length, 64) + 1), buffer.Length - length);
                if (count <= 0) return length;
                var from = random.Next(length - count + 1);
                var chunk = buffer.AsSpan(from, count).ToArray();
                buffer.AsSpan(from, length - from).CopyTo(buffer.AsSpan(from + count));
                chunk.CopyTo(buffer.AsSpan(from));
                return length + count;
            }
            case 7: // splice: our head, another entry's tail
            {
                var other = corpus[random.Next(corpus.Count)];
                var cut = random.Next(length + 1);
                var from = random.Next(other.Length + 1);
                var count = Math.Min(other.Length - from, buffer.Length - cut);
                other.AsSpan(from, count).CopyTo(buffer.AsSpan(cut));
                return cut + count;
            }
            case 8: // truncate
                return random.Next(length + 1);
            default: // arithmetic on one byte
                buffer[random.Next(length)] += (byte)random.Next(-16, 17);
                return length;
        }
    }
}

internal sealed record FuzzOptions(int Seed, long MaxInputs, TimeSpan Duration, TimeSpan HangAfter)
{
    /// <summary>
    /// The short run of the normal test suite, or a longer one from the environment:
    /// <c>WZP_FUZZ_INPUTS</c> (inputs per target), <c>WZP_FUZZ_SECONDS</c> (time per target), <c>WZP_FUZZ_SEED</c>.
    /// </summary>
    public static FuzzOptions FromEnvironment(TimeSpan shortRun)
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("WZP_FUZZ_SEED"), out var s) ? s : Random.Shared.Next();
        var inputs = long.TryParse(Environment.GetEnvironmentVariable("WZP_FUZZ_INPUTS"), out var n) ? n : long.MaxValue;
        var seconds = double.TryParse(Environment.GetEnvironmentVariable("WZP_FUZZ_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out var d)
            ? TimeSpan.FromSeconds(d)
            : inputs == long.MaxValue ? shortRun : TimeSpan.MaxValue;
        // Generous: a loaded shared machine stalls threads for a while; a real hang never finishes.
        return new FuzzOptions(seed, inputs, seconds, TimeSpan.FromSeconds(2));
    }
}

internal sealed record FuzzReport(string Target, long Executions, TimeSpan Elapsed, int Corpus, IReadOnlyDictionary<string, long> Outcomes,
    long FirstRunAllocations)
{
    public override string ToString() =>
        $"{Target}: {Executions:N0} inputs in {Elapsed.TotalSeconds:F1} s ({Executions / Math.Max(Elapsed.TotalSeconds, 1e-3):N0}/s), corpus {Corpus}, " +
        $"{FirstRunAllocations} one-time first-path allocations, " +
        $"{Outcomes.Count} outcomes: {string.Join(", ", Outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Key}={o.Value:N0}"))}";
}

internal sealed class FuzzFindingException(string target, int seed, ReadOnlySpan<byte> input, string what, Exception? inner = null)
    : Exception($"fuzz target {target} (WZP_FUZZ_SEED={seed}): input {what}; input hex {Convert.ToHexStringLower(input)}", inner);

/// <summary>One parser of untrusted bytes, wrapped so that its documented errors become outcomes.</summary>
internal abstract class FuzzTarget
{
    public abstract string Name { get; }

    public virtual int MaxInputLength => 1_500;

    /// <summary>Valid encodings to mutate.</summary>
    public abstract IEnumerable<byte[]> Seeds();

    /// <summary>Runs the parser; returns a short name of what happened. Throws only on a finding.</summary>
    public abstract string Run(ReadOnlySpan<byte> input);

    /// <summary>Most bytes one input of <paramref name="length"/> may make the target allocate.</summary>
    public abstract long AllocationBound(int length);
}
