using System.Numerics;

namespace Wzp.Client.Tests;

/// <summary>Frequency analysis for tone checks: the strongest bin of an FFT, refined by parabolic interpolation.</summary>
internal static class Spectrum
{
    /// <summary>The dominant frequency of <paramref name="samples"/> (at least 4096 of them) in Hz.</summary>
    public static double DominantFrequency(ReadOnlySpan<short> samples, int sampleRate = 48_000)
    {
        var size = 1;
        while (size * 2 <= samples.Length && size < 65_536) size *= 2;
        if (size < 4096) throw new ArgumentException($"Need at least 4096 samples, got {samples.Length}.", nameof(samples));
        // The middle of the signal, away from codec start-up and fade-out.
        var start = (samples.Length - size) / 2;
        var data = new Complex[size];
        for (var i = 0; i < size; i++)
        {
            var window = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / (size - 1)); // Hann: keeps leakage from hiding the peak
            data[i] = new Complex(samples[start + i] * window, 0);
        }
        Fft(data);
        var best = 1;
        for (var k = 2; k < size / 2; k++)
            if (data[k].Magnitude > data[best].Magnitude) best = k;
        double a = data[best - 1].Magnitude, b = data[best].Magnitude, c = data[best + 1].Magnitude;
        var denominator = a - 2 * b + c;
        var shift = denominator == 0 ? 0 : 0.5 * (a - c) / denominator;
        return (best + shift) * sampleRate / size;
    }

    /// <summary>Root mean square level, to tell a tone from silence.</summary>
    public static double Rms(ReadOnlySpan<short> samples)
    {
        double sum = 0;
        foreach (var s in samples) sum += (double)s * s;
        return samples.Length == 0 ? 0 : Math.Sqrt(sum / samples.Length);
    }

    private static void Fft(Complex[] data)
    {
        var n = data.Length;
        for (int i = 1, j = 0; i < n; i++)
        {
            var bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1) j ^= bit;
            j ^= bit;
            if (i < j) (data[i], data[j]) = (data[j], data[i]);
        }
        for (var length = 2; length <= n; length <<= 1)
        {
            var angle = -2 * Math.PI / length;
            var step = new Complex(Math.Cos(angle), Math.Sin(angle));
            for (var i = 0; i < n; i += length)
            {
                var w = Complex.One;
                for (var k = 0; k < length / 2; k++)
                {
                    var u = data[i + k];
                    var v = data[i + k + length / 2] * w;
                    data[i + k] = u + v;
                    data[i + k + length / 2] = u - v;
                    w *= step;
                }
            }
        }
    }
}

/// <summary>Waits for a condition by polling it against a deadline, never by sleeping a guessed time.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(10); // a polling interval, not a wait for the outcome
        }
    }
}

/// <summary>A temporary directory removed at dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("wzp-client-tests-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
