using System.CommandLine;
using System.Globalization;
using Wzp.Client;
using Wzp.Protocol;

namespace Wzp.Cli;

/// <summary><c>wzp keygen</c>, <c>wzp fingerprint</c>, <c>wzp cluster init</c> and <c>wzp cluster issue</c>.</summary>
internal static class KeyCommands
{
    /// <summary>The cluster key's seed file inside a cluster directory; the name the gateway uses too, so the relay's data directory is a cluster directory.</summary>
    public const string ClusterKeyFileName = "cluster.seed";

    public static string DefaultClusterDirectory => Path.Combine(WzpPaths.ConfigDirectory, "cluster");

    public static Command Keygen(CliConsole console)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = $"Seed file to create (64 hex digits, mode 0600).",
            DefaultValueFactory = _ => WzpPaths.DefaultIdentityPath,
        };
        var command = new Command("keygen", "Create a new identity (an Ed25519 key from a 32-byte seed) and print its fingerprint. Never overwrites a file.")
        {
            output,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(output)!;
            if (File.Exists(path)) throw new CliFailureException($"'{path}' already exists; refusing to overwrite an identity (use 'wzp fingerprint --identity {path}' to show it)");
            using var identity = SeedFile.LoadOrCreate(path, out _);
            console.Out.WriteLine($"created identity {path}");
            console.Out.WriteLine(identity.Fingerprint.ToString());
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command FingerprintCommand(CliConsole console)
    {
        var identityOption = new Option<string>("--identity", "-i")
        {
            Description = $"Seed file of the identity (or of a cluster key).",
            DefaultValueFactory = _ => WzpPaths.DefaultIdentityPath,
        };
        var command = new Command("fingerprint", "Print the fingerprint of an identity seed file (8 groups of 4 hex digits).")
        {
            identityOption,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(identityOption)!;
            if (!File.Exists(path)) throw new CliFailureException($"no identity at '{path}' (create one with 'wzp keygen --out {path}')");
            using var identity = SeedFile.Load(path);
            console.Out.WriteLine(identity.Fingerprint.ToString());
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command Cluster(CliConsole console)
    {
        var command = new Command("cluster", "Manage the cluster key that signs gateway credentials (scale-out deployments).");
        command.Subcommands.Add(ClusterInit(console));
        command.Subcommands.Add(ClusterIssue(console));
        command.Subcommands.Add(ClusterTls(console));
        return command;
    }

    private static Option<string> DirectoryOption() => new("--dir", "-d")
    {
        Description = $"Directory of the cluster key ({ClusterKeyFileName}); the data directory of 'wzp relay' ({RelayCommand.DefaultDataDirectory}) is one.",
        DefaultValueFactory = _ => DefaultClusterDirectory,
    };

    private static Command ClusterInit(CliConsole console)
    {
        var directory = DirectoryOption();
        var command = new Command("init",
            $"Create the cluster key ({ClusterKeyFileName} in --dir) and print the cluster fingerprint clients pin with 'wzp join --pin'. " +
            "An existing key is kept and its fingerprint printed.")
        {
            directory,
        };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(directory)!;
            WzpPaths.CreatePrivateDirectory(dir);
            var path = Path.Combine(dir, ClusterKeyFileName);
            using var cluster = SeedFile.LoadOrCreate(path, out var created);
            console.Out.WriteLine(created ? $"created cluster key {path}" : $"cluster key {path} already exists; kept");
            console.Out.WriteLine($"cluster fingerprint {cluster.Fingerprint}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ClusterTls(CliConsole console)
    {
        var output = new Option<string>("--out", "-o")
        {
            Description = "The PEM file to write (certificate and private key, mode 0600). Refuses to replace an existing file.",
            Required = true,
        };
        var years = new Option<int>("--years") { Description = "Validity in years, starting now.", DefaultValueFactory = _ => 10 };
        var command = new Command("tls",
            "Create the certificate that authenticates Orleans traffic between silos and gateways (scale-out mode, mutual TLS). " +
            "Give the same file to every silo and gateway as Orleans:Tls:CertificateFile; a node without it can neither join nor " +
            "reach the cluster. Keep it as secret as the cluster key.")
        {
            output, years,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(years) is { Implicit: false } && result.GetValue(years) is < 1 or > 100) result.AddError("--years must be 1 to 100");
        });
        command.SetAction(parse =>
        {
            var path = parse.GetValue(output)!;
            if (File.Exists(path)) throw new CliFailureException($"'{path}' exists; kept (a new certificate would lock out every node that has the old one)");
            var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (!Directory.Exists(directory)) throw new CliFailureException($"no directory '{directory}'");
            var thumbprint = Wzp.Gateway.ControlPlaneTls.Create(path, parse.GetValue(years));
            console.Out.WriteLine($"created control-plane certificate {path} (SHA-256 {thumbprint})");
            console.Out.WriteLine($"give it to every silo and gateway: Orleans__Tls__CertificateFile={Path.GetFullPath(path)}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command ClusterIssue(CliConsole console)
    {
        var directory = DirectoryOption();
        var gatewayId = new Option<string>("--gateway-id")
        {
            Description = "The gateway's id (1 to 255 UTF-8 bytes), as in its configuration (Gateway:GatewayId).",
            Required = true,
        };
        var gatewayKey = new Option<string?>("--gateway-key") { Description = "The gateway's Ed25519 public key as 64 hex digits." };
        var gatewayIdentity = new Option<string?>("--gateway-identity") { Description = "The gateway's identity seed file (its public key is taken from it)." };
        var days = new Option<int>("--days")
        {
            Description = "Validity in days, starting now.",
            DefaultValueFactory = _ => 365,
        };
        var output = new Option<string?>("--out", "-o") { Description = "Write the credential JSON to this file instead of standard output." };
        var command = new Command("issue",
            "Sign a credential for a gateway's key with the cluster key and print it as JSON (the gateway's Gateway:CredentialFile). " +
            "Give the key with exactly one of --gateway-key or --gateway-identity.")
        {
            directory, gatewayId, gatewayKey, gatewayIdentity, days, output,
        };
        command.Validators.Add(result =>
        {
            if ((result.GetValue(gatewayKey) is null) == (result.GetValue(gatewayIdentity) is null))
                result.AddError("give exactly one of --gateway-key or --gateway-identity");
            if (result.GetResult(days) is { Implicit: false } && result.GetValue(days) is < 1 or > 36_500) result.AddError("--days must be 1 to 36500");
        });
        command.SetAction(parse =>
        {
            var clusterPath = Path.Combine(parse.GetValue(directory)!, ClusterKeyFileName);
            if (!File.Exists(clusterPath)) throw new CliFailureException($"no cluster key at '{clusterPath}' (create it with 'wzp cluster init')");
            byte[] key;
            if (parse.GetValue(gatewayKey) is { } hex)
            {
                if (hex.Length != Identity.PublicKeySize * 2 || !hex.All(Uri.IsHexDigit))
                    throw new UsageException("--gateway-key must be 64 hex digits (a 32-byte Ed25519 public key)");
                key = Convert.FromHexString(hex);
            }
            else
            {
                var file = parse.GetValue(gatewayIdentity)!;
                if (!File.Exists(file)) throw new CliFailureException($"no gateway identity at '{file}'");
                using var gateway = SeedFile.Load(file);
                key = gateway.PublicKey;
            }
            var id = parse.GetValue(gatewayId)!;
            if (id.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(id) > GatewayCredential.MaxGatewayIdBytes || id.Any(char.IsControl))
                throw new UsageException("--gateway-id must be 1 to 255 UTF-8 bytes without control characters");
            using var cluster = SeedFile.Load(clusterPath);
            var now = DateTimeOffset.UtcNow;
            var credential = GatewayCredential.Issue(cluster, id, key, now, now.AddDays(parse.GetValue(days)));
            var json = credential.ToJson();
            if (parse.GetValue(output) is { } path)
            {
                File.WriteAllText(path, json + "\n");
                console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote credential for gateway '{id}' to {path}, valid until {DateTimeOffset.FromUnixTimeSeconds((long)credential.NotAfter):yyyy-MM-dd}; cluster fingerprint {cluster.Fingerprint}"));
            }
            else
            {
                console.Out.WriteLine(json);
            }
            return ExitCodes.Success;
        });
        return command;
    }
}
