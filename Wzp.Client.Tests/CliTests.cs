using System.Diagnostics;
using Wzp.Cli;
using Wzp.Protocol;

namespace Wzp.Client.Tests;

/// <summary>The <c>wzp</c> command through its entry point (in-process, fast) and as a real process.</summary>
public sealed class CliTests
{
    private const string Seed42 = "4242424242424242424242424242424242424242424242424242424242424242";
    private const string Seed42Fingerprint = "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384";

    internal static async Task<(int Code, string Out, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await WzpCommand.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static void AssertOneLineFailure((int Code, string Out, string Error) result, string contains, int code = ExitCodes.Failure)
    {
        Assert.Equal(code, result.Code);
        var lines = result.Error.TrimEnd('\n').Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("wzp: ", lines[0]);
        Assert.Contains(contains, lines[0]);
        Assert.DoesNotContain("   at ", result.Error);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("join", "--help")]
    [InlineData("keygen", "--help")]
    [InlineData("fingerprint", "--help")]
    [InlineData("cluster", "--help")]
    [InlineData("cluster", "issue", "--help")]
    [InlineData("relay", "--help")]
    public async Task Help_ExitsZeroWithUsage(params string[] args)
    {
        var (code, output, _) = await RunAsync(args);
        Assert.Equal(0, code);
        Assert.Contains("Usage:", output);
    }

    [Fact]
    public async Task Fingerprint_OfSeed42_IsTheKnownOne()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("id"), Seed42 + "\n");
        var (code, output, _) = await RunAsync("fingerprint", "--identity", dir.File("id"));
        Assert.Equal(0, code);
        Assert.Equal(Seed42Fingerprint, output.Trim());
    }

    [Fact]
    public async Task Keygen_CreatesASeedFileWhoseFingerprintItPrints_AndNeverOverwrites()
    {
        using var dir = new TempDirectory();
        var path = dir.File("keys/me");
        var (code, output, _) = await RunAsync("keygen", "--out", path);
        Assert.Equal(0, code);
        using var identity = SeedFile.Load(path);
        Assert.Contains(identity.Fingerprint.ToString(), output);
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var before = File.ReadAllText(path);
        AssertOneLineFailure(await RunAsync("keygen", "--out", path), "already exists");
        Assert.Equal(before, File.ReadAllText(path));
    }

    [Fact]
    public async Task Fingerprint_MissingOrMalformedFile_FailsWithOneLine()
    {
        using var dir = new TempDirectory();
        AssertOneLineFailure(await RunAsync("fingerprint", "--identity", dir.File("none")), "no identity");
        File.WriteAllText(dir.File("bad"), "xyz");
        AssertOneLineFailure(await RunAsync("fingerprint", "--identity", dir.File("bad")), "malformed");
    }

    [Fact]
    public async Task ClusterIssue_OutputVerifiesAgainstTheClusterKey()
    {
        using var dir = new TempDirectory();
        var (initCode, initOut, _) = await RunAsync("cluster", "init", "--dir", dir.File("cluster"));
        Assert.Equal(0, initCode);
        using var cluster = SeedFile.Load(dir.File("cluster/cluster.seed"));
        Assert.Contains(cluster.Fingerprint.ToString(), initOut);
        using var gateway = Identity.Generate();

        var (code, output, _) = await RunAsync("cluster", "issue", "--dir", dir.File("cluster"), "--gateway-id", "gw-7",
            "--gateway-key", Convert.ToHexString(gateway.PublicKey), "--days", "3");
        Assert.Equal(0, code);
        var credential = GatewayCredential.FromJson(output);
        Assert.Equal(CredentialStatus.Valid, credential.Verify(cluster.PublicKey, DateTimeOffset.UtcNow));
        Assert.Equal("gw-7", credential.GatewayId);
        Assert.Equal(gateway.PublicKey, credential.GatewayKey);
        Assert.Equal(CredentialStatus.Expired, credential.Verify(cluster.PublicKey, DateTimeOffset.UtcNow.AddDays(4)));
    }

    [Fact]
    public async Task ClusterIssue_FromIdentityFile_ToFile()
    {
        using var dir = new TempDirectory();
        await RunAsync("cluster", "init", "--dir", dir.File("c"));
        File.WriteAllText(dir.File("gw.key"), Seed42);
        var (code, _, _) = await RunAsync("cluster", "issue", "--dir", dir.File("c"), "--gateway-id", "g", "--gateway-identity", dir.File("gw.key"),
            "--out", dir.File("cred.json"));
        Assert.Equal(0, code);
        var credential = GatewayCredential.FromJson(File.ReadAllText(dir.File("cred.json")));
        Assert.Equal(Seed42Fingerprint, Fingerprint.Of(credential.GatewayKey).ToString());
    }

    [Fact]
    public async Task ClusterInit_Twice_KeepsTheKey()
    {
        using var dir = new TempDirectory();
        await RunAsync("cluster", "init", "--dir", dir.Path);
        var key = File.ReadAllText(dir.File("cluster.seed"));
        var (code, output, _) = await RunAsync("cluster", "init", "--dir", dir.Path);
        Assert.Equal(0, code);
        Assert.Contains("already exists", output);
        Assert.Equal(key, File.ReadAllText(dir.File("cluster.seed")));
    }

    [Fact]
    public async Task ClusterIssue_WithoutClusterKey_FailsWithOneLine()
    {
        using var dir = new TempDirectory();
        AssertOneLineFailure(await RunAsync("cluster", "issue", "--dir", dir.Path, "--gateway-id", "g", "--gateway-key", new string('a', 64)),
            "cluster init");
    }

    [Theory]
    [InlineData("cluster issue --gateway-id g", "exactly one of")]
    [InlineData("cluster issue --gateway-key aa", "--gateway-id")]
    [InlineData("join", "Required argument missing")]
    [InlineData("join r --tone 5", "--tone")]
    [InlineData("join r --tone 440 --send x.wav", "not both")]
    [InlineData("join r --bitrate 7", "--bitrate")]
    [InlineData("join r --pin nothex", "--pin")]
    [InlineData("join r --gateway host:notaport", "--gateway")]
    [InlineData("join r --duration -1", "--duration")]
    [InlineData("nonsense", "nonsense")]
    public async Task BadArguments_ExitTwoWithOneLine(string commandLine, string contains)
    {
        AssertOneLineFailure(await RunAsync(commandLine.Split(' ')), contains, ExitCodes.Usage);
    }

    [Fact]
    public async Task ClusterIssue_MalformedKeyHex_ExitsTwo()
    {
        using var dir = new TempDirectory();
        await RunAsync("cluster", "init", "--dir", dir.Path);
        AssertOneLineFailure(await RunAsync("cluster", "issue", "--dir", dir.Path, "--gateway-id", "g", "--gateway-key", "zz"), "64 hex", ExitCodes.Usage);
    }

    [Fact]
    public async Task Join_UnwritableRecording_FailsBeforeConnecting()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("file"), "");
        AssertOneLineFailure(await RunAsync("join", "r", "--record", dir.File("file/out.wav"), "--identity", dir.File("id"),
            "--known-clusters", dir.File("kc")), "cannot record to");
    }

    [Fact]
    public async Task Join_UnreadableWav_FailsBeforeConnecting()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("x.wav"), "nope");
        AssertOneLineFailure(await RunAsync("join", "r", "--send", dir.File("x.wav"), "--identity", dir.File("id"),
            "--known-clusters", dir.File("kc")), "not a WAV file");
    }

    [Theory]
    [InlineData("relay --listen nowhere", "--listen")]
    [InlineData("relay --silo-port 0", "--silo-port")]
    public async Task Relay_BadArguments_ExitTwoWithOneLine(string commandLine, string contains)
    {
        AssertOneLineFailure(await RunAsync(commandLine.Split(' ')), contains, ExitCodes.Usage);
    }

    [Fact]
    public async Task AsAProcess_HelpExitsZero_AndBadArgumentsExitTwoWithoutAStackTrace()
    {
        var help = await RunProcessAsync("--help");
        Assert.Equal(0, help.Code);
        Assert.Contains("join", help.Out);
        var bad = await RunProcessAsync("join");
        Assert.Equal(ExitCodes.Usage, bad.Code);
        Assert.Single(bad.Error.TrimEnd('\n').Split('\n'));
    }

    /// <summary>Runs the built <c>wzp</c> (wzp.dll beside the tests) with <c>dotnet</c>.</summary>
    internal static async Task<(int Code, string Out, string Error)> RunProcessAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "wzp.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        return (process.ExitCode, await output, await error);
    }
}

/// <summary><c>wzp join</c> end to end against the in-process fake gateway over real QUIC.</summary>
[Collection(SocketCollection.Name)]
public sealed class JoinCommandTests
{
    [Fact]
    public async Task TwoJoins_ExchangeTones_AndRecordEachOtherToWavPerSender()
    {
        using var dir = new TempDirectory();
        await using var gateway = FakeGateway.Start();
        string[] Join(string name, int hz) =>
        [
            "join", "tones", "--gateway", gateway.Address.ToString(), "--tone", hz.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--record", dir.File($"{name}.wav"), "--duration", "2", "--wait-for", "1", "--identity", dir.File($"{name}.id"),
            "--alias", name, "--known-clusters", dir.File("known_clusters"),
        ];
        using StringWriter aliceOut = new(), aliceError = new(), bobOut = new(), bobError = new();
        var alice = WzpCommand.RunAsync(Join("alice", 440), aliceOut, aliceError);
        var bob = WzpCommand.RunAsync(Join("bob", 1000), bobOut, bobError);
        try
        {
            await Task.WhenAll(alice, bob).WaitAsync(TimeSpan.FromMinutes(1));
        }
        catch (TimeoutException)
        {
            Assert.Fail($"joins did not end; alice: {aliceOut}{aliceError}; bob: {bobOut}{bobError}");
        }
        var results = new[] { (await alice, aliceOut.ToString(), aliceError.ToString()), (await bob, bobOut.ToString(), bobError.ToString()) };
        Assert.All(results, r => Assert.True(r.Item1 == 0, r.Item3 + r.Item2));

        var aliceHeard = Assert.Single(Directory.GetFiles(dir.Path, "alice-slot*.wav"));
        var bobHeard = Assert.Single(Directory.GetFiles(dir.Path, "bob-slot*.wav"));
        Assert.InRange(Spectrum.DominantFrequency(Audio.WavFile.ReadMono48k(aliceHeard)), 990, 1010);
        Assert.InRange(Spectrum.DominantFrequency(Audio.WavFile.ReadMono48k(bobHeard)), 435, 445);
        Assert.Contains("joined 'tones' as slot", results[0].Item2);
        Assert.Contains("+ bob", results[0].Item2);
        Assert.Contains("recorded slot", results[1].Item2);
    }

    [Fact]
    public async Task ToneWithoutDuration_RunsUntilInterrupted_ThenLeavesCleanly()
    {
        using var dir = new TempDirectory();
        await using var gateway = FakeGateway.Start();
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var interrupt = new CancellationTokenSource();
        var join = WzpCommand.RunAsync(["join", "r", "--gateway", gateway.Address.ToString(), "--tone", "440", "--identity", dir.File("id"),
            "--known-clusters", dir.File("kc")], output, error, interrupt.Token);
        var session = await gateway.NextSessionAsync();
        await session.Uplink.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        await interrupt.CancelAsync();
        Assert.Equal(0, await join.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("", error.ToString());
        // Pings may come first on a slow machine.
        while (await session.Messages.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)) is not Protocol.Leave)
        {
        }
    }

    [Fact]
    public async Task WrongPin_ExitsOneWithAReadableReason()
    {
        using var dir = new TempDirectory();
        await using var gateway = FakeGateway.Start();
        var (code, _, error) = await CliTests.RunAsync("join", "r", "--gateway", gateway.Address.ToString(), "--pin", "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384",
            "--identity", dir.File("id"), "--tone", "440", "--duration", "1");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Equal($"wzp: the gateway belongs to cluster {gateway.Cluster.Fingerprint}, not the pinned cluster 518e:b935:62fa:9e34:e59c:28b6:7fc2:d384; refusing to connect",
            error.Trim());
    }

    [Fact]
    public async Task ChangedClusterKey_ExitsOneWithAWarning()
    {
        using var dir = new TempDirectory();
        await using var gateway = FakeGateway.Start();
        File.WriteAllText(dir.File("kc"), $"{gateway.Address} 518e:b935:62fa:9e34:e59c:28b6:7fc2:d384\n");
        var (code, _, error) = await CliTests.RunAsync("join", "r", "--gateway", gateway.Address.ToString(), "--known-clusters", dir.File("kc"),
            "--identity", dir.File("id"), "--duration", "1");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.StartsWith("wzp: WARNING: the cluster key of", error);
        Assert.Single(error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public async Task RoomFull_ExitsOneWithTheGatewaysReason()
    {
        using var dir = new TempDirectory();
        await using var gateway = FakeGateway.Start();
        gateway.JoinAdmission = _ => new Protocol.Error(Protocol.ErrorCodes.RoomFull, "room 'r' is full");
        var (code, _, error) = await CliTests.RunAsync("join", "r", "--gateway", gateway.Address.ToString(), "--known-clusters", dir.File("kc"),
            "--identity", dir.File("id"), "--duration", "1");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Equal("wzp: gateway refused: room-full: room 'r' is full", error.Trim());
    }
}
