using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Wzp.Client;
using Wzp.Client.Audio;
using Wzp.Protocol;

namespace Wzp.Cli;

/// <summary><c>wzp join ROOM</c>: join a room, send a WAV file or a tone, record every other member to a WAV per sender.</summary>
internal static class JoinCommand
{
    public static Command Create(CliConsole console)
    {
        var room = new Argument<string>("ROOM") { Description = "Room to join (1 to 128 characters)." };
        var gateway = new Option<string[]>("--gateway", "-g")
        {
            Description = "Gateway as host:port ([v6]:port for IPv6). Repeat it (or separate with commas) to name several " +
                "gateways of one cluster: the next is tried when one cannot be reached or its connection is lost; a host " +
                "name is tried at every address it resolves to. The default is the relay of 'wzp relay'.",
            DefaultValueFactory = _ => [GatewayAddress.Default.ToString()],
            AllowMultipleArgumentsPerToken = false,
        };
        var pin = new Option<string?>("--pin")
        {
            Description = "Cluster fingerprint the gateway must prove (printed by 'wzp relay' and 'wzp cluster init'). " +
                "Without it the first cluster seen is trusted and recorded in the known-clusters file, and a later change is refused.",
        };
        var send = new Option<string?>("--send") { Description = "WAV file to speak (16-bit PCM, mono or stereo, any rate: converted to 48 kHz mono)." };
        var tone = new Option<double?>("--tone") { Description = "Send a sine tone of this frequency in Hz (20 to 20000) instead of a file." };
        var record = new Option<string?>("--record", "-r")
        {
            Description = "Record what others say, one WAV per sender (48 kHz mono): OUT.wav becomes OUT-slot3.wav for the member in slot 3.",
        };
        var duration = new Option<double?>("--duration", "-t")
        {
            Description = "Seconds to stay in the room (counted from when sending starts). Default: with --send until the file is sent, otherwise until Ctrl+C.",
        };
        var identity = new Option<string>("--identity", "-i")
        {
            Description = $"Identity seed file; created on first use.",
            DefaultValueFactory = _ => WzpPaths.DefaultIdentityPath,
        };
        var alias = new Option<string>("--alias", "-a")
        {
            Description = "Name shown to the other members (up to 64 characters).",
            DefaultValueFactory = _ => Environment.UserName.Length <= HelloLimits.MaxAliasLength ? Environment.UserName : "",
        };
        var bitrate = new Option<int>("--bitrate")
        {
            Description = "Opus bitrate in kbit/s: 6, 16, 24, 32, 48 or 64.",
            DefaultValueFactory = _ => 24,
        };
        var waitFor = new Option<int>("--wait-for")
        {
            Description = "Start sending only once this many other members are in the room.",
            DefaultValueFactory = _ => 0,
        };
        var knownClusters = new Option<string>("--known-clusters")
        {
            Description = $"Trust-on-first-use file.",
            DefaultValueFactory = _ => KnownClusters.DefaultPath,
        };
        var acceptChanged = new Option<bool>("--accept-changed-cluster-key")
        {
            Description = "Accept and record a cluster key that differs from the recorded one. Only after the operator announced a key change.",
        };
        var token = new Option<string>("--token") { Description = "Access token or grant (from 'wzp grant issue'), for gateways that require one; sent only once the gateway proved it belongs to the trusted cluster.", DefaultValueFactory = _ => "" };
        var command = new Command("join",
            "Join a room through a gateway: sends 48 kHz mono speech as Opus in 20 ms frames (from --send or --tone), " +
            "records each other member to its own WAV (--record), and shows members and live statistics.")
        {
            room, gateway, pin, send, tone, record, duration, identity, alias, bitrate, waitFor, knownClusters, acceptChanged, token,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(send) is not null && result.GetValue(tone) is not null) result.AddError("give --send or --tone, not both");
            if (result.GetValue(tone) is { } hz && hz is < 20 or > 20_000) result.AddError("--tone must be 20 to 20000 Hz");
            if (result.GetValue(duration) is { } s && (s <= 0 || s > 86_400)) result.AddError("--duration must be more than 0 and at most 86400 seconds");
            // Only what the user typed: defaults are valid, and absent when another error stopped the parse.
            if (result.GetResult(bitrate) is { Implicit: false } && !OpusCodecs.SupportedKbps.Contains(result.GetValue(bitrate)))
                result.AddError("--bitrate must be 6, 16, 24, 32, 48 or 64");
            if (result.GetResult(waitFor) is { Implicit: false } && result.GetValue(waitFor) < 0) result.AddError("--wait-for must be 0 or more");
            if (result.GetResult(room) is { Implicit: false } && !HelloLimits.IsValidRoom(result.GetValue(room)))
                result.AddError("ROOM must be 1 to 128 characters without control characters");
            if (result.GetResult(alias) is { Implicit: false } && !HelloLimits.IsValidAlias(result.GetValue(alias)))
                result.AddError("--alias must be at most 64 characters without control characters");
            if (result.GetResult(gateway) is { Implicit: false } && ParseGateways(result.GetValue(gateway)) is null)
                result.AddError("--gateway must be host:port (or several, repeated or separated by commas)");
            if (result.GetValue(pin) is { } p && !Fingerprint.TryParse(p, out _)) result.AddError("--pin must be a fingerprint: 32 hex digits, optionally in groups of 4 joined by ':'");
        });
        command.SetAction((parse, cancellationToken) =>
        {
            var settings = new JoinSettings(
                parse.GetValue(room)!,
                ParseGateways(parse.GetValue(gateway)) ?? [GatewayAddress.Default],
                parse.GetValue(pin) is { } p ? Fingerprint.Parse(p) : null,
                parse.GetValue(send),
                parse.GetValue(tone),
                parse.GetValue(record),
                parse.GetValue(duration) is { } d ? TimeSpan.FromSeconds(d) : null,
                parse.GetValue(identity)!,
                parse.GetValue(alias) ?? "",
                parse.GetValue(bitrate),
                parse.GetValue(waitFor),
                parse.GetValue(knownClusters)!,
                parse.GetValue(acceptChanged),
                parse.GetValue(token) ?? "");
            return RunAsync(settings, console, cancellationToken);
        });
        return command;
    }

    private sealed record JoinSettings(
        string Room, IReadOnlyList<GatewayAddress> Gateways, Fingerprint? Pin, string? SendFile, double? ToneHz, string? RecordPath, TimeSpan? Duration,
        string IdentityPath, string Alias, int Kbps, int WaitFor, string KnownClustersPath, bool AcceptChangedKey, string Token);

    private static async Task<int> RunAsync(JoinSettings settings, CliConsole console, CancellationToken cancellationToken)
    {
        // Read everything the user named before touching the network: a bad file fails fast.
        var speech = settings.SendFile is { } file ? WavFile.ReadMono48k(file) : null;
        if (settings.RecordPath is { } recordPath) EnsureWritable(recordPath);
        using var identity = SeedFile.LoadOrCreate(settings.IdentityPath, out var created);
        if (created) console.Out.WriteLine($"created identity {settings.IdentityPath} ({identity.Fingerprint})");
        if (PrivateFile.IsExposed(settings.IdentityPath))
            console.Error.WriteLine($"warning: identity seed {settings.IdentityPath} can be read or written by other users; anyone who read it can act as you (chmod 600 it, and consider a new identity)");

        console.Out.WriteLine($"joining '{settings.Room}' through {string.Join(", ", settings.Gateways)} ...");
        await using var client = await WzpClient.ConnectAsync(new WzpClientOptions
        {
            Gateway = settings.Gateways[0],
            AlternateGateways = [.. settings.Gateways.Skip(1)],
            Identity = identity,
            Room = settings.Room,
            Alias = settings.Alias,
            Token = settings.Token,
            PinnedClusterFingerprint = settings.Pin,
            KnownClustersPath = settings.KnownClustersPath,
            AllowClusterKeyChange = settings.AcceptChangedKey,
        }, cancellationToken).ConfigureAwait(false);
        var trust = client.Trust switch
        {
            TrustDecision.Pinned => "pinned",
            TrustDecision.FirstUse => $"trusted on first use, recorded in {settings.KnownClustersPath}",
            TrustDecision.Replaced => $"CHANGED, accepted as asked, recorded in {settings.KnownClustersPath}",
            _ => "known",
        };
        console.Out.WriteLine($"joined '{client.Room}' as slot {client.Slot} via gateway '{client.GatewayId}'; cluster {client.ClusterFingerprint} ({trust}); SAS {client.Sas}");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var recorder = settings.RecordPath is { } path ? VoiceRecorder.ForPath(path) : null;
        var session = new JoinSession(client, recorder);
        var members = Task.Run(() => session.WatchMembersAsync(console, stop.Token), CancellationToken.None);
        var receive = Task.Run(() => session.ReceiveAsync(stop.Token), CancellationToken.None);
        var sendTask = Task.Run(() => session.SendAsync(settings, speech, stop.Token), CancellationToken.None);
        var display = console.IsInteractive ? session.ShowLiveAsync(stop.Token) : Task.CompletedTask;

        Exception? failure = null;
        var finished = await Task.WhenAny(sendTask, client.Completion).ConfigureAwait(false);
        if (finished == client.Completion && client.Completion.IsFaulted) failure = client.Completion.Exception!.InnerException;
        else if (sendTask.IsFaulted) failure = sendTask.Exception!.InnerException;
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(members, receive, display).ConfigureAwait(false);
        await client.LeaveAsync(CancellationToken.None).ConfigureAwait(false);
        // Receive ends after leave completes the frame channel; every frame that arrived is recorded.
        await session.DrainAsync().ConfigureAwait(false);
        recorder?.Dispose();
        session.PrintSummary(console);
        if (failure is not null) throw failure;
        // Ctrl+C is how a join without --duration ends: a clean leave, not a failure.
        return ExitCodes.Success;
    }

    /// <summary>Every address of <c>--gateway</c> (repeated, or comma-separated), or null when one does not parse.</summary>
    private static List<GatewayAddress>? ParseGateways(string[]? values)
    {
        var addresses = new List<GatewayAddress>();
        foreach (var text in (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (!GatewayAddress.TryParse(text, out var address)) return null;
            addresses.Add(address.Value);
        }
        return addresses.Count > 0 ? addresses : null;
    }

    /// <summary>Fails before joining when recordings could not be written beside <paramref name="path"/>.</summary>
    private static void EnsureWritable(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var probe = Path.Combine(directory, $".wzp-probe-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(directory);
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AudioFileException($"cannot record to '{path}': {e.Message}", e);
        }
    }

    /// <summary>The running parts of one join: sending, receiving, recording and the member list.</summary>
    private sealed class JoinSession(WzpClient client, VoiceRecorder? recorder)
    {
        private readonly ConcurrentDictionary<int, long> _framesBySlot = new();
        private readonly Lock _recordLock = new();
        private long _framesSent;
        private long _framesNotSent;

        public async Task WatchMembersAsync(CliConsole console, CancellationToken cancellationToken)
        {
            try
            {
                await foreach (var change in client.MemberEvents.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    if (console.IsInteractive) continue; // the live table shows members
                    console.Out.WriteLine(change.Kind switch
                    {
                        MemberEventKind.Joined => $"+ {change.Member} joined",
                        MemberEventKind.Left => $"- {change.Member} left",
                        _ => $"~ {change.Member} {(change.Member.Muted ? "is muted" : "is not muted")}",
                    });
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async Task ReceiveAsync(CancellationToken cancellationToken)
        {
            try
            {
                await foreach (var frame in client.ReceiveAsync(cancellationToken).ConfigureAwait(false)) Record(frame);
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async Task DrainAsync()
        {
            await foreach (var frame in client.ReceiveAsync().ConfigureAwait(false)) Record(frame);
        }

        private void Record(MediaFrame frame)
        {
            _framesBySlot.AddOrUpdate(frame.Source, 1, (_, n) => n + 1);
            lock (_recordLock) recorder?.Record(frame);
        }

        public async Task SendAsync(JoinSettings settings, short[]? speech, CancellationToken cancellationToken)
        {
            try
            {
                // Polled rather than read from MemberEvents: that channel has one reader, the member display.
                while (client.Others.Count < settings.WaitFor) await Task.Delay(50, cancellationToken).ConfigureAwait(false);
                var tone = settings.ToneHz is { } hz ? new ToneGenerator(hz) : null;
                if (speech is null && tone is null)
                {
                    // Listen only: stay for the duration, or until Ctrl+C.
                    await Task.Delay(settings.Duration ?? Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
                    return;
                }
                using var sender = new VoiceSender(client, settings.Kbps);
                var clock = Stopwatch.StartNew();
                var started = Stopwatch.StartNew();
                var origin = 0L;
                var step = TimeSpan.FromMilliseconds(VoiceFormat.FrameMilliseconds);
                // A tone lasts the duration; a file lasts its length (and the duration, if longer, is spent listening).
                var total = tone is not null ? long.MaxValue : (speech!.Length + VoiceFormat.FrameSamples - 1) / VoiceFormat.FrameSamples;
                if (settings.Duration is { } cap) total = Math.Min(total, (long)Math.Ceiling(cap / step));
                var frame = new short[VoiceFormat.FrameSamples];
                for (long n = 0; n < total; n++)
                {
                    if (tone is not null) tone.Fill(frame);
                    else
                    {
                        Array.Clear(frame);
                        var offset = (int)(n * VoiceFormat.FrameSamples);
                        speech.AsSpan(offset, Math.Min(frame.Length, speech!.Length - offset)).CopyTo(frame);
                    }
                    Count(sender.Send(frame).Sent);
                    // Real time: frame n+1 is due at (n+1) x 20 ms. Behind schedule (a loaded machine), the next frames go
                    // out at once to catch up; only after a stall of seconds does the schedule restart from now.
                    var wait = (n + 1 - origin) * step - clock.Elapsed;
                    if (wait > TimeSpan.Zero) await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                    else if (wait < TimeSpan.FromSeconds(-2))
                    {
                        origin = n + 1;
                        clock.Restart();
                    }
                }
                if (settings.Duration is { } limit && started.Elapsed < limit)
                    await Task.Delay(limit - started.Elapsed, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }
        }

        private void Count(bool sent)
        {
            if (sent) Interlocked.Increment(ref _framesSent);
            else Interlocked.Increment(ref _framesNotSent);
        }

        public async Task ShowLiveAsync(CancellationToken cancellationToken)
        {
            var table = new Table().AddColumns("slot", "member", "fingerprint", "frames heard");
            await AnsiConsole.Live(table).AutoClear(false).StartAsync(async context =>
            {
                try
                {
                    while (!cancellationToken.IsCancellationRequested)
                    {
                        Render(table);
                        context.Refresh();
                        await Task.Delay(500, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException)
                {
                }
                Render(table);
                context.Refresh();
            }).ConfigureAwait(false);
        }

        private void Render(Table table)
        {
            table.Rows.Clear();
            foreach (var member in client.Members)
            {
                var self = member.Slot == client.Slot;
                table.AddRow(
                    member.Slot.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(member.Alias + (self ? " (you)" : "")),
                    member.Fingerprint.ToString(),
                    self ? "" : _framesBySlot.GetValueOrDefault(member.Slot).ToString(CultureInfo.InvariantCulture));
            }
            var s = client.GetStatistics();
            table.Caption(new TableTitle(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"{client.State} | rtt {s.SmoothedRtt.TotalMilliseconds:0.0} ms | sent {s.DatagramsSent} (dropped {s.SendDropped}) | " +
                $"received {s.FramesDelivered} (dropped {s.DroppedTotal}) | epoch {s.Epoch} | reconnects {s.Reconnects}"))));
        }

        public void PrintSummary(CliConsole console)
        {
            var s = client.GetStatistics();
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sent {Interlocked.Read(ref _framesSent)} frames ({Interlocked.Read(ref _framesNotSent)} not sent); received {s.FramesDelivered} frames " +
                $"(dropped: {s.DroppedMalformed} malformed, {s.DroppedUnknownEpoch} unknown epoch, {s.DroppedAuthentication} forged, {s.DroppedReplay} replayed, " +
                $"{s.DroppedUnread} unread); epoch {s.Epoch}, {s.Rekeys} rekeys, {s.Reconnects} reconnects"));
            foreach (var (slot, frames) in _framesBySlot.OrderBy(p => p.Key))
                console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"heard slot {slot}: {frames} frames"));
            if (recorder is not null)
            {
                foreach (var (slot, file) in recorder.Files.OrderBy(p => p.Key))
                    console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"recorded slot {slot} to {file}"));
                if (recorder.Files.Count == 0) console.Out.WriteLine("recorded nothing: nobody else spoke");
            }
        }
    }
}
