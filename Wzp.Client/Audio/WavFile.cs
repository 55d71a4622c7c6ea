using System.Buffers.Binary;

namespace Wzp.Client.Audio;

/// <summary>A WAV file that cannot be used; the message names the file and the reason on one line.</summary>
public sealed class AudioFileException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The one format Wzp speaks: 48 kHz, mono, 16-bit, in 20 ms frames of 960 samples.</summary>
public static class VoiceFormat
{
    public const int SampleRate = 48_000;
    public const int FrameSamples = 960;
    public const int FrameMilliseconds = 20;
}

/// <summary>
/// Reads and writes 16-bit PCM WAV files. Reading accepts mono or stereo at any sample rate (espeak-ng writes
/// 22.05 kHz) and returns 48 kHz mono: channels are averaged and the rate converted by linear interpolation,
/// which is plenty for speech.
/// </summary>
public static class WavFile
{
    private const int HeaderSize = 44;

    /// <summary>Reads <paramref name="path"/> as 48 kHz mono samples.</summary>
    /// <exception cref="AudioFileException">Missing, unreadable, or not 16-bit PCM WAV with 1 or 2 channels.</exception>
    public static short[] ReadMono48k(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AudioFileException($"cannot read '{path}': {e.Message}", e);
        }
        var (samples, channels, rate) = Parse(bytes, path);
        var mono = channels == 1 ? samples : Downmix(samples, channels);
        return rate == VoiceFormat.SampleRate ? mono : Resample(mono, rate, VoiceFormat.SampleRate);
    }

    /// <summary>Parses a 16-bit PCM WAV: interleaved samples, channel count, sample rate.</summary>
    public static (short[] Samples, int Channels, int SampleRate) Parse(ReadOnlySpan<byte> bytes, string name = "input")
    {
        if (bytes.Length < 12 || !bytes[..4].SequenceEqual("RIFF"u8) || !bytes[8..12].SequenceEqual("WAVE"u8))
            throw new AudioFileException($"'{name}' is not a WAV file (no RIFF/WAVE header)");
        int channels = 0, rate = 0, bits = 0, format = 0;
        var offset = 12;
        while (offset + 8 <= bytes.Length)
        {
            var id = bytes.Slice(offset, 4);
            // Streamed WAVs (espeak-ng --stdout) carry 0xFFFFFFFF sizes: take what the file holds.
            var size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(bytes[(offset + 4)..]), (uint)(bytes.Length - offset - 8));
            var body = bytes.Slice(offset + 8, size);
            if (id.SequenceEqual("fmt "u8))
            {
                if (size < 16) throw new AudioFileException($"'{name}' has a truncated format chunk");
                format = BinaryPrimitives.ReadUInt16LittleEndian(body);
                channels = BinaryPrimitives.ReadUInt16LittleEndian(body[2..]);
                rate = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                bits = BinaryPrimitives.ReadUInt16LittleEndian(body[14..]);
                // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the real format tag.
                if (format == 0xFFFE && size >= 26) format = BinaryPrimitives.ReadUInt16LittleEndian(body[24..]);
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (format != 1 || bits != 16 || channels is < 1 or > 2 || rate is < 8_000 or > 192_000)
                    throw new AudioFileException(
                        $"'{name}' is not 16-bit PCM with 1 or 2 channels at 8-192 kHz (format {format}, {bits} bits, {channels} channels, {rate} Hz)");
                var samples = new short[size / 2 / channels * channels];
                for (var i = 0; i < samples.Length; i++) samples[i] = BinaryPrimitives.ReadInt16LittleEndian(body[(i * 2)..]);
                return (samples, channels, rate);
            }
            offset += 8 + size + (size & 1);
        }
        throw new AudioFileException($"'{name}' has no audio data chunk");
    }

    /// <summary>Writes 16-bit mono PCM.</summary>
    /// <exception cref="AudioFileException">The file cannot be written.</exception>
    public static void Write(string path, ReadOnlySpan<short> samples, int sampleRate = VoiceFormat.SampleRate)
    {
        using var writer = WavWriter.Create(path, sampleRate);
        writer.Write(samples);
    }

    private static short[] Downmix(short[] interleaved, int channels)
    {
        var mono = new short[interleaved.Length / channels];
        for (var i = 0; i < mono.Length; i++)
        {
            var sum = 0;
            for (var c = 0; c < channels; c++) sum += interleaved[i * channels + c];
            mono[i] = (short)(sum / channels);
        }
        return mono;
    }

    internal static short[] Resample(short[] input, int fromRate, int toRate)
    {
        if (input.Length == 0) return [];
        var length = (int)((long)input.Length * toRate / fromRate);
        var output = new short[length];
        var step = (double)fromRate / toRate;
        for (var i = 0; i < length; i++)
        {
            var position = i * step;
            var index = (int)position;
            var next = Math.Min(index + 1, input.Length - 1);
            var fraction = position - index;
            output[i] = (short)Math.Round(input[index] + (input[next] - input[index]) * fraction);
        }
        return output;
    }

    internal static void WriteHeader(Span<byte> header, int sampleRate, uint dataBytes)
    {
        "RIFF"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 36 + dataBytes);
        "WAVE"u8.CopyTo(header[8..]);
        "fmt "u8.CopyTo(header[12..]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], 16);
        BinaryPrimitives.WriteUInt16LittleEndian(header[20..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(header[22..], 1);
        BinaryPrimitives.WriteInt32LittleEndian(header[24..], sampleRate);
        BinaryPrimitives.WriteInt32LittleEndian(header[28..], sampleRate * 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[32..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[34..], 16);
        "data"u8.CopyTo(header[36..]);
        BinaryPrimitives.WriteUInt32LittleEndian(header[40..], dataBytes);
    }

    internal static int HeaderLength => HeaderSize;
}

/// <summary>
/// Appends 16-bit mono samples to a WAV file as they arrive and fixes the sizes in the header on every flush,
/// so the file is valid even if the process is killed between flushes.
/// </summary>
public sealed class WavWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly int _sampleRate;
    private readonly byte[] _header = new byte[WavFile.HeaderLength];
    private long _dataBytes;

    private WavWriter(FileStream stream, int sampleRate)
    {
        _stream = stream;
        _sampleRate = sampleRate;
        WriteHeader();
    }

    public string Path => _stream.Name;

    /// <summary>Samples written so far.</summary>
    public long SampleCount => _dataBytes / 2;

    /// <exception cref="AudioFileException">The file cannot be created.</exception>
    public static WavWriter Create(string path, int sampleRate = VoiceFormat.SampleRate)
    {
        try
        {
            var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            return new WavWriter(new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read), sampleRate);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AudioFileException($"cannot write '{path}': {e.Message}", e);
        }
    }

    public void Write(ReadOnlySpan<short> samples)
    {
        var bytes = new byte[samples.Length * 2];
        for (var i = 0; i < samples.Length; i++) BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(i * 2), samples[i]);
        _stream.Seek(0, SeekOrigin.End);
        _stream.Write(bytes);
        _dataBytes += bytes.Length;
    }

    /// <summary>Writes the current sizes into the header and flushes to disk.</summary>
    public void Flush()
    {
        WriteHeader();
        _stream.Flush();
    }

    private void WriteHeader()
    {
        WavFile.WriteHeader(_header, _sampleRate, (uint)Math.Min(_dataBytes, uint.MaxValue - 36));
        _stream.Seek(0, SeekOrigin.Begin);
        _stream.Write(_header);
    }

    public void Dispose()
    {
        Flush();
        _stream.Dispose();
    }

    /// <summary>A file name of <paramref name="path"/> with <paramref name="suffix"/> before the extension: <c>out.wav</c> -> <c>out-slot3.wav</c>.</summary>
    public static string WithSuffix(string path, string suffix)
    {
        var extension = System.IO.Path.GetExtension(path);
        var stem = extension.Length > 0 ? path[..^extension.Length] : path;
        return stem + suffix + (extension.Length > 0 ? extension : ".wav");
    }
}

/// <summary>A sine tone with a continuous phase across frames.</summary>
public sealed class ToneGenerator(double frequency, double amplitude = 0.5, int sampleRate = VoiceFormat.SampleRate)
{
    private double _phase;

    public double Frequency { get; } = frequency > 0 && frequency < sampleRate / 2.0
        ? frequency
        : throw new ArgumentOutOfRangeException(nameof(frequency), $"A tone is between 0 and {sampleRate / 2} Hz.");

    public void Fill(Span<short> destination)
    {
        var step = 2 * Math.PI * Frequency / sampleRate;
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = (short)Math.Round(Math.Sin(_phase) * amplitude * short.MaxValue);
            _phase += step;
            if (_phase > 2 * Math.PI) _phase -= 2 * Math.PI;
        }
    }

    /// <summary><paramref name="samples"/> samples of the tone from phase 0.</summary>
    public static short[] Generate(double frequency, int samples, double amplitude = 0.5, int sampleRate = VoiceFormat.SampleRate)
    {
        var buffer = new short[samples];
        new ToneGenerator(frequency, amplitude, sampleRate).Fill(buffer);
        return buffer;
    }
}
