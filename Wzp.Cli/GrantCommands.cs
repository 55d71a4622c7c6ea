using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using Wzp.Protocol;
using Wzp.Protocol.Grants;

namespace Wzp.Cli;

/// <summary><c>wzp grant key new</c> and <c>wzp grant issue</c>: issuer keys and the signed grants (JWT) members join with.</summary>
internal static class GrantCommands
{
    public static Command Create(CliConsole console)
    {
        var command = new Command("grant",
            "Signed grants (JWT) for gateways that require them (wzp relay --require-grants, Gateway:Grants:Required). " +
            "A grant names one identity (its fingerprint), a room or room prefix, a short lifetime and what the member may do; " +
            "it is useless to anyone else, because the gateway checks it against the key that signed the member's hello.");
        var key = new Command("key", "Issuer keys that sign grants.");
        key.Subcommands.Add(KeyNew(console));
        command.Subcommands.Add(key);
        command.Subcommands.Add(Issue(console));
        return command;
    }

    private static Command KeyNew(CliConsole console)
    {
        var output = new Option<string>("--out", "-o") { Description = "Key file to create (JSON Web Key, mode 0600). Never overwritten.", Required = true };
        var kind = new Option<string>("--kind")
        {
            Description = "ed25519 (the default): EdDSA grants; gateways get only the public key (written to FILE.pub) and cannot mint grants. " +
                "hs256: an HMAC secret (as LiveKit API keys); every gateway needs the secret file itself, and any gateway holding it can mint grants.",
            DefaultValueFactory = _ => "ed25519",
        };
        kind.AcceptOnlyFromAmong("ed25519", "hs256");
        var kid = new Option<string>("--kid") { Description = "Key id written in every grant's header, so gateways can hold several keys and rotate them. Default: a random id." };
        var command = new Command("new", "Create an issuer key for 'wzp grant issue' and print the gateway setting that accepts it.") { output, kind, kid };
        command.Validators.Add(result =>
        {
            if (result.GetValue(kid) is { } id && !GrantKey.IsValidKeyId(id)) result.AddError("--kid must be 1 to 64 of letters, digits, '.', '_' and '-'");
        });
        command.SetAction(parse =>
        {
            var path = Path.GetFullPath(parse.GetValue(output)!);
            var keyKind = parse.GetValue(kind) == "hs256" ? GrantKeyKind.Hs256 : GrantKeyKind.Ed25519;
            var keyId = parse.GetValue(kid) ?? $"key-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
            var publicPath = path + ".pub";
            if (File.Exists(path)) throw new CliFailureException($"'{path}' already exists; refusing to overwrite an issuer key");
            if (keyKind == GrantKeyKind.Ed25519 && File.Exists(publicPath)) throw new CliFailureException($"'{publicPath}' already exists; refusing to overwrite it");
            using var created = GrantKey.Generate(keyKind, keyId);
            WritePrivate(path, created.ToJson());
            console.Out.WriteLine($"created {(keyKind == GrantKeyKind.Hs256 ? "HS256 secret" : "Ed25519 issuer key")} '{keyId}' in {path} (keep it secret)");
            if (keyKind == GrantKeyKind.Ed25519)
            {
                using var publicHalf = created.ToPublic();
                File.WriteAllText(publicPath, publicHalf.ToJson() + "\n");
                console.Out.WriteLine($"public key in {publicPath}");
                console.Out.WriteLine("gateways accept its grants with:");
                console.Out.WriteLine($"  Gateway__Grants__Required=true Gateway__Grants__Ed25519PublicKeys__{keyId}={Convert.ToHexStringLower(created.PublicKey!)}");
            }
            else
            {
                console.Out.WriteLine("gateways accept its grants with (copy the file to each, mode 0600):");
                console.Out.WriteLine($"  Gateway__Grants__Required=true Gateway__Grants__Hs256KeyFiles__{keyId}={path}");
            }
            console.Out.WriteLine($"or: wzp relay --require-grants --grant-key {path}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command Issue(CliConsole console)
    {
        var room = new Option<string>("--room", "-r") { Description = "Room the grant admits to, or a prefix ending in '*' (quote it: 'team-*'; '*' alone: every room).", Required = true };
        var fingerprint = new Option<string>("--fingerprint", "-f") { Description = "The member's identity fingerprint (what 'wzp fingerprint' prints)." };
        var identity = new Option<string>("--identity", "-i") { Description = "The member's identity seed file, to take the fingerprint from." };
        var ttl = new Option<string>("--ttl")
        {
            Description = "Lifetime from now: 90s, 30m, 1h, 1d (or hh:mm:ss). Short is safer: a grant cannot be revoked. Gateways refuse more than 1d by default.",
            DefaultValueFactory = _ => "1h",
        };
        var listenOnly = new Option<bool>("--listen-only") { Description = "Without 'publish': the member hears the room, its own media is dropped." };
        var admin = new Option<bool>("--admin") { Description = "With 'admin': the member may administer the room." };
        var name = new Option<string>("--name", "-n") { Description = "Alias the gateway gives the member, whatever alias the client asks for." };
        var key = new Option<string>("--key", "-k") { Description = "Issuer key file from 'wzp grant key new' (an HS256 secret or an Ed25519 private key).", Required = true };
        var command = new Command("issue", "Print a grant (a JWT) for one identity; pass it to 'wzp join --token'.")
        {
            room, fingerprint, identity, ttl, listenOnly, admin, name, key,
        };
        command.Validators.Add(result =>
        {
            var hasFingerprint = result.GetValue(fingerprint) is not null;
            var hasIdentity = result.GetValue(identity) is not null;
            if (hasFingerprint == hasIdentity) result.AddError("give exactly one of --fingerprint and --identity");
            if (result.GetValue(fingerprint) is { } fp && !Fingerprint.TryParse(fp, out _)) result.AddError("--fingerprint must be 32 hex digits (groups of 4 joined by ':' allowed)");
            if (result.GetValue(room) is { } r && !Grant.IsValidRoomPattern(r)) result.AddError("--room must be a room name (1 to 128 characters) or a prefix of one ending in '*'");
            if (result.GetValue(ttl) is { } t && !TryParseDuration(t, out _)) result.AddError("--ttl must be a positive duration such as 90s, 30m, 1h, 1d or hh:mm:ss");
            if (result.GetValue(name) is { } n && (n.Length == 0 || !HelloLimits.IsValidAlias(n))) result.AddError("--name must be 1 to 64 characters without control characters");
        });
        command.SetAction(parse =>
        {
            var subject = parse.GetValue(fingerprint) is { } fp ? Fingerprint.Parse(fp) : FingerprintOf(parse.GetValue(identity)!);
            TryParseDuration(parse.GetValue(ttl)!, out var lifetime);
            using var signer = LoadKey(parse.GetValue(key)!);
            if (!signer.CanSign) throw new CliFailureException($"'{parse.GetValue(key)}' holds only a public key; grants are signed with the private key file (without .pub)");
            if (lifetime > TimeSpan.FromDays(1)) console.Error.WriteLine("wzp: warning: gateways refuse grants that live longer than Gateway:Grants:MaxLifetime (1 day by default)");
            var grant = Grant.For(subject, parse.GetValue(room)!, DateTimeOffset.UtcNow, lifetime, signer.KeyId) with
            {
                Name = parse.GetValue(name),
                Publish = !parse.GetValue(listenOnly),
                Admin = parse.GetValue(admin),
            };
            console.Out.WriteLine(GrantIssuer.Issue(grant, signer));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Reads a key file from 'wzp grant key new' (or its .pub), with a message fit for the user.</summary>
    internal static GrantKey LoadKey(string path)
    {
        if (!File.Exists(path)) throw new CliFailureException($"no grant key at '{path}' (create one with 'wzp grant key new --out {path}')");
        try
        {
            return GrantKey.Parse(File.ReadAllText(path));
        }
        catch (FormatException e)
        {
            throw new CliFailureException($"'{path}' is not a grant key file: {e.Message}", e);
        }
    }

    private static Fingerprint FingerprintOf(string path)
    {
        if (!File.Exists(path)) throw new CliFailureException($"no identity at '{path}'");
        using var member = SeedFile.Load(path);
        return member.Fingerprint;
    }

    internal static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        text = text.Trim();
        if (text.Length >= 2 && char.IsAsciiLetter(text[^1]) &&
            double.TryParse(text[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            duration = char.ToLowerInvariant(text[^1]) switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                'd' => TimeSpan.FromDays(amount),
                _ => default,
            };
        }
        else if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var parsed)) duration = parsed;
        return duration >= TimeSpan.FromSeconds(1);
    }

    private static void WritePrivate(string path, string text)
    {
        if (Path.GetDirectoryName(path) is { Length: > 0 } directory) Directory.CreateDirectory(directory);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var writer = new StreamWriter(path, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options);
        writer.Write(text);
        writer.Write('\n');
    }
}
