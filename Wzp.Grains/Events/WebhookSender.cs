using System.Globalization;
using System.Net.Http.Headers;
using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>
/// Sends one signed webhook request. A silo-wide singleton: it holds the HTTP connection pool and the secret,
/// which therefore never enters a grain's state or a grain call.
/// </summary>
public sealed class WebhookSender : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json") { CharSet = "utf-8" };
    private readonly HttpClient _http;
    private readonly byte[] _key;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _timeout;

    /// <summary>Created by the silo's container; reads the secret file (checked at start by <see cref="WebhookOptionsValidator"/>).</summary>
    public WebhookSender(IOptions<WebhookOptions> options, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        var settings = options.Value;
        _timeProvider = timeProvider;
        _timeout = settings.Timeout;
        _key = settings.Urls.Count == 0 ? [] : WebhookSecret.TryLoad(settings.SecretFile, out var key, out var problem)
            ? key
            : throw new InvalidOperationException($"Webhooks:SecretFile {problem}.");
        _http = new HttpClient(new SocketsHttpHandler
        {
            ConnectTimeout = settings.Timeout,
            // Receivers move (DNS, load balancers): do not keep one connection for ever.
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            AllowAutoRedirect = false,
        })
        {
            Timeout = System.Threading.Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("wzp-webhooks/1");
    }

    /// <summary>POSTs <paramref name="body"/> to <paramref name="url"/>; never throws but for cancellation.</summary>
    /// <returns>Whether the receiver answered 2xx, and what went wrong otherwise (no URL, no body, no secret in it).</returns>
    public async Task<(bool Delivered, string Problem)> SendAsync(Uri url, byte[] body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(body);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        var timestamp = _timeProvider.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = Json;
        request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(_key, timestamp, body));
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            return response.IsSuccessStatusCode
                ? (true, "")
                : (false, $"status {(int)response.StatusCode}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, $"no answer within {_timeout}");
        }
        catch (HttpRequestException exception)
        {
            return (false, exception.HttpRequestError.ToString());
        }
    }

    /// <summary>A URL as logs may show it: scheme, host, port and path (no user info, no query that may hold a token).</summary>
    public static string Redact(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        return $"{url.Scheme}://{url.Authority}{url.AbsolutePath}";
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _http.Dispose();
        Array.Clear(_key);
    }
}
