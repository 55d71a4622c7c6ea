using System.Net;
using Microsoft.Extensions.Options;

namespace Wzp.Gateway;

/// <summary>The <c>Gateway</c> section of appsettings.json.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>
    /// This gateway's id in the cluster: what its credential names and what rooms record. Defaults to
    /// <c>gateway-1</c>; every gateway of a cluster needs its own.
    /// </summary>
    public string GatewayId { get; set; } = "gateway-1";

    /// <summary>UDP address clients reach over QUIC. Defaults to <c>127.0.0.1:4433</c>.</summary>
    public string ListenAddress { get; set; } = "127.0.0.1:4433";

    /// <summary>
    /// UDP address of the socket for media between gateways (PROTOCOL.md §8). Defaults to <c>127.0.0.1:0</c>
    /// (any free port). Must be reachable from the other gateways.
    /// </summary>
    public string LinkListenAddress { get; set; } = "127.0.0.1:0";

    /// <summary>
    /// Address other gateways send link datagrams to, when it differs from the bound address (NAT, 0.0.0.0).
    /// Defaults to empty: the bound address.
    /// </summary>
    public string LinkAdvertiseAddress { get; set; } = "";

    /// <summary>Folder for the identity, credential and TLS files. Defaults to <c>.wzp</c> under the working directory.</summary>
    public string DataDirectory { get; set; } = ".wzp";

    /// <summary>Seed file of the gateway's identity, created on first start. Defaults to <c>{DataDirectory}/gateway.seed</c>.</summary>
    public string IdentityFile { get; set; } = "";

    /// <summary>The credential issued to this gateway by <c>wzp cluster issue</c>. Defaults to <c>{DataDirectory}/gateway.credential.json</c>.</summary>
    public string CredentialFile { get; set; } = "";

    /// <summary>
    /// All-in-one mode: when no credential file exists, create the cluster key in <see cref="ClusterKeyFile"/> (if
    /// missing) and issue this gateway's credential with it. Defaults to false; a scale-out gateway must be given
    /// a credential and refuses to start without one.
    /// </summary>
    public bool SelfIssueCredential { get; set; }

    /// <summary>Cluster key seed file for <see cref="SelfIssueCredential"/>. Defaults to <c>{DataDirectory}/cluster.seed</c>.</summary>
    public string ClusterKeyFile { get; set; } = "";

    /// <summary>Validity of a self-issued credential. Defaults to 365 days.</summary>
    public TimeSpan SelfIssuedValidity { get; set; } = TimeSpan.FromDays(365);

    /// <summary>
    /// QUIC connections from one IP address at once; more are refused. Defaults to 256. Raise it when many clients
    /// share an address (a NAT, a load-test machine).
    /// </summary>
    public int MaxConnectionsPerAddress { get; set; } = 256;

    /// <summary>QUIC connections at once, in total. Defaults to 10 000.</summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>
    /// Clients being admitted at once (from their QUIC connection through the handshake to the end of their join),
    /// in total. When it is full, the oldest client that has not sent a complete <c>hello</c> yet makes room for a
    /// newcomer; if every client is past <c>hello</c>, newcomers are refused with <c>busy</c>. Defaults to 512.
    /// </summary>
    public int MaxPendingHandshakes { get; set; } = 512;

    /// <summary>Clients being admitted at once from one IPv4 address or IPv6 /64. Defaults to 16.</summary>
    public int MaxPendingHandshakesPerAddress { get; set; } = 16;

    /// <summary>Time a client has from connecting to a complete <c>hello</c>. Defaults to 5 seconds (a client sends it
    /// one round trip after connecting; the time allows for lost packets).</summary>
    public TimeSpan HelloTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Time a client has from connecting to a valid <c>confirm</c>. Defaults to 10 seconds.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Membership-triggered rekeys of one member are at most this often (PROTOCOL.md §7). Defaults to 1 second.</summary>
    public TimeSpan RekeyDebounce { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A member that has not finished a membership rekey this long after the room's epoch advanced is
    /// disconnected, so that the gateway can report in time and the room does not evict every member of this
    /// gateway for one slow client. Defaults to 3 seconds; keep it below <c>Cluster:RekeyTimeout</c> (5 s).
    /// </summary>
    public TimeSpan MemberRekeyDeadline { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Control messages queued for one client before it is considered stuck and closed. Defaults to 256.</summary>
    public int MaxQueuedControlMessages { get; set; } = 256;

    /// <summary>A link that received nothing for this long while media was sent on it is re-negotiated. Defaults to 15 seconds.</summary>
    public TimeSpan LinkIdleTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Optional access token every confirm must carry (PROTOCOL.md §5.4: clients send it only after verifying the
    /// gateway). Defaults to empty: no token required.
    /// </summary>
    public string Token { get; set; } = "";

    /// <summary>
    /// Media datagrams per second one member may send, sustained; the excess is dropped before it is opened and
    /// counted as <c>uplink-limit</c>. A voice stream is 50 datagrams/s. Defaults to 100 (twice that, for jitter and
    /// a second stream). Without a limit one member's flood (about 31 minimal datagrams per QUIC packet, each sealed
    /// for every recipient) starves every room of the gateway. 1 to 1 000 000.
    /// </summary>
    public int MemberUplinkRate { get; set; } = 100;

    /// <summary>
    /// Datagrams one member may send at once above <see cref="MemberUplinkRate"/>, as after a network stall that
    /// delivers a second of queued voice together. Defaults to 50 (one second of one voice stream). 1 to 1 000 000.
    /// </summary>
    public int MemberUplinkBurst { get; set; } = 50;

    /// <summary>
    /// How often the credential file is read again, so that a renewed credential is used without a restart (new
    /// handshakes and links present it; existing sessions are unaffected). Defaults to 1 minute. At least 1 second.
    /// </summary>
    public TimeSpan CredentialReloadPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// A credential this close to its end is warned about (a log line every hour, and the
    /// <c>wzp.gateway.credential.expiry</c> gauge says the seconds left all along); a self-issuing gateway issues
    /// itself a new one. Defaults to 7 days. Must be positive.
    /// </summary>
    public TimeSpan CredentialExpiryWarning { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Confirms with a wrong token accepted from one source address (an IPv6 /64) per
    /// <see cref="TokenFailureWindow"/>; beyond it the address's handshakes are refused before the token is even
    /// compared, so a token cannot be guessed at the rate handshakes complete. Defaults to 10. At least 1.
    /// </summary>
    public int MaxTokenFailuresPerAddress { get; set; } = 10;

    /// <summary>The window of <see cref="MaxTokenFailuresPerAddress"/>. Defaults to 1 minute. Must be positive.</summary>
    public TimeSpan TokenFailureWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Signed grants (JWT) members must present, and the issuer keys accepted (<c>Gateway:Grants:*</c>).</summary>
    public GatewayGrantOptions Grants { get; set; } = new();

    internal string ResolvedIdentityFile => Resolve(IdentityFile, "gateway.seed");

    internal string ResolvedCredentialFile => Resolve(CredentialFile, "gateway.credential.json");

    internal string ResolvedClusterKeyFile => Resolve(ClusterKeyFile, "cluster.seed");

    internal string CertificateFile => Path.Combine(DataDirectory, "tls-cert.pem");

    /// <summary>
    /// The secret QUIC stateless resets are derived from, created on first start. Give every gateway behind one
    /// load balancer the same file: a gateway that receives packets of a connection it does not hold (the load
    /// balancer moved the flow, or the gateway restarted) then resets it in a way the client accepts, and the
    /// client reconnects at once instead of waiting for its idle timeout. Defaults to
    /// <c>{DataDirectory}/quic-reset.seed</c> (per gateway: only the gateway's own restarts are recognised).
    /// </summary>
    public string StatelessResetKeyFile { get; set; } = "";

    internal string ResolvedStatelessResetKeyFile => Resolve(StatelessResetKeyFile, "quic-reset.seed");

    internal string CertificateKeyFile => Path.Combine(DataDirectory, "tls-key.pem");

    private string Resolve(string configured, string name) => string.IsNullOrWhiteSpace(configured) ? Path.Combine(DataDirectory, name) : configured;
}

internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.GatewayId) || options.GatewayId.Length > 128 || options.GatewayId.Any(char.IsControl))
            failures.Add("Gateway:GatewayId must be 1 to 128 characters without control characters.");
        if (!IPEndPoint.TryParse(options.ListenAddress, out _)) failures.Add($"Gateway:ListenAddress '{options.ListenAddress}' is not an IP:port.");
        if (!IPEndPoint.TryParse(options.LinkListenAddress, out _)) failures.Add($"Gateway:LinkListenAddress '{options.LinkListenAddress}' is not an IP:port.");
        if (options.LinkAdvertiseAddress.Length > 0 && !IPEndPoint.TryParse(options.LinkAdvertiseAddress, out _))
            failures.Add($"Gateway:LinkAdvertiseAddress '{options.LinkAdvertiseAddress}' is not an IP:port.");
        if (options.MaxConnections < 1 || options.MaxConnectionsPerAddress < 1)
            failures.Add("Gateway:MaxConnections and MaxConnectionsPerAddress must be at least 1.");
        if (options.MaxPendingHandshakes < 1 || options.MaxPendingHandshakesPerAddress < 1)
            failures.Add("Gateway:MaxPendingHandshakes and MaxPendingHandshakesPerAddress must be at least 1.");
        if (options.HandshakeTimeout <= TimeSpan.Zero) failures.Add("Gateway:HandshakeTimeout must be positive.");
        if (options.HelloTimeout <= TimeSpan.Zero || options.HelloTimeout > options.HandshakeTimeout)
            failures.Add("Gateway:HelloTimeout must be positive and at most Gateway:HandshakeTimeout.");
        if (options.RekeyDebounce < TimeSpan.Zero) failures.Add("Gateway:RekeyDebounce must not be negative.");
        if (options.MemberRekeyDeadline <= options.RekeyDebounce)
            failures.Add("Gateway:MemberRekeyDeadline must be longer than Gateway:RekeyDebounce.");
        if (options.MemberUplinkRate is < 1 or > 1_000_000) failures.Add("Gateway:MemberUplinkRate must be 1 to 1 000 000 datagrams per second.");
        if (options.MemberUplinkBurst is < 1 or > 1_000_000) failures.Add("Gateway:MemberUplinkBurst must be 1 to 1 000 000 datagrams.");
        if (options.CredentialReloadPeriod < TimeSpan.FromSeconds(1)) failures.Add("Gateway:CredentialReloadPeriod must be at least 1 second.");
        if (options.CredentialExpiryWarning <= TimeSpan.Zero) failures.Add("Gateway:CredentialExpiryWarning must be positive.");
        else if (options.SelfIssueCredential && options.SelfIssuedValidity <= options.CredentialExpiryWarning)
            failures.Add("Gateway:SelfIssuedValidity must be longer than Gateway:CredentialExpiryWarning (or every check would issue a new credential).");
        if (options.MaxTokenFailuresPerAddress < 1) failures.Add("Gateway:MaxTokenFailuresPerAddress must be at least 1.");
        if (options.TokenFailureWindow <= TimeSpan.Zero) failures.Add("Gateway:TokenFailureWindow must be positive.");
        if (options.MaxQueuedControlMessages < 8) failures.Add("Gateway:MaxQueuedControlMessages must be at least 8.");
        failures.AddRange(options.Grants.Validate(options.Token));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
