using Microsoft.Extensions.Logging;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client;

/// <summary>How a <see cref="WzpClient"/> connects, whom it trusts, and how it keeps the connection alive.</summary>
public sealed class WzpClientOptions
{
    /// <summary>The gateway. Defaults to 127.0.0.1:4433, the all-in-one relay.</summary>
    public GatewayAddress Gateway { get; set; } = GatewayAddress.Default;

    /// <summary>
    /// Further gateways of the same cluster, tried in order when <see cref="Gateway"/> cannot be reached or its
    /// connection is lost, as clients of load-balanced services do. A host name that resolves to several
    /// addresses is tried at each of them. Defaults to none.
    /// </summary>
    public IReadOnlyList<GatewayAddress> AlternateGateways { get; set; } = [];

    /// <summary>The client's identity (signs the hello). Required; the caller keeps ownership.</summary>
    public Identity? Identity { get; set; }

    /// <summary>Room to join: 1 to 128 characters without control characters. Required.</summary>
    public string Room { get; set; } = "";

    /// <summary>Display name shown to other members; up to 64 characters. Defaults to empty.</summary>
    public string Alias { get; set; } = "";

    /// <summary>
    /// Access token for gateways that require one; up to 4096 characters. Defaults to empty. It travels only in the
    /// confirm, after the gateway proved it belongs to the pinned or known cluster (PROTOCOL.md §5.4).
    /// </summary>
    public string Token { get; set; } = "";

    /// <summary>
    /// The cluster fingerprint the gateway's credential must carry. When set, the known-clusters file is not
    /// consulted. Defaults to null (trust on first use).
    /// </summary>
    public Fingerprint? PinnedClusterFingerprint { get; set; }

    /// <summary>The trust-on-first-use file. Defaults to <see cref="KnownClusters.DefaultPath"/>.</summary>
    public string KnownClustersPath { get; set; } = KnownClusters.DefaultPath;

    /// <summary>
    /// The name under which trust on first use records the cluster: a cluster name shared by several gateways,
    /// or null (the default) for the gateway's <c>host:port</c>.
    /// </summary>
    public string? ClusterName { get; set; }

    /// <summary>
    /// Accept a cluster key that differs from the recorded one and record the new one. Only for an operator's
    /// announced key change: a changed key is otherwise exactly what an impersonator presents. Defaults to false.
    /// </summary>
    public bool AllowClusterKeyChange { get; set; }

    /// <summary>Time allowed for the QUIC handshake and for the Wzp handshake up to <c>joined</c>. Defaults to 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval of the <c>ping</c> control message (PROTOCOL.md §3). Defaults to 5 s.</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often the expired keys of a previous epoch are wiped. Defaults to 1 s.</summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Reconnect and rejoin when an established connection drops. Defaults to true.</summary>
    public bool Reconnect { get; set; } = true;

    /// <summary>First reconnect delay; it doubles after each failed attempt. Defaults to 500 ms.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest delay between reconnect attempts. Defaults to 5 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Reconnect attempts after a drop before the client gives up. Defaults to 10: about 40 s of backoff, plus up to
    /// <see cref="ConnectTimeout"/> per attempt when nothing answers.
    /// </summary>
    public int MaxReconnectAttempts { get; set; } = 10;

    /// <summary>Received frames buffered for <see cref="WzpClient.ReceiveAsync"/>; the oldest is dropped (and counted) beyond. Defaults to 1024.</summary>
    public int ReceiveQueueCapacity { get; set; } = 1024;

    /// <summary>Member events buffered for <see cref="WzpClient.MemberEvents"/>; the oldest is dropped beyond. Defaults to 1024.</summary>
    public int MemberEventQueueCapacity { get; set; } = 1024;

    /// <summary>Further QUIC settings (idle timeout, certificate trust); applied to a copy for each connection.</summary>
    public Action<QuicClientOptions>? ConfigureQuic { get; set; }

    /// <summary>The clock of credentials, timers and key schedules. Defaults to the system clock.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Where the client logs (connection events only, nothing per packet above Debug). Defaults to none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    internal void Validate()
    {
        if (Identity is null) throw new ArgumentException("An identity is required.", nameof(Identity));
        if (!HelloLimits.IsValidRoom(Room)) throw new ArgumentException("A room name is 1 to 128 characters without control characters.", nameof(Room));
        if (!HelloLimits.IsValidAlias(Alias)) throw new ArgumentException("An alias is at most 64 characters without control characters.", nameof(Alias));
        if (!HelloLimits.IsValidToken(Token)) throw new ArgumentException("A token is at most 4096 characters.", nameof(Token));
        if (string.IsNullOrEmpty(Gateway.Host) || Gateway.Port is < 1 or > 65535) throw new ArgumentException("The gateway address is invalid.", nameof(Gateway));
        if (AlternateGateways.Any(g => string.IsNullOrEmpty(g.Host) || g.Port is < 1 or > 65535))
            throw new ArgumentException("An alternate gateway address is invalid.", nameof(AlternateGateways));
        if (PinnedClusterFingerprint is null && string.IsNullOrEmpty(KnownClustersPath))
            throw new ArgumentException("Without a pinned cluster fingerprint a known-clusters file is required.", nameof(KnownClustersPath));
        if (ConnectTimeout <= TimeSpan.Zero || PingInterval <= TimeSpan.Zero || MaintenanceInterval <= TimeSpan.Zero ||
            ReconnectInitialDelay <= TimeSpan.Zero || ReconnectMaxDelay < ReconnectInitialDelay)
            throw new ArgumentException("Timeouts and intervals must be positive, and the maximum reconnect delay at least the initial one.");
        if (MaxReconnectAttempts < 0 || ReceiveQueueCapacity < 1 || MemberEventQueueCapacity < 1)
            throw new ArgumentException("Reconnect attempts must be zero or more and queue capacities positive.");
    }
}
