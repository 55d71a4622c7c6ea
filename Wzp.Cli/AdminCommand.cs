using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Wzp.Protocol;
using Wzp.Silo;

namespace Wzp.Cli;

/// <summary>
/// <c>wzp admin</c>: the room administration API of a silo (docs/operations.md, "Room administration"). Exit codes:
/// 0 done, 1 failure (API unreachable, bad answer), 2 usage, 3 credential refused (401, 403), 4 no such room or member.
/// </summary>
internal static class AdminCommand
{
    /// <summary>The operator key file a relay creates in its data directory.</summary>
    public const string OperatorKeyFileName = "admin.key";

    private static string DefaultApi => Environment.GetEnvironmentVariable("WZP_ADMIN_API") is { Length: > 0 } api ? api : $"http://{AdminApiOptions.DefaultListenAddress}/";

    private static string DefaultKeyFile => Path.Combine(RelayCommand.DefaultDataDirectory, OperatorKeyFileName);

    public static Command Create(CliConsole console)
    {
        var api = new Option<string>("--api")
        {
            Description = $"Base URL of the administration API (Admin:ListenAddress of a silo; wzp relay --admin-listen). Default: $WZP_ADMIN_API, else http://{AdminApiOptions.DefaultListenAddress}/.",
            DefaultValueFactory = _ => DefaultApi,
            Recursive = true,
        };
        var keyFile = new Option<string>("--key-file")
        {
            Description = $"Operator key file (Admin:OperatorKeyFile; the relay's is {DefaultKeyFile}). Used unless --grant is given.",
            DefaultValueFactory = _ => DefaultKeyFile,
            Recursive = true,
        };
        var grant = new Option<string>("--grant")
        {
            Description = "Authenticate with an admin grant instead ('wzp grant issue --admin', room '*' to list every room); needs --identity, whose key signs each request.",
            Recursive = true,
        };
        var identity = new Option<string>("--identity")
        {
            Description = "Identity seed file the --grant was issued to.",
            Recursive = true,
        };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON answer as is.", Recursive = true };
        var command = new Command("admin",
            "Administer rooms through a silo's administration API: list rooms and members, kick, mute, unmute, close. " +
            "Exit codes: 0 done, 1 failure (API unreachable), 2 usage, 3 credential refused, 4 no such room or member.")
        {
            api, keyFile, grant, identity, json,
        };
        // On each subcommand: the parent's validators do not run when a subcommand is invoked.
        void Validate(System.CommandLine.Parsing.CommandResult result)
        {
            if (!Uri.TryCreate(result.GetValue(api), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                result.AddError("--api must be an http:// or https:// URL, e.g. http://127.0.0.1:9470/");
            if ((result.GetValue(grant) is null) != (result.GetValue(identity) is null))
                result.AddError("--grant and --identity go together: the identity signs each request the grant authorizes");
        }

        var room = new Argument<string>("ROOM") { Description = "The room name." };
        var slot = new Argument<int>("SLOT") { Description = "The member's slot (see 'wzp admin members ROOM')." };
        slot.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > 65535) result.AddError("SLOT must be 1 to 65535");
        });

        Settings Read(ParseResult parse) => new(new Uri(AppendSlash(parse.GetValue(api)!)), parse.GetValue(keyFile)!, parse.GetValue(grant), parse.GetValue(identity), parse.GetValue(json));

        var rooms = new Command("rooms", "List open rooms: members, gateways, epoch and age.");
        rooms.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Get, "v1/rooms", PrintRooms, ct));
        var members = new Command("members", "List a room's members: slot, alias, fingerprint, gateway, muted or listener, grant expiry.") { room };
        members.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Get, $"v1/rooms/{Escape(parse.GetValue(room)!)}/members", PrintMembers, ct));
        var kick = new Command("kick", "Remove a member; its identity cannot rejoin until its grant expires or the room reopens.") { room, slot };
        kick.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Delete, $"v1/rooms/{Escape(parse.GetValue(room)!)}/members/{parse.GetValue(slot)}", PrintAction, ct));
        var mute = new Command("mute", "Mute a member: its gateway drops what it sends; it stays muted if it rejoins while the room is open.") { room, slot };
        mute.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Post, $"v1/rooms/{Escape(parse.GetValue(room)!)}/members/{parse.GetValue(slot)}/mute", PrintAction, ct));
        var unmute = new Command("unmute", "Unmute a member.") { room, slot };
        unmute.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Post, $"v1/rooms/{Escape(parse.GetValue(room)!)}/members/{parse.GetValue(slot)}/unmute", PrintAction, ct));
        var close = new Command("close", "Close a room: every member is removed (told 'room-closed'); the room forgets its kicks and mutes.") { room };
        close.SetAction((parse, ct) => RunAsync(console, Read(parse), HttpMethod.Delete, $"v1/rooms/{Escape(parse.GetValue(room)!)}", PrintAction, ct));
        foreach (var sub in new[] { rooms, members, kick, mute, unmute, close })
        {
            sub.Validators.Add(Validate);
            command.Subcommands.Add(sub);
        }
        return command;
    }

    private sealed record Settings(Uri Api, string KeyFile, string? Grant, string? Identity, bool Json);

    private static string AppendSlash(string url) => url.EndsWith('/') ? url : url + "/";

    private static string Escape(string room) => Uri.EscapeDataString(room);

    private static async Task<int> RunAsync(CliConsole console, Settings settings, HttpMethod method, string path, Action<CliConsole, JsonElement> print,
        CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(settings.Api, path));
        Authorize(request, settings);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new CliFailureException($"the administration API at {settings.Api} is unreachable ({e.Message}); is the relay or silo running (Admin:ListenAddress, --api)?", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CliFailureException($"the administration API at {settings.Api} did not answer within 30 s", e);
        }
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            JsonDocument? document = null;
            try
            {
                document = JsonDocument.Parse(body.Length == 0 ? "{}" : body);
            }
            catch (JsonException)
            {
                // Reported below with the status.
            }
            using (document)
            {
                if (!response.IsSuccessStatusCode)
                {
                    var message = document?.RootElement is { ValueKind: JsonValueKind.Object } root && root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String
                        ? error.GetString()
                        : $"HTTP {(int)response.StatusCode}";
                    console.Error.WriteLine($"wzp: {Describe(response.StatusCode)}: {message}");
                    return response.StatusCode switch
                    {
                        HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => ExitCodes.Refused,
                        HttpStatusCode.NotFound => ExitCodes.NotFound,
                        HttpStatusCode.BadRequest => ExitCodes.Usage,
                        _ => ExitCodes.Failure,
                    };
                }
                if (document is null) throw new CliFailureException($"the administration API at {settings.Api} answered something that is not JSON");
                if (settings.Json) console.Out.WriteLine(body);
                else print(console, document.RootElement);
                return ExitCodes.Success;
            }
        }
    }

    private static string Describe(HttpStatusCode status) => status switch
    {
        HttpStatusCode.Unauthorized => "refused (401, no valid credential)",
        HttpStatusCode.Forbidden => "refused (403, the grant does not allow it)",
        HttpStatusCode.NotFound => "not found",
        HttpStatusCode.BadRequest => "bad request",
        _ => $"the API failed ({(int)status})",
    };

    private static void Authorize(HttpRequestMessage request, Settings settings)
    {
        if (settings.Grant is { } grant)
        {
            using var identity = SeedFile.Load(settings.Identity!);
            var date = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var signature = identity.Sign(AdminProof.SigningInput(request.Method.Method, request.RequestUri!.PathAndQuery, date));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", grant.Trim());
            request.Headers.Add(AdminProof.IdentityHeader, Convert.ToBase64String(identity.PublicKey));
            request.Headers.Add(AdminProof.DateHeader, date.ToString(CultureInfo.InvariantCulture));
            request.Headers.Add(AdminProof.SignatureHeader, Convert.ToBase64String(signature));
            return;
        }
        string key;
        try
        {
            key = File.ReadAllText(settings.KeyFile).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliFailureException($"cannot read the operator key file '{settings.KeyFile}' ({e.Message}); give --key-file, or --grant with --identity", e);
        }
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    private static void PrintRooms(CliConsole console, JsonElement root)
    {
        var rooms = root.GetProperty("rooms").EnumerateArray().ToList();
        if (rooms.Count == 0)
        {
            console.Out.WriteLine("no open rooms");
            return;
        }
        var rows = rooms.Select(r => new[]
        {
            r.GetProperty("room").GetString()!,
            r.GetProperty("memberCount").GetInt32().ToString(CultureInfo.InvariantCulture),
            string.Join(",", r.GetProperty("gateways").EnumerateArray().Select(g => g.GetString())),
            r.GetProperty("epoch").GetInt64().ToString(CultureInfo.InvariantCulture),
            Age(r.GetProperty("ageSeconds").GetInt64()),
        });
        WriteTable(console, ["ROOM", "MEMBERS", "GATEWAYS", "EPOCH", "AGE"], rows);
    }

    private static void PrintMembers(CliConsole console, JsonElement room)
    {
        console.Out.WriteLine($"room '{room.GetProperty("room").GetString()}': {room.GetProperty("memberCount").GetInt32()} members, epoch {room.GetProperty("epoch").GetInt64()}, open for {Age(room.GetProperty("ageSeconds").GetInt64())}");
        var rows = room.GetProperty("members").EnumerateArray().Select(m => new[]
        {
            m.GetProperty("slot").GetInt32().ToString(CultureInfo.InvariantCulture),
            m.GetProperty("alias").GetString() is { Length: > 0 } alias ? alias : "-",
            m.GetProperty("fingerprint").GetString()!,
            m.GetProperty("gateway").GetString()!,
            string.Join(",", new[] { m.GetProperty("muted").GetBoolean() ? "muted" : null, m.GetProperty("listener").GetBoolean() ? "listener" : null }.OfType<string>()) is { Length: > 0 } flags ? flags : "-",
            m.GetProperty("grantExpires").ValueKind == JsonValueKind.String ? m.GetProperty("grantExpires").GetDateTimeOffset().ToString("u", CultureInfo.InvariantCulture) : "-",
        });
        WriteTable(console, ["SLOT", "ALIAS", "FINGERPRINT", "GATEWAY", "FLAGS", "GRANT EXPIRES"], rows);
    }

    private static void PrintAction(CliConsole console, JsonElement result)
    {
        var room = result.GetProperty("room").GetString();
        var action = result.GetProperty("action").GetString();
        console.Out.WriteLine(action == "closed"
            ? $"closed room '{room}' ({result.GetProperty("affected").GetInt32()} members removed)"
            : $"{action} slot {result.GetProperty("slot").GetInt32()} of room '{room}'");
    }

    private static string Age(long seconds) =>
        seconds >= 3600 ? $"{seconds / 3600}h{seconds % 3600 / 60:00}m" : seconds >= 60 ? $"{seconds / 60}m{seconds % 60:00}s" : $"{seconds}s";

    private static void WriteTable(CliConsole console, string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
        var line = new StringBuilder();
        foreach (var row in all)
        {
            line.Clear();
            for (var i = 0; i < row.Length; i++) line.Append(i == row.Length - 1 ? row[i] : row[i].PadRight(widths[i] + 2));
            console.Out.WriteLine(line.ToString());
        }
    }
}
