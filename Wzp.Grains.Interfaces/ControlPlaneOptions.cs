using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>
/// Timings and limits of the control plane, bound from the <c>Cluster</c> section of appsettings.json. Silos and
/// gateways read the same section so that the heartbeat and the expiry it must beat stay consistent.
/// </summary>
public sealed class ControlPlaneOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Cluster";

    /// <summary>
    /// Maximum members of one room. Defaults to 1000. Between 1 and 65 535 (slots are 16-bit). Every member
    /// costs the room one entry per snapshot and its gateway one rekey per epoch, so keep it modest.
    /// </summary>
    public int MembersPerRoom { get; set; } = 1000;

    /// <summary>
    /// Period of the room's epoch timer: every member ratchets at least this often even without churn.
    /// Defaults to 10 minutes (PROTOCOL.md §7). At least 1 second.
    /// </summary>
    public TimeSpan EpochPeriod { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long a gateway has to report that its members finished the rekey to an epoch; after that its members
    /// of the room are evicted. Defaults to 5 seconds. At least 100 ms.
    /// </summary>
    public TimeSpan RekeyTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After a room (re-)activates, how long it holds joins back while the gateways restore the members they
    /// still serve (a room whose silo died). It ends early once every live gateway answered, which for a new
    /// room takes a few milliseconds. Defaults to 2 seconds. At most 30 seconds.
    /// </summary>
    public TimeSpan RestoreWindow { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A gateway that has not heartbeaten for this long is removed from the directory and its members evicted.
    /// Defaults to 15 seconds. Must be at least twice <see cref="GatewayHeartbeatPeriod"/>.
    /// </summary>
    public TimeSpan GatewayExpiry { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How often a gateway heartbeats and polls the stamps of its rooms (which also re-activates a room whose
    /// silo died). Defaults to 5 seconds. At least 50 ms.
    /// </summary>
    public TimeSpan GatewayHeartbeatPeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often a room asks the directory whether its gateways are alive. The directory also pushes expiries to
    /// rooms; this check covers a directory that lost its state with its silo. Defaults to 30 seconds. At least 100 ms.
    /// </summary>
    public TimeSpan RoomGatewayCheckPeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Fingerprint of the cluster key (as <c>wzp cluster init</c> prints it). When set, the directory refuses
    /// gateways whose credential another key signed; when empty, it refuses gateways whose key differs from that
    /// of the gateways already registered. Public: it is what clients pin.
    /// </summary>
    public string KeyFingerprint { get; set; } = "";
}

/// <summary>Rejects inconsistent <see cref="ControlPlaneOptions"/> at start-up.</summary>
public sealed class ControlPlaneOptionsValidator : IValidateOptions<ControlPlaneOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, ControlPlaneOptions options)
    {
        var failures = new List<string>();
        if (options.MembersPerRoom is < 1 or > RoomLimits.MaxMembers)
        {
            failures.Add($"Cluster:MembersPerRoom must be between 1 and {RoomLimits.MaxMembers}, not {options.MembersPerRoom}.");
        }

        if (options.EpochPeriod < TimeSpan.FromSeconds(1))
        {
            failures.Add($"Cluster:EpochPeriod must be at least 1 second, not {options.EpochPeriod}.");
        }

        if (options.RestoreWindow < TimeSpan.Zero || options.RestoreWindow > TimeSpan.FromSeconds(30))
        {
            failures.Add($"Cluster:RestoreWindow must be between 0 and 30 seconds, not {options.RestoreWindow}.");
        }

        if (options.RekeyTimeout < TimeSpan.FromMilliseconds(100))
        {
            failures.Add($"Cluster:RekeyTimeout must be at least 100 ms, not {options.RekeyTimeout}.");
        }

        if (options.GatewayHeartbeatPeriod < TimeSpan.FromMilliseconds(50))
        {
            failures.Add($"Cluster:GatewayHeartbeatPeriod must be at least 50 ms, not {options.GatewayHeartbeatPeriod}.");
        }

        if (options.GatewayExpiry < options.GatewayHeartbeatPeriod * 2)
        {
            failures.Add($"Cluster:GatewayExpiry ({options.GatewayExpiry}) must be at least twice Cluster:GatewayHeartbeatPeriod ({options.GatewayHeartbeatPeriod}).");
        }

        if (options.RoomGatewayCheckPeriod < TimeSpan.FromMilliseconds(100))
        {
            failures.Add($"Cluster:RoomGatewayCheckPeriod must be at least 100 ms, not {options.RoomGatewayCheckPeriod}.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
