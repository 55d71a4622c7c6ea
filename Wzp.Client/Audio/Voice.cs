using Wzp.Protocol;

namespace Wzp.Client.Audio;

/// <summary>
/// Sends speech through a <see cref="WzpClient"/>: encodes each 20 ms frame with Opus and sends it with a media
/// header whose sequence advances by one and timestamp by 20 ms per frame.
/// </summary>
public sealed class VoiceSender : IDisposable
{
    private readonly WzpClient _client;
    private readonly OpusFrameEncoder _encoder;
    private readonly byte[] _buffer = new byte[OpusFrameEncoder.MaxFrameBytes];
    private ushort _sequence;
    private uint _timestamp;

    public VoiceSender(WzpClient client, int kbps = 24)
    {
        ArgumentNullException.ThrowIfNull(client);
        _client = client;
        _encoder = new OpusFrameEncoder(kbps);
    }

    /// <summary>Frames encoded so far (sent or dropped).</summary>
    public long Frames { get; private set; }

    /// <summary>Encodes and sends one frame of <see cref="VoiceFormat.FrameSamples"/> samples.</summary>
    /// <returns>The encoded payload (valid until the next call) and whether the datagram left.</returns>
    public (ReadOnlyMemory<byte> Payload, bool Sent) Send(ReadOnlySpan<short> frame)
    {
        var length = _encoder.Encode(frame, _buffer);
        var header = new MediaHeader(V: false, T: false, _encoder.Codec, HasQualityReport: false, FecRatioEncoded: 0,
            Sequence: _sequence, Timestamp: _timestamp, FecBlock: 0, FecSymbol: 0, Reserved: 0, CsrcCount: 0);
        _sequence++;
        _timestamp += VoiceFormat.FrameMilliseconds;
        Frames++;
        var sent = _client.TrySend(header, _buffer.AsSpan(0, length));
        return (_buffer.AsMemory(0, length), sent);
    }

    public void Dispose() => _encoder.Dispose();
}

/// <summary>
/// Records what each sender says to its own WAV file: decodes Opus frames per source slot, conceals up to
/// <see cref="MaxConcealedFrames"/> missing frames (by sequence number) so the recording keeps time, and drops
/// frames that arrive after a later one.
/// </summary>
public sealed class VoiceRecorder : IDisposable
{
    /// <summary>Gaps longer than this (one second) are not filled: the sender paused or rejoined.</summary>
    public const int MaxConcealedFrames = 50;

    private readonly Func<int, string> _pathForSlot;
    private readonly Dictionary<int, Track> _tracks = [];
    private readonly Dictionary<int, string> _files = [];
    private readonly short[] _pcm = new short[VoiceFormat.FrameSamples];

    /// <param name="pathForSlot">The file of each sender's slot, e.g. <c>slot => $"out-slot{slot}.wav"</c>.</param>
    public VoiceRecorder(Func<int, string> pathForSlot)
    {
        ArgumentNullException.ThrowIfNull(pathForSlot);
        _pathForSlot = pathForSlot;
    }

    /// <summary>Records to <c>OUT-slotN.wav</c> beside <paramref name="path"/> (<c>OUT.wav</c>).</summary>
    public static VoiceRecorder ForPath(string path) => new(slot => WavWriter.WithSuffix(path, $"-slot{slot}"));

    /// <summary>The files written so far, by slot.</summary>
    public IReadOnlyDictionary<int, string> Files => _files;

    /// <summary>Frames that could not be decoded (another codec, or corrupt).</summary>
    public long Undecodable { get; private set; }

    /// <summary>Frames filled in by concealment.</summary>
    public long Concealed { get; private set; }

    /// <summary>Frames that arrived after a later frame of the same sender and were skipped.</summary>
    public long Late { get; private set; }

    /// <exception cref="AudioFileException">A recording file cannot be written.</exception>
    public void Record(MediaFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (!OpusCodecs.IsOpus(frame.Header.Codec))
        {
            Undecodable++;
            return;
        }
        if (!_tracks.TryGetValue(frame.Source, out var track))
        {
            track = new Track(WavWriter.Create(_pathForSlot(frame.Source)), new OpusFrameDecoder());
            _tracks[frame.Source] = track;
            _files[frame.Source] = track.Writer.Path;
        }
        var sequence = frame.Header.Sequence;
        if (track.LastSequence is { } last)
        {
            var gap = (ushort)(sequence - last);
            if (gap == 0 || gap > ushort.MaxValue / 2)
            {
                Late++;
                return;
            }
            if (gap > 1 && gap - 1 <= MaxConcealedFrames)
            {
                for (var i = 1; i < gap; i++)
                {
                    track.Writer.Write(_pcm.AsSpan(0, track.Decoder.Conceal(_pcm)));
                    Concealed++;
                }
            }
        }
        track.LastSequence = sequence;
        try
        {
            track.Writer.Write(_pcm.AsSpan(0, track.Decoder.Decode(frame.Payload.Span, _pcm)));
        }
        catch (AudioFileException)
        {
            Undecodable++;
        }
        if (++track.SinceFlush >= 50)
        {
            track.Writer.Flush();
            track.SinceFlush = 0;
        }
    }

    public void Dispose()
    {
        foreach (var track in _tracks.Values)
        {
            track.Writer.Dispose();
            track.Decoder.Dispose();
        }
        _tracks.Clear();
    }

    private sealed class Track(WavWriter writer, OpusFrameDecoder decoder)
    {
        public WavWriter Writer { get; } = writer;

        public OpusFrameDecoder Decoder { get; } = decoder;

        public ushort? LastSequence { get; set; }

        public int SinceFlush { get; set; }
    }
}
