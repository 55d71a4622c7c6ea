using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Wzp.Client;

/// <summary>A gateway's <c>host:port</c>; IPv6 literals in brackets (<c>[::1]:4433</c>).</summary>
public readonly record struct GatewayAddress(string Host, int Port)
{
    /// <summary>The port of the all-in-one relay (DESIGN.md).</summary>
    public const int DefaultPort = 4433;

    /// <summary>Where <c>wzp relay</c> listens by default.</summary>
    public static GatewayAddress Default => new("127.0.0.1", DefaultPort);

    /// <summary>Parses <c>host</c>, <c>host:port</c> or <c>[v6]:port</c>; a missing port is <see cref="DefaultPort"/>.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out GatewayAddress? address)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        string host;
        string? port = null;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 2) return false;
            host = text[1..close];
            var rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':') return false;
                port = rest[1..];
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) != colon) return false; // bare IPv6 needs brackets
            host = colon >= 0 ? text[..colon] : text;
            port = colon >= 0 ? text[(colon + 1)..] : null;
        }
        if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || char.IsControl(c))) return false;
        var number = DefaultPort;
        if (port is not null && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number is < 1 or > 65535))
            return false;
        address = new GatewayAddress(host, number);
        return true;
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
