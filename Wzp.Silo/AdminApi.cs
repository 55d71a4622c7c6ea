using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wzp.Gateway;
using Wzp.Grains;
using Wzp.Protocol;

namespace Wzp.Silo;

/// <summary>A member as the administration API shows it.</summary>
public sealed record AdminMember(int Slot, string Fingerprint, string Alias, string Gateway, bool Muted, bool Listener, DateTimeOffset? GrantExpires);

/// <summary>A room as the administration API lists it.</summary>
public sealed record AdminRoom(
    string Room, long Epoch, long Version, Guid Incarnation, DateTimeOffset OpenedAt, long AgeSeconds, int MemberCount,
    IReadOnlyList<string> Gateways, IReadOnlyList<AdminMember> Members);

/// <summary>The answer to <c>GET /v1/rooms</c>.</summary>
public sealed record AdminRoomList(IReadOnlyList<AdminRoom> Rooms);

/// <summary>What an action did.</summary>
public sealed record AdminActionResult(string Room, string Action, int Slot, int Affected);

/// <summary>A refusal: the HTTP status says which kind, <see cref="Error"/> says what to do about it.</summary>
public sealed record AdminError(string Error);

/// <summary>
/// The room administration API of a silo: HTTP (ASP.NET Core minimal API) on loopback by default, over the room
/// grains. Rooms are enumerated through the gateway directory (rooms tell it which gateways they host, one-way,
/// outside their join path), then each is asked for its description. Routes (docs/operations.md):
/// <c>GET /v1/rooms</c>, <c>GET /v1/rooms/{room}/members</c>, <c>DELETE /v1/rooms/{room}/members/{slot}</c> (kick),
/// <c>POST /v1/rooms/{room}/members/{slot}/mute</c> and <c>/unmute</c>, <c>DELETE /v1/rooms/{room}</c> (close).
/// </summary>
public sealed partial class AdminApi : IAsyncDisposable
{
    private readonly WebApplication _app;

    private AdminApi(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>Where the API listens, e.g. <c>http://127.0.0.1:9470/</c> (the real port when 0 was configured).</summary>
    public Uri Address { get; }

    /// <summary>Starts the API over <paramref name="grains"/>.</summary>
    /// <param name="grains">Where the rooms are (the silo's grain factory, or a cluster client in tests).</param>
    /// <param name="options">The <c>Admin</c> settings.</param>
    /// <param name="grants">The <c>Gateway:Grants</c> settings: the issuer keys whose admin grants are accepted.</param>
    /// <param name="loggerFactory">Where it logs.</param>
    /// <param name="time">The clock of grant checks.</param>
    /// <param name="cancellationToken">Ends the start.</param>
    /// <exception cref="GatewayStartupException">The operator key file or a grant key file cannot be used.</exception>
    /// <exception cref="IOException">The address is in use.</exception>
    public static async Task<AdminApi> StartAsync(IGrainFactory grains, AdminApiOptions options, GatewayGrantOptions grants,
        ILoggerFactory? loggerFactory = null, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(grants);
        loggerFactory ??= NullLoggerFactory.Instance;
        time ??= TimeProvider.System;
        var logger = loggerFactory.CreateLogger<AdminApi>();
        var credentials = new AdminCredentials(LoadOperatorKey(options, logger), grants, time, logger);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);
        var endpoint = IPEndPoint.Parse(options.ListenAddress);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(endpoint));
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase);
        var app = builder.Build();
        var handlers = new Handlers(grains, credentials, time, logger);
        handlers.Map(app);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"the room administration API cannot listen on {options.ListenAddress} (Admin:ListenAddress): {e.Message}", e);
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? $"http://{options.ListenAddress}";
        var address = new Uri(bound.EndsWith('/') ? bound : bound + "/");
        if (!endpoint.Address.Equals(IPAddress.Loopback) && !endpoint.Address.Equals(IPAddress.IPv6Loopback)) Log.NotLoopback(logger, address);
        Log.Started(logger, address, credentials.AcceptsGrants);
        return new AdminApi(app, address);
    }

    /// <summary>Reads (or, when allowed, creates) the operator key file; returns the digest of its key only.</summary>
    private static byte[]? LoadOperatorKey(AdminApiOptions options, ILogger logger)
    {
        var path = options.OperatorKeyFile;
        if (string.IsNullOrWhiteSpace(path)) return null;
        try
        {
            if (!File.Exists(path))
            {
                if (!options.CreateOperatorKey)
                {
                    Log.NoOperatorKey(logger, path);
                    return null;
                }
                var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
                Directory.CreateDirectory(directory);
                // Silos started together with one shared path: the first file wins and every silo reads that one.
                if (PrivateFile.TryCreateAtomically(path, Base64Url(RandomNumberGenerator.GetBytes(32)) + "\n")) Log.OperatorKeyCreated(logger, path);
            }
            else if (PrivateFile.IsExposed(path))
            {
                Log.OperatorKeyExposed(logger, path);
            }
            var key = File.ReadAllText(path).Trim();
            if (key.Length < 16 || key.Contains('.', StringComparison.Ordinal) || key.Any(char.IsWhiteSpace))
                throw new GatewayStartupException($"operator key file '{path}' must hold one line of at least 16 characters without '.' or spaces");
            return AdminCredentials.Digest(key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GatewayStartupException($"operator key file '{path}' cannot be used: {e.Message}", e);
        }
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Handlers(IGrainFactory grains, AdminCredentials credentials, TimeProvider time, ILogger logger)
    {
        public void Map(WebApplication app)
        {
            // A Delegate, not a RequestDelegate: the minimal API then writes the result it returns.
            app.MapGet("/v1/rooms", (Delegate)((HttpContext context) => ListRoomsAsync(context)));
            app.MapGet("/v1/rooms/{room}/members", (HttpContext context, string room) => ListMembersAsync(context, room));
            app.MapDelete("/v1/rooms/{room}/members/{slot}", (HttpContext context, string room, string slot) => ActAsync(context, room, slot, AdminAction.Kick));
            app.MapPost("/v1/rooms/{room}/members/{slot}/mute", (HttpContext context, string room, string slot) => ActAsync(context, room, slot, AdminAction.Mute));
            app.MapPost("/v1/rooms/{room}/members/{slot}/unmute", (HttpContext context, string room, string slot) => ActAsync(context, room, slot, AdminAction.Unmute));
            app.MapDelete("/v1/rooms/{room}", (HttpContext context, string room) => ActAsync(context, room, null, AdminAction.Close));
            // Anything else is a 404 with a message rather than an empty body.
            app.MapFallback((HttpContext context) => Problem(context, StatusCodes.Status404NotFound,
                "no such route: see GET /v1/rooms, GET|DELETE /v1/rooms/{room}[/members[/{slot}]], POST /v1/rooms/{room}/members/{slot}/mute|unmute"));
        }

        private async Task<IResult> ListRoomsAsync(HttpContext context)
        {
            var caller = credentials.Authenticate(context, room: null);
            if (!caller.Admitted) return Refuse(context, caller);
            var names = await grains.GetGatewayDirectory().ListRooms().ConfigureAwait(false);
            var described = await Task.WhenAll(names.Select(name => grains.GetGrain<IRoomGrain>(name).Describe())).ConfigureAwait(false);
            // A room the directory still lists for a moment after it emptied describes itself without members.
            var rooms = described.Where(d => !d.Snapshot.Members.IsEmpty).Select(ToRoom).ToList();
            return Results.Json(new AdminRoomList(rooms));
        }

        private async Task<IResult> ListMembersAsync(HttpContext context, string room)
        {
            room = RoomName(room);
            if (!RoomLimits.IsValidRoomName(room)) return Problem(context, StatusCodes.Status400BadRequest, "the room name must be 1 to 128 characters without control characters");
            var caller = credentials.Authenticate(context, room);
            if (!caller.Admitted) return Refuse(context, caller);
            var description = await grains.GetGrain<IRoomGrain>(room).Describe().ConfigureAwait(false);
            if (description.Snapshot.Members.IsEmpty) return Problem(context, StatusCodes.Status404NotFound, $"room '{room}' is not open (it has no members)");
            return Results.Json(ToRoom(description));
        }

        private async Task<IResult> ActAsync(HttpContext context, string room, string? slotText, AdminAction action)
        {
            room = RoomName(room);
            if (!RoomLimits.IsValidRoomName(room)) return Problem(context, StatusCodes.Status400BadRequest, "the room name must be 1 to 128 characters without control characters");
            ushort slot = 0;
            if (slotText is not null && (!ushort.TryParse(slotText, NumberStyles.None, CultureInfo.InvariantCulture, out slot) || slot == 0))
                return Problem(context, StatusCodes.Status400BadRequest, $"the slot must be a number from 1 to 65535, not '{Printable(slotText)}'");
            var caller = credentials.Authenticate(context, room);
            if (!caller.Admitted) return Refuse(context, caller);
            var outcome = await grains.GetGrain<IRoomGrain>(room).Administer(new AdminCommand(action, slot)).ConfigureAwait(false);
            var verb = action switch
            {
                AdminAction.Kick => "kicked",
                AdminAction.Mute => "muted",
                AdminAction.Unmute => "unmuted",
                _ => "closed",
            };
            if (!outcome.Done)
            {
                return Problem(context, StatusCodes.Status404NotFound, action == AdminAction.Close
                    ? $"room '{room}' is not open (it has no members)"
                    : $"room '{room}' has no member in slot {slot}");
            }
            Log.Acted(logger, caller.Who, verb, room, slot, outcome.Affected);
            return Results.Json(new AdminActionResult(room, verb, slot, outcome.Affected));
        }

        private AdminRoom ToRoom(RoomDescription description)
        {
            var snapshot = description.Snapshot;
            var members = snapshot.Members.Select(m => new AdminMember(m.Slot, m.Fingerprint.ToString(), m.Alias, m.GatewayId, m.Muted, m.Listener, m.GrantExpires)).ToList();
            var age = time.GetUtcNow() - description.OpenedAt;
            return new AdminRoom(snapshot.Room, snapshot.Epoch, snapshot.Version, snapshot.Incarnation, description.OpenedAt,
                (long)Math.Max(0, age.TotalSeconds), members.Count,
                [.. snapshot.Members.Select(m => m.GatewayId).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)], members);
        }

        // The client hears why; the log only that it was refused (a grant's failure names its room and times, which
        // stay out of logs: AdminCredentials logs the key id, subject and which check failed).
        private IResult Refuse(HttpContext context, AdminCaller caller)
        {
            if (caller.Status == StatusCodes.Status401Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer realm=\"wzp-admin\"";
            Log.Refused(logger, context.Request.Method, caller.Status, "credential refused");
            return Results.Json(new AdminError(caller.Problem!), statusCode: caller.Status);
        }

        private IResult Problem(HttpContext context, int status, string message)
        {
            Log.Refused(logger, context.Request.Method, status, message);
            return Results.Json(new AdminError(message), statusCode: status);
        }

        // Kestrel decodes every escape in a path segment but %2F, so that a '/' in a room name cannot split routes.
        private static string RoomName(string routeValue) => routeValue.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

        private static string Printable(string text)
        {
            var cut = text.Length > 32 ? text[..32] + "..." : text;
            return new string([.. cut.Select(c => char.IsControl(c) ? '?' : c)]);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3100, Level = LogLevel.Information, Message = "Room administration API on {Address} (admin grants accepted: {Grants})")]
        public static partial void Started(ILogger logger, Uri address, bool grants);

        [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Room administration API on {Address}, which is not loopback: it is plain HTTP, put it behind a TLS proxy")]
        public static partial void NotLoopback(ILogger logger, Uri address);

        [LoggerMessage(EventId = 3102, Level = LogLevel.Information, Message = "Operator key created in {Path} (mode 0600)")]
        public static partial void OperatorKeyCreated(ILogger logger, string path);

        [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Operator key file {Path} is readable by others: anyone who read it administers every room; chmod 600 and replace the key")]
        public static partial void OperatorKeyExposed(ILogger logger, string path);

        [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "No operator key file {Path}: only admin grants are accepted")]
        public static partial void NoOperatorKey(ILogger logger, string path);

        [LoggerMessage(EventId = 3105, Level = LogLevel.Information, Message = "Admin request {Method} answered {Status}: {Problem}")]
        public static partial void Refused(ILogger logger, string method, int status, string problem);

        [LoggerMessage(EventId = 3106, Level = LogLevel.Information, Message = "{Who} {Action} room {Room} slot {Slot} ({Affected} members)")]
        public static partial void Acted(ILogger logger, string who, string action, string room, ushort slot, int affected);
    }
}
