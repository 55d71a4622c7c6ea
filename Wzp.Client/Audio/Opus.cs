using Concentus;
using Concentus.Enums;
using Wzp.Protocol;

namespace Wzp.Client.Audio;

/// <summary>Opus bitrates and the media header's codec ids (PROTOCOL.md §6).</summary>
public static class OpusCodecs
{
    /// <summary>The Opus bitrates a media header can name, in kbit/s.</summary>
    public static IReadOnlyList<int> SupportedKbps { get; } = [6, 16, 24, 32, 48, 64];

    public static CodecId ForKbps(int kbps) => kbps switch
    {
        6 => CodecId.Opus6k,
        16 => CodecId.Opus16k,
        24 => CodecId.Opus24k,
        32 => CodecId.Opus32k,
        48 => CodecId.Opus48k,
        64 => CodecId.Opus64k,
        _ => throw new ArgumentOutOfRangeException(nameof(kbps), kbps, $"Opus bitrates are {string.Join(", ", SupportedKbps)} kbit/s."),
    };

    public static bool IsOpus(CodecId codec) =>
        codec is CodecId.Opus6k or CodecId.Opus16k or CodecId.Opus24k or CodecId.Opus32k or CodecId.Opus48k or CodecId.Opus64k;

    /// <summary>
    /// Concentus's managed implementation on every machine, never a native libopus that happens to be installed:
    /// a receiver's decoded audio is then reproducible bit for bit from the frames anywhere.
    /// </summary>
    internal static void UseManagedCodec() => OpusCodecFactory.AttemptToUseNativeLibrary = false;
}

/// <summary>Encodes 20 ms frames of 48 kHz mono speech with Opus (Concentus) at a fixed bitrate.</summary>
public sealed class OpusFrameEncoder : IDisposable
{
    /// <summary>Opus never needs more for one 20 ms frame at these bitrates; the datagram limit is looser still.</summary>
    public const int MaxFrameBytes = 1000;

    private readonly IOpusEncoder _encoder;

    /// <param name="kbps">One of <see cref="OpusCodecs.SupportedKbps"/>.</param>
    public OpusFrameEncoder(int kbps = 24)
    {
        Codec = OpusCodecs.ForKbps(kbps);
        OpusCodecs.UseManagedCodec();
        _encoder = OpusCodecFactory.CreateEncoder(VoiceFormat.SampleRate, 1, OpusApplication.OPUS_APPLICATION_VOIP);
        _encoder.Bitrate = kbps * 1000;
        _encoder.SignalType = OpusSignal.OPUS_SIGNAL_VOICE;
    }

    /// <summary>The codec id this encoder's frames carry.</summary>
    public CodecId Codec { get; }

    /// <summary>Encodes exactly <see cref="VoiceFormat.FrameSamples"/> samples.</summary>
    /// <returns>Bytes written to <paramref name="destination"/>.</returns>
    public int Encode(ReadOnlySpan<short> frame, Span<byte> destination)
    {
        if (frame.Length != VoiceFormat.FrameSamples) throw new ArgumentException($"A frame is {VoiceFormat.FrameSamples} samples.", nameof(frame));
        return _encoder.Encode(frame, VoiceFormat.FrameSamples, destination, Math.Min(destination.Length, MaxFrameBytes));
    }

    public byte[] Encode(ReadOnlySpan<short> frame)
    {
        Span<byte> buffer = stackalloc byte[MaxFrameBytes];
        return buffer[..Encode(frame, buffer)].ToArray();
    }

    public void Dispose() => _encoder.Dispose();
}

/// <summary>Decodes Opus frames to 20 ms of 48 kHz mono; conceals a lost frame from the decoder's state.</summary>
public sealed class OpusFrameDecoder : IDisposable
{
    private readonly IOpusDecoder _decoder;

    public OpusFrameDecoder()
    {
        OpusCodecs.UseManagedCodec();
        _decoder = OpusCodecFactory.CreateDecoder(VoiceFormat.SampleRate, 1);
    }

    /// <summary>Decodes one frame into <paramref name="pcm"/> (at least 960 samples).</summary>
    /// <returns>Samples written.</returns>
    /// <exception cref="AudioFileException">Not a decodable Opus frame.</exception>
    public int Decode(ReadOnlySpan<byte> payload, Span<short> pcm)
    {
        try
        {
            return _decoder.Decode(payload, pcm, VoiceFormat.FrameSamples, false);
        }
        catch (OpusException e)
        {
            throw new AudioFileException($"not a decodable Opus frame: {e.Message}", e);
        }
    }

    public short[] Decode(ReadOnlySpan<byte> payload)
    {
        var pcm = new short[VoiceFormat.FrameSamples];
        return pcm[..Decode(payload, pcm)];
    }

    /// <summary>Fills one frame's worth for a frame that never arrived (packet loss concealment).</summary>
    public int Conceal(Span<short> pcm) => _decoder.Decode(ReadOnlySpan<byte>.Empty, pcm, VoiceFormat.FrameSamples, false);

    public void Dispose() => _decoder.Dispose();
}
