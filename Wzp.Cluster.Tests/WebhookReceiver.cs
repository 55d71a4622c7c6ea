using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A real HTTP receiver of webhooks (Kestrel on loopback): it records every request it answered 200 to, can be
/// taken down and brought back on the same port, and can stall (hold every request until released).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly ConcurrentQueue<Received> _received = new();
    private WebApplication? _app;
    private TaskCompletionSource? _stall;
    private int _held;

    private WebhookReceiver(int port) => Port = port;

    public int Port { get; private set; }

    public bool IsUp => _app is not null;

    public Uri Url => new($"http://127.0.0.1:{Port}/hooks/wzp?token=not-for-logs");

    /// <summary>Requests that entered the handler while it stalled (answered or not).</summary>
    public int Held => Volatile.Read(ref _held);

    public IReadOnlyCollection<Received> Received => _received;

    /// <summary>The answered requests of one room, in the order they were answered.</summary>
    public List<Received> Of(string room) => [.. _received.Where(r => r.Room == room)];

    public static async Task<WebhookReceiver> StartAsync()
    {
        var receiver = new WebhookReceiver(0);
        await receiver.UpAsync();
        return receiver;
    }

    /// <summary>Listens again, on the port it had (connections are refused while it is down).</summary>
    public async Task UpAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(options => options.Listen(IPAddress.Loopback, Port));
        var app = builder.Build();
        app.MapPost("/hooks/wzp", HandleAsync);
        await app.StartAsync();
        Port = new Uri(app.Urls.Single()).Port;
        _app = app;
    }

    public async Task DownAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>From now on, every request waits until <see cref="Release"/>.</summary>
    public void Stall()
    {
        Volatile.Write(ref _held, 0);
        Volatile.Write(ref _stall, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }

    public void Release() => Interlocked.Exchange(ref _stall, null)?.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        Release();
        await DownAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        if (Volatile.Read(ref _stall) is { } stall)
        {
            Interlocked.Increment(ref _held);
            await stall.Task;
        }

        var bytes = body.ToArray();
        var json = JsonDocument.Parse(bytes).RootElement.Clone();
        _received.Enqueue(new Received(
            context.Request.Headers["Wzp-Timestamp"].ToString(),
            context.Request.Headers["Wzp-Signature"].ToString(),
            context.Request.ContentType ?? "",
            bytes,
            json));
        context.Response.StatusCode = StatusCodes.Status200OK;
    }
}

/// <summary>One request as the receiver got it.</summary>
public sealed record Received(string Timestamp, string Signature, string ContentType, byte[] Body, JsonElement Json)
{
    public string Room => Json.GetProperty("room").GetString()!;

    public string Event => Json.GetProperty("event").GetString()!;

    public long Sequence => Json.GetProperty("sequence").GetInt64();

    public ushort Slot => Json.TryGetProperty("participant", out var p) ? p.GetProperty("slot").GetUInt16() : (ushort)0;

    public string? Reason => Json.TryGetProperty("reason", out var r) ? r.GetString() : null;

    public override string ToString() => $"{Event} slot {Slot} {Reason} #{Sequence}";
}
