using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Silo;

namespace Wzp.Cli;

/// <summary><c>wzp relay</c>: the all-in-one relay (silo with localhost clustering and an in-process gateway).</summary>
internal static class RelayCommand
{
    public static string DefaultDataDirectory => Path.Combine(WzpPaths.ConfigDirectory, "relay");

    public static Command Create(CliConsole console)
    {
        var listen = new Option<string>("--listen", "-l")
        {
            Description = "UDP address clients reach over QUIC (host:port). Use 0.0.0.0:4433 to accept other machines.",
            DefaultValueFactory = _ => GatewayAddress.Default.ToString(),
        };
        var dataDir = new Option<string>("--data-dir", "-d")
        {
            Description = "Folder of the relay's cluster key, gateway identity, credential and TLS certificate; created on first start.",
            DefaultValueFactory = _ => DefaultDataDirectory,
        };
        var siloPort = new Option<int?>("--silo-port") { Description = "Orleans silo-to-silo port (private, loopback). Default: Orleans:Clustering:SiloPort of appsettings.json (11111)." };
        var orleansPort = new Option<int?>("--orleans-port") { Description = "Orleans client port (private, loopback). Default: Orleans:Clustering:GatewayPort of appsettings.json (30000)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log everything the silo and gateway log at Information and above." };
        var requireGrants = new Option<bool>("--require-grants")
        {
            Description = "Admit only members with a grant (wzp grant issue) signed by a --grant-key, for their identity and room. " +
                "Without it the relay is open: anyone who reaches it joins any room.",
        };
        var grantKeys = new Option<string[]>("--grant-key")
        {
            Description = "Issuer key file whose grants are accepted (from 'wzp grant key new': an HS256 secret, an Ed25519 key or its .pub). Repeat for several.",
            AllowMultipleArgumentsPerToken = false,
        };
        var webhooks = new Option<string[]>("--webhook")
        {
            Description = "URL that gets every room event as signed JSON (docs/operations.md, 'Room events and webhooks'). Repeat for several.",
            AllowMultipleArgumentsPerToken = false,
        };
        var webhookSecret = new Option<string?>("--webhook-secret") { Description = "File with the shared secret that signs webhook requests (at least 16 characters, e.g. 'openssl rand -hex 32')." };
        var grantKeySet = new Option<string>("--grant-keys")
        {
            Description = "A JWK Set file ({\"keys\":[...]}) of issuer keys whose grants are accepted, read again whenever it changes, " +
                "so keys rotate without a restart (docs/operations.md, \"Keys and rotation\"). With or instead of --grant-key.",
        };
        var adminListen = new Option<string>("--admin-listen")
        {
            Description = $"TCP address of the room administration API ('wzp admin'; its operator key is created in --data-dir/admin.key). " +
                $"Default: Admin:ListenAddress of appsettings.json ({Wzp.Silo.AdminApiOptions.DefaultListenAddress}). Keep it on loopback.",
        };
        var command = new Command("relay",
            "Run the all-in-one relay: an Orleans silo with localhost clustering and a gateway on 127.0.0.1:4433. " +
            "On first start it creates the cluster key, the gateway identity and its credential (in --data-dir), then prints " +
            "the cluster fingerprint and the command to join. Stop it with Ctrl+C.")
        {
            listen, dataDir, siloPort, orleansPort, verbose, requireGrants, grantKeys, grantKeySet, adminListen, webhooks, webhookSecret,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(listen) is { Implicit: false } && !IPEndPoint.TryParse(result.GetValue(listen) ?? "", out _))
                result.AddError("--listen must be an IP address and port, e.g. 127.0.0.1:4433");
            if (result.GetValue(adminListen) is { } admin && !IPEndPoint.TryParse(admin, out _))
                result.AddError("--admin-listen must be an IP address and port, e.g. 127.0.0.1:9470");
            foreach (var port in new[] { siloPort, orleansPort })
                if (result.GetValue(port) is { } p && p is < 1 or > 65535) result.AddError($"{port.Name} must be 1 to 65535");
            var keys = result.GetValue(grantKeys) ?? [];
            var keySet = result.GetValue(grantKeySet);
            if (result.GetValue(requireGrants) && keys.Length == 0 && keySet is null)
                result.AddError("--require-grants needs at least one --grant-key FILE (create one with 'wzp grant key new --out FILE') or --grant-keys SET");
            if (!result.GetValue(requireGrants) && (keys.Length > 0 || keySet is not null)) result.AddError("--grant-key and --grant-keys are only used with --require-grants");
            if ((result.GetValue(webhooks) ?? []).Length > 0 != result.GetValue(webhookSecret) is not null) result.AddError("--webhook and --webhook-secret FILE go together");
        });
        command.SetAction((parse, cancellationToken) => RunAsync(
            console,
            parse.GetValue(listen)!,
            Path.GetFullPath(parse.GetValue(dataDir)!),
            parse.GetValue(siloPort),
            parse.GetValue(orleansPort),
            parse.GetValue(verbose),
            parse.GetValue(requireGrants) ? parse.GetValue(grantKeys) ?? [] : null,
            parse.GetValue(grantKeySet) is { } set ? Path.GetFullPath(set) : null,
            parse.GetValue(adminListen),
            (parse.GetValue(webhooks) ?? [], parse.GetValue(webhookSecret)),
            cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CliConsole console, string listen, string dataDirectory, int? siloPort, int? orleansPort, bool verbose,
        string[]? grantKeyFiles, string? grantKeySet, string? adminListen, (string[] Urls, string? SecretFile) webhooks, CancellationToken cancellationToken)
    {
        WzpPaths.CreatePrivateDirectory(dataDirectory);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = ContentRoot.Find(), Args = [] });
        var overrides = new Dictionary<string, string?>
        {
            ["Gateway:ListenAddress"] = listen,
            ["Gateway:DataDirectory"] = dataDirectory,
            ["Orleans:Clustering:Mode"] = nameof(ClusteringMode.Localhost),
            ["Admin:OperatorKeyFile"] = Path.Combine(dataDirectory, AdminCommand.OperatorKeyFileName),
        };
        if (adminListen is not null) overrides["Admin:ListenAddress"] = adminListen;
        if (siloPort is { } s) overrides["Orleans:Clustering:SiloPort"] = s.ToString(CultureInfo.InvariantCulture);
        if (orleansPort is { } o) overrides["Orleans:Clustering:GatewayPort"] = o.ToString(CultureInfo.InvariantCulture);
        var grantKeyIds = grantKeyFiles is null ? null : AddGrantKeys(grantKeyFiles, overrides);
        if (grantKeyIds is not null && grantKeySet is not null)
        {
            overrides["Gateway:Grants:KeySetFile"] = grantKeySet;
            grantKeyIds.Add($"the keys of {grantKeySet} (re-read when it changes)");
        }
        for (var i = 0; i < webhooks.Urls.Length; i++) overrides[$"Webhooks:Urls:{i}"] = webhooks.Urls[i];
        if (webhooks.SecretFile is not null) overrides["Webhooks:SecretFile"] = Path.GetFullPath(webhooks.SecretFile);
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.Logging.ClearProviders();
        // The relay's own lines go to the console; the silo's chatter only with --verbose or when it matters.
        builder.Logging.AddSimpleConsole(options => options.SingleLine = true);
        builder.Logging.SetMinimumLevel(verbose ? LogLevel.Information : LogLevel.Error);
        builder.Services.Configure<ConsoleLifetimeOptions>(options => options.SuppressStatusMessages = true);
        builder.AddWzpSilo();
        builder.Services.AddWzpGateway(builder.Configuration, allInOne: true);
        builder.AddWzpAdminApi();

        using var host = builder.Build();
        var gateway = host.Services.GetRequiredService<GatewayHost>();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            var server = await gateway.Started.WaitAsync(cancellationToken).ConfigureAwait(false);
            var endpoint = server.ClientEndPoint;
            var fingerprint = server.Keys.ClusterFingerprint;
            var joinAddress = endpoint.Address.Equals(IPAddress.Any) ? $"THIS-HOST:{endpoint.Port}" : endpoint.ToString();
            console.Out.WriteLine($"relay ready: gateway '{server.Keys.Credential.GatewayId}' listening on {endpoint} (QUIC, ALPN wzp/1, protocol version {Wzp.Protocol.HelloLimits.Version})");
            console.Out.WriteLine($"cluster fingerprint {fingerprint}");
            console.Out.WriteLine($"keys in {dataDirectory}");
            console.Out.WriteLine(grantKeyIds is null
                ? "open relay: anyone who reaches it can join any room (require grants with --require-grants --grant-key FILE)"
                : $"grants required: members need a grant signed by {string.Join(", ", grantKeyIds)} ('wzp grant issue', then 'wzp join --token')");
            if (webhooks.Urls.Length > 0) console.Out.WriteLine($"room events go to {webhooks.Urls.Length} webhook URL(s), signed with the secret in {webhooks.SecretFile}");
            if (host.Services.GetRequiredService<AdminApiHost>().Address is { } admin)
                console.Out.WriteLine($"room administration API on {admin} (operator key in {Path.Combine(dataDirectory, AdminCommand.OperatorKeyFileName)}; 'wzp admin --help')");
            console.Out.WriteLine($"join with: wzp join myroom --gateway {joinAddress} --pin {fingerprint}");
            console.Out.Flush();
            await host.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C: a normal way to stop the relay.
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException e)
        {
            throw new CliFailureException($"the relay cannot start: {e.Message}", e);
        }
        catch (Exception e) when (e is GatewayStartupException or IOException or System.Net.Sockets.SocketException or Orleans.Runtime.OrleansException)
        {
            throw new CliFailureException($"the relay cannot start: {e.Message}", e);
        }
        finally
        {
            using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await host.StopAsync(stopping.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        console.Out.WriteLine("relay stopped");
        return ExitCodes.Success;
    }

    /// <summary>
    /// Turns the key files into <c>Gateway:Grants</c> settings: an HS256 secret stays in its file (the gateway reads
    /// it), an Ed25519 key is reduced to its public half. Returns the key ids.
    /// </summary>
    private static List<string> AddGrantKeys(string[] files, Dictionary<string, string?> overrides)
    {
        var ids = new List<string>();
        overrides["Gateway:Grants:Required"] = "true";
        foreach (var file in files)
        {
            var path = Path.GetFullPath(file);
            using var key = GrantCommands.LoadKey(path);
            if (ids.Contains(key.KeyId)) throw new CliFailureException($"two --grant-key files have key id '{key.KeyId}'");
            ids.Add(key.KeyId);
            if (key.Kind == Wzp.Protocol.Grants.GrantKeyKind.Hs256) overrides[$"Gateway:Grants:Hs256KeyFiles:{key.KeyId}"] = path;
            else overrides[$"Gateway:Grants:Ed25519PublicKeys:{key.KeyId}"] = Convert.ToHexStringLower(key.PublicKey!);
        }
        return ids;
    }
}
