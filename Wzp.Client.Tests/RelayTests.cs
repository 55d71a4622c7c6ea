using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Wzp.Cli;
using Wzp.Client.Audio;
using Wzp.Protocol;

namespace Wzp.Client.Tests;

/// <summary>
/// <c>wzp relay</c> as a real process (silo with localhost clustering + gateway), shared by the end-to-end tests
/// of this collection; ports are picked free so it never collides with a relay a developer is running.
/// </summary>
public class RelayFixture : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();

    /// <summary>The fixture's own folder: the relay's data directory and whatever a subclass prepares.</summary>
    internal TempDirectory Folder => _dir;

    /// <summary>More arguments of <c>wzp relay</c>; computed before it starts.</summary>
    protected virtual Task<string[]> ExtraArgumentsAsync() => Task.FromResult<string[]>([]);
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;

    public GatewayAddress Address { get; private set; }

    public Fingerprint ClusterFingerprint { get; private set; }

    public string Output => string.Join('\n', _output);

    /// <summary>The relay's room administration API (a free port, so that relays of several collections never collide).</summary>
    public Uri AdminApi { get; private set; } = null!;

    /// <summary>The operator key the relay created in its data directory.</summary>
    public string AdminKeyFile => Path.Combine(_dir.File("relay"), "admin.key");

    public async Task InitializeAsync()
    {
        var port = FreePort(SocketType.Dgram, ProtocolType.Udp);
        var adminPort = FreePort(SocketType.Stream, ProtocolType.Tcp);
        AdminApi = new Uri($"http://127.0.0.1:{adminPort}/");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] args =
        [
            Path.Combine(AppContext.BaseDirectory, "wzp.dll"), "relay", "--listen", $"127.0.0.1:{port}", "--data-dir", _dir.File("relay"),
            "--silo-port", FreePort(SocketType.Stream, ProtocolType.Tcp).ToString(CultureInfo.InvariantCulture),
            "--orleans-port", FreePort(SocketType.Stream, ProtocolType.Tcp).ToString(CultureInfo.InvariantCulture),
            "--admin-listen", $"127.0.0.1:{adminPort}",
            .. await ExtraArgumentsAsync(),
        ];
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            _output.Enqueue(e.Data);
            if (e.Data.StartsWith("cluster fingerprint ", StringComparison.Ordinal)) ready.TrySetResult(e.Data["cluster fingerprint ".Length..]);
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) _output.Enqueue("stderr: " + e.Data);
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, exited).WaitAsync(TimeSpan.FromMinutes(1));
        if (first != ready.Task) throw new InvalidOperationException($"wzp relay exited with {_process.ExitCode}: {Output}");
        ClusterFingerprint = Fingerprint.Parse(await ready.Task);
        Address = new GatewayAddress("127.0.0.1", port);
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        _dir.Dispose();
    }

    internal static int FreePort(SocketType type, ProtocolType protocol)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, type, protocol);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RelayCollection : ICollectionFixture<RelayFixture>
{
    public const string Name = "relay";
}

/// <summary>End to end through the real relay: the client library, and the <c>wzp</c> command as processes.</summary>
[Collection(RelayCollection.Name)]
public sealed class RelayTests(RelayFixture relay) : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<Identity> _identities = [];

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
        _dir.Dispose();
    }

    private WzpClientOptions Options(string room, string alias)
    {
        var identity = Identity.Generate();
        _identities.Add(identity);
        return new WzpClientOptions
        {
            Gateway = relay.Address,
            Identity = identity,
            Room = room,
            Alias = alias,
            PinnedClusterFingerprint = relay.ClusterFingerprint,
        };
    }

    [SkippableFact]
    public async Task Speech_BothWaysAtOnce_IsRecordedExactlyAsDecodingTheSendersFramesLocally()
    {
        var speechA = Speech("alpha bravo charlie delta echo");
        var speechB = Speech("one two three four five six");
        var room = "speech-" + Guid.NewGuid().ToString("N");
        await using var a = await WzpClient.ConnectAsync(Options(room, "a"));
        await using var b = await WzpClient.ConnectAsync(Options(room, "b"));
        await Eventually.TrueAsync(() => a.Others.Count == 1 && b.Others.Count == 1, "both see each other");

        var heardByB = Collect(b, a.Slot);
        var heardByA = Collect(a, b.Slot);
        var sendA = SpeakAsync(a, speechA.Samples, () => heardByB.Warm);
        var sendB = SpeakAsync(b, speechB.Samples, () => heardByA.Warm);
        var expectedAtB = await sendA;
        var expectedAtA = await sendB;
        await Eventually.TrueAsync(() => heardByB.Count == expectedAtB.Frames && heardByA.Count == expectedAtA.Frames,
            $"every speech frame arrives (B has {heardByB.Count}/{expectedAtB.Frames}, A has {heardByA.Count}/{expectedAtA.Frames})");

        Assert.Equal(expectedAtB.Decoded, heardByB.Decode());
        Assert.Equal(expectedAtA.Decoded, heardByA.Decode());
        Assert.Equal(0, a.GetStatistics().DroppedTotal);
        Assert.Equal(0, b.GetStatistics().DroppedTotal);
    }

    [Fact]
    public async Task Cli_TwoJoinsAsProcesses_ExchangeTones()
    {
        var room = "tones-" + Guid.NewGuid().ToString("N");
        string[] Join(string name, int hz) =>
        [
            "join", room, "--gateway", relay.Address.ToString(), "--pin", relay.ClusterFingerprint.ToString(),
            "--tone", hz.ToString(CultureInfo.InvariantCulture), "--record", _dir.File($"{name}.wav"), "--duration", "3", "--wait-for", "1",
            "--identity", _dir.File($"{name}.id"), "--alias", name,
        ];
        // Alice is in the room before Bob knocks, as two people in two terminals would be.
        await using var alice = WzpProcess.Start(Join("alice", 440));
        await alice.WaitForLineAsync("joined '");
        await using var bob = WzpProcess.Start(Join("bob", 1000));
        var results = new[] { await alice.ExitAsync(), await bob.ExitAsync() };
        Assert.All(results, r => Assert.True(r.Code == 0, $"exit {r.Code}: {r.Error}{r.Out}"));
        var aliceHeard = WavFile.ReadMono48k(Assert.Single(Directory.GetFiles(_dir.Path, "alice-slot*.wav")));
        var bobHeard = WavFile.ReadMono48k(Assert.Single(Directory.GetFiles(_dir.Path, "bob-slot*.wav")));
        Assert.InRange(Spectrum.DominantFrequency(aliceHeard), 990, 1010);
        Assert.InRange(Spectrum.DominantFrequency(bobHeard), 435, 445);
    }

    /// <summary>
    /// The README's flow as a new user runs it, with the relay's production defaults: Alice sits alone in the room
    /// for longer than every timeout membership depends on (the room's 5 s rekey deadline, the gateway's 3 s member
    /// deadline, the 15 s gateway expiry, the room's 30 s gateway check), then Bob joins, and both talk for a minute.
    /// Before the fix the room evicted Alice 5 s after her join (her gateway never acknowledged her join epoch)
    /// and gave Bob her slot.
    /// </summary>
    [Fact]
    public async Task Cli_NewcomerFlow_MemberAloneLongerThanEveryTimeout_ThenASecondMember_TalkForAMinute()
    {
        var room = "newcomer-" + Guid.NewGuid().ToString("N");
        string[] Join(string name, int hz, int seconds) =>
        [
            "join", room, "--gateway", relay.Address.ToString(), "--pin", relay.ClusterFingerprint.ToString(),
            "--tone", hz.ToString(CultureInfo.InvariantCulture), "--record", _dir.File($"{name}.wav"),
            "--duration", seconds.ToString(CultureInfo.InvariantCulture), "--identity", _dir.File($"{name}.id"), "--alias", name,
        ];
        var alone = TimeSpan.FromSeconds(35);
        const int talkSeconds = 60;
        await using var alice = WzpProcess.Start(Join("alice", 440, (int)alone.TotalSeconds + talkSeconds + 10));
        await alice.WaitForLineAsync("joined '");
        await Task.Delay(alone);
        await using var bob = WzpProcess.Start(Join("bob", 1000, talkSeconds));
        var bobResult = await bob.ExitAsync(TimeSpan.FromSeconds(talkSeconds + 60));
        var aliceResult = await alice.ExitAsync(TimeSpan.FromSeconds(60));
        Assert.True(aliceResult.Code == 0, $"alice exit {aliceResult.Code}: {aliceResult.Error}\n{aliceResult.Out}");
        Assert.True(bobResult.Code == 0, $"bob exit {bobResult.Code}: {bobResult.Error}\n{bobResult.Out}");

        var aliceSlot = SlotOf(aliceResult.Out);
        var bobSlot = SlotOf(bobResult.Out);
        Assert.NotEqual(aliceSlot, bobSlot);
        // Each lists the other: Bob in the member list of his 'joined' (printed as a join), Alice through an update.
        Assert.Contains($"+ bob (slot {bobSlot}", aliceResult.Out, StringComparison.Ordinal);
        Assert.Contains($"+ alice (slot {aliceSlot}", bobResult.Out, StringComparison.Ordinal);
        // No spurious leave and re-join: Alice sees Bob arrive once and leave once, when his --duration ends.
        Assert.Equal(1, Occurrences(aliceResult.Out, "+ bob ("));
        Assert.Equal(1, Occurrences(aliceResult.Out, "- bob ("));
        Assert.Equal(0, Occurrences(bobResult.Out, "- alice ("));

        // Each heard the other for the whole minute (50 frames/s; a few frames of start-up are allowed).
        var aliceHeard = WavFile.ReadMono48k(_dir.File($"alice-slot{bobSlot}.wav"));
        var bobHeard = WavFile.ReadMono48k(_dir.File($"bob-slot{aliceSlot}.wav"));
        Assert.InRange(Spectrum.DominantFrequency(aliceHeard), 990, 1010);
        Assert.InRange(Spectrum.DominantFrequency(bobHeard), 435, 445);
        Assert.True(aliceHeard.Length >= (talkSeconds - 2) * 48_000, $"alice heard {aliceHeard.Length / 48_000.0:0.0} s of bob");
        Assert.True(bobHeard.Length >= (talkSeconds - 2) * 48_000, $"bob heard {bobHeard.Length / 48_000.0:0.0} s of alice");
        Assert.DoesNotContain("RekeyTimeout", relay.Output, StringComparison.Ordinal);
    }

    private static int Occurrences(string text, string value) =>
        System.Text.RegularExpressions.Regex.Count(text, System.Text.RegularExpressions.Regex.Escape(value));

    private static int SlotOf(string output)
    {
        var match = System.Text.RegularExpressions.Regex.Match(output, @"joined '[^']+' as slot (\d+)");
        Assert.True(match.Success, $"no 'joined' line in: {output}");
        return int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Cli_WrongPin_ExitsOneWithAReadableReason()
    {
        var result = await CliTests.RunProcessAsync("join", "r", "--gateway", relay.Address.ToString(), "--pin", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384",
            "--identity", _dir.File("id"), "--duration", "1");
        Assert.Equal(ExitCodes.Failure, result.Code);
        Assert.Equal($"wzp: the gateway belongs to cluster {relay.ClusterFingerprint}, not the pinned cluster 518e:b935:62fa:9e34:e59c:28b6:7fc2:d384; refusing to connect",
            result.Error.Trim());
    }

    [Fact]
    public async Task TrustOnFirstUse_AgainstTheRelay_RecordsThenRefusesAChangedKey()
    {
        var options = Options("tofu", "t");
        options.PinnedClusterFingerprint = null;
        options.KnownClustersPath = _dir.File("known_clusters");
        await using (var first = await WzpClient.ConnectAsync(options)) Assert.Equal(TrustDecision.FirstUse, first.Trust);
        File.WriteAllText(options.KnownClustersPath, $"{relay.Address} 518e:b935:62fa:9e34:e59c:28b6:7fc2:d384\n");
        await Assert.ThrowsAsync<ClusterKeyChangedException>(() => WzpClient.ConnectAsync(options));
    }

    [Fact]
    public async Task Cli_RelayOnAPortInUse_ExitsOneWithOneLine()
    {
        var result = await CliTests.RunProcessAsync("relay", "--listen", relay.Address.ToString(), "--data-dir", _dir.File("second"),
            "--silo-port", RelayFixture.FreePort(SocketType.Stream, ProtocolType.Tcp).ToString(CultureInfo.InvariantCulture),
            "--orleans-port", RelayFixture.FreePort(SocketType.Stream, ProtocolType.Tcp).ToString(CultureInfo.InvariantCulture),
            "--admin-listen", $"127.0.0.1:{RelayFixture.FreePort(SocketType.Stream, ProtocolType.Tcp).ToString(CultureInfo.InvariantCulture)}");
        Assert.Equal(ExitCodes.Failure, result.Code);
        var line = Assert.Single(result.Error.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("wzp: the relay cannot start: ", line);
    }

    /// <summary>Speech from espeak-ng at 22.05 kHz, read as 48 kHz mono; skips the test where espeak-ng is absent.</summary>
    private (short[] Samples, string Path) Speech(string text)
    {
        var path = _dir.File(Guid.NewGuid().ToString("N") + ".wav");
        try
        {
            using var process = Process.Start(new ProcessStartInfo("espeak-ng", ["-w", path, text]) { UseShellExecute = false, RedirectStandardError = true })!;
            process.WaitForExit(TimeSpan.FromSeconds(30));
            Assert.Equal(0, process.ExitCode);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new SkipException("espeak-ng is not installed (Debian: apt-get install espeak-ng); CI installs it");
        }
        return (WavFile.ReadMono48k(path), path);
    }

    /// <summary>
    /// Sends comfort-noise probes until the other side has heard one (the room's routing reached the gateway), then
    /// the speech in real time; returns what decoding the sent Opus frames locally gives.
    /// </summary>
    private static async Task<(int Frames, short[] Decoded)> SpeakAsync(WzpClient client, short[] speech, Func<bool> heard)
    {
        ushort sequence = 0;
        using var ticker = new PeriodicTimer(TimeSpan.FromMilliseconds(VoiceFormat.FrameMilliseconds));
        var probe = new MediaHeader(false, false, CodecId.ComfortNoise, false, 0, 0, 0, 0, 0, 0, 0);
        while (!heard())
        {
            client.TrySend(probe with { Sequence = sequence++ }, [0]);
            await ticker.WaitForNextTickAsync();
        }
        using var encoder = new OpusFrameEncoder();
        using var decoder = new OpusFrameDecoder();
        var decoded = new List<short>();
        var frame = new short[VoiceFormat.FrameSamples];
        var frames = 0;
        for (var offset = 0; offset < speech.Length; offset += frame.Length)
        {
            Array.Clear(frame);
            speech.AsSpan(offset, Math.Min(frame.Length, speech.Length - offset)).CopyTo(frame);
            var payload = encoder.Encode(frame);
            decoded.AddRange(decoder.Decode(payload));
            Assert.True(client.TrySend(new MediaHeader(false, false, encoder.Codec, false, 0, sequence++, (uint)(frames * 20), 0, 0, 0, 0), payload));
            frames++;
            await ticker.WaitForNextTickAsync();
        }
        return (frames, decoded.ToArray());
    }

    private static Heard Collect(WzpClient client, int from)
    {
        var heard = new Heard();
        _ = Task.Run(async () =>
        {
            await foreach (var frame in client.ReceiveAsync())
            {
                if (frame.Source != from) continue;
                if (frame.Header.Codec == CodecId.ComfortNoise) heard.Warm = true;
                else heard.Add(frame);
            }
        });
        return heard;
    }

    private sealed class Heard
    {
        private readonly ConcurrentQueue<MediaFrame> _frames = new();

        public volatile bool Warm;

        public int Count => _frames.Count;

        public void Add(MediaFrame frame) => _frames.Enqueue(frame);

        /// <summary>Decodes in sequence order, as a receiver's jitter buffer would.</summary>
        public short[] Decode()
        {
            using var decoder = new OpusFrameDecoder();
            return [.. _frames.OrderBy(f => f.Header.Sequence).SelectMany(f => decoder.Decode(f.Payload.Span))];
        }
    }
}

/// <summary>A <c>wzp</c> process whose output can be awaited line by line.</summary>
internal sealed class WzpProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _out = new();
    private readonly ConcurrentQueue<string> _error = new();
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();

    private WzpProcess(Process process) => _process = process;

    public static WzpProcess Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "wzp.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        var process = new Process { StartInfo = start };
        var wzp = new WzpProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            wzp._out.Enqueue(e.Data);
            wzp._lines.Writer.TryWrite(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) wzp._error.Enqueue(e.Data);
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return wzp;
    }

    public async Task WaitForLineAsync(string prefix)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await foreach (var line in _lines.Reader.ReadAllAsync(timeout.Token))
                if (line.StartsWith(prefix, StringComparison.Ordinal)) return;
        }
        catch (OperationCanceledException)
        {
        }
        Assert.Fail($"no line starting with '{prefix}'; output: {string.Join('\n', _out)}; errors: {string.Join('\n', _error)}");
    }

    public Task<(int Code, string Out, string Error)> ExitAsync() => ExitAsync(TimeSpan.FromMinutes(1));

    public async Task<(int Code, string Out, string Error)> ExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        _process.WaitForExit(); // flushes the asynchronous output readers
        return (_process.ExitCode, string.Join('\n', _out), string.Join('\n', _error));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
