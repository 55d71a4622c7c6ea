using Wzp.Client.Audio;

namespace Wzp.Client.Tests;

public sealed class AudioTests
{
    [Fact]
    public void Wav_WriteThenRead_RoundTripsEverySample()
    {
        using var dir = new TempDirectory();
        var samples = Enumerable.Range(0, 48_000).Select(i => (short)((i * 7919) % 65_536 - 32_768)).ToArray();
        WavFile.Write(dir.File("a.wav"), samples);
        Assert.Equal(samples, WavFile.ReadMono48k(dir.File("a.wav")));
    }

    [Fact]
    public void WavWriter_Streamed_HeaderCarriesFinalSize()
    {
        using var dir = new TempDirectory();
        using (var writer = WavWriter.Create(dir.File("s.wav")))
        {
            writer.Write(new short[960]);
            writer.Flush();
            writer.Write(ToneGenerator.Generate(440, 960));
        }
        var (samples, channels, rate) = WavFile.Parse(File.ReadAllBytes(dir.File("s.wav")));
        Assert.Equal((1920, 1, 48_000), (samples.Length, channels, rate));
    }

    [Fact]
    public void Wav_Stereo22kHz_IsDownmixedAndResampledKeepingTheTone()
    {
        using var dir = new TempDirectory();
        var mono = ToneGenerator.Generate(500, 22_050, sampleRate: 22_050);
        var stereo = mono.SelectMany(s => new[] { s, s }).ToArray();
        File.WriteAllBytes(dir.File("st.wav"), WavBytes(stereo, channels: 2, rate: 22_050));
        var read = WavFile.ReadMono48k(dir.File("st.wav"));
        Assert.Equal(48_000, read.Length);
        Assert.InRange(Spectrum.DominantFrequency(read), 495, 505);
    }

    [Theory]
    [InlineData("not a wav file at all")]
    [InlineData("RIFF\0\0\0\0WAVE")]
    public void Wav_Garbage_IsRefusedWithAOneLineReason(string content)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("bad.wav"), content);
        var e = Assert.Throws<AudioFileException>(() => WavFile.ReadMono48k(dir.File("bad.wav")));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("bad.wav", e.Message);
    }

    [Fact]
    public void Wav_EightBit_IsRefused()
    {
        using var dir = new TempDirectory();
        var bytes = WavBytes(new short[100], 1, 8000);
        bytes[34] = 8; // bits per sample
        File.WriteAllBytes(dir.File("b8.wav"), bytes);
        Assert.Contains("16-bit", Assert.Throws<AudioFileException>(() => WavFile.ReadMono48k(dir.File("b8.wav"))).Message);
    }

    [Fact]
    public void Wav_Missing_IsRefused()
    {
        Assert.Throws<AudioFileException>(() => WavFile.ReadMono48k("/nonexistent/x.wav"));
    }

    [Theory]
    [InlineData(440)]
    [InlineData(1000)]
    [InlineData(2500)]
    public void Tone_HasItsFrequency(double hz)
    {
        Assert.InRange(Spectrum.DominantFrequency(ToneGenerator.Generate(hz, 48_000)), hz - 2, hz + 2);
    }

    [Theory]
    [InlineData(440, 24)]
    [InlineData(880, 16)]
    [InlineData(1200, 64)]
    public void Opus_EncodeDecodeOfATone_KeepsItsFrequency(double hz, int kbps)
    {
        var tone = new ToneGenerator(hz);
        using var encoder = new OpusFrameEncoder(kbps);
        using var decoder = new OpusFrameDecoder();
        var decoded = new List<short>();
        var frame = new short[VoiceFormat.FrameSamples];
        for (var i = 0; i < 50; i++)
        {
            tone.Fill(frame);
            var payload = encoder.Encode(frame);
            Assert.InRange(payload.Length, 1, OpusFrameEncoder.MaxFrameBytes);
            decoded.AddRange(decoder.Decode(payload));
        }
        Assert.Equal(50 * VoiceFormat.FrameSamples, decoded.Count);
        Assert.InRange(Spectrum.DominantFrequency(decoded.ToArray()), hz - 5, hz + 5);
        Assert.True(Spectrum.Rms(decoded.ToArray()) > 3000, "the decoded tone is audible");
    }

    [Fact]
    public void Opus_SameFrames_DecodeToTheSameSamples()
    {
        using var encoder = new OpusFrameEncoder();
        var frames = Enumerable.Range(0, 10).Select(i => encoder.Encode(ToneGenerator.Generate(300 + i * 10, VoiceFormat.FrameSamples))).ToList();
        using var a = new OpusFrameDecoder();
        using var b = new OpusFrameDecoder();
        Assert.Equal(frames.SelectMany(f => a.Decode(f)), frames.SelectMany(f => b.Decode(f)));
    }

    [Fact]
    public void Recorder_GapInSequence_IsConcealedAndLateFramesSkipped()
    {
        using var dir = new TempDirectory();
        using var encoder = new OpusFrameEncoder();
        var payload = encoder.Encode(ToneGenerator.Generate(440, VoiceFormat.FrameSamples));
        using (var recorder = VoiceRecorder.ForPath(dir.File("out.wav")))
        {
            foreach (var sequence in new ushort[] { 0, 1, 4, 3, 5 })
                recorder.Record(new MediaFrame(7, Header(sequence), payload, null));
            Assert.Equal(2, recorder.Concealed);
            Assert.Equal(1, recorder.Late);
            Assert.Equal(dir.File("out-slot7.wav"), recorder.Files[7]);
        }
        Assert.Equal(6 * VoiceFormat.FrameSamples, WavFile.ReadMono48k(dir.File("out-slot7.wav")).Length);
    }

    [Fact]
    public void WithSuffix_PutsTheSlotBeforeTheExtension()
    {
        Assert.Equal("/a/b/out-slot3.wav", WavWriter.WithSuffix("/a/b/out.wav", "-slot3"));
        Assert.Equal("rec-slot1.wav", WavWriter.WithSuffix("rec", "-slot1"));
    }

    internal static Protocol.MediaHeader Header(ushort sequence) =>
        new(false, false, Protocol.CodecId.Opus24k, false, 0, sequence, (uint)(sequence * 20), 0, 0, 0, 0);

    private static byte[] WavBytes(short[] interleaved, int channels, int rate)
    {
        var bytes = new byte[44 + interleaved.Length * 2];
        var span = bytes.AsSpan();
        "RIFF"u8.CopyTo(span);
        BitConverter.TryWriteBytes(span[4..], 36 + interleaved.Length * 2);
        "WAVEfmt "u8.CopyTo(span[8..]);
        BitConverter.TryWriteBytes(span[16..], 16);
        BitConverter.TryWriteBytes(span[20..], (short)1);
        BitConverter.TryWriteBytes(span[22..], (short)channels);
        BitConverter.TryWriteBytes(span[24..], rate);
        BitConverter.TryWriteBytes(span[28..], rate * channels * 2);
        BitConverter.TryWriteBytes(span[32..], (short)(channels * 2));
        BitConverter.TryWriteBytes(span[34..], (short)16);
        "data"u8.CopyTo(span[36..]);
        BitConverter.TryWriteBytes(span[40..], interleaved.Length * 2);
        for (var i = 0; i < interleaved.Length; i++) BitConverter.TryWriteBytes(span[(44 + i * 2)..], interleaved[i]);
        return bytes;
    }
}
