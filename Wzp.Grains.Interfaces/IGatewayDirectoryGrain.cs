using System.Collections.Immutable;
using Orleans.Concurrency;

namespace Wzp.Grains;

/// <summary>
/// The cluster's list of live gateways (one grain, key <see cref="GatewayDirectory.Key"/>), and the relay for
/// gateway link negotiation. Gateways register, then heartbeat; a gateway silent for
/// <c>Cluster:GatewayExpiry</c> is removed and its members are evicted from every room that hosts them.
/// </summary>
[Alias("wzp.IGatewayDirectoryGrain")]
public interface IGatewayDirectoryGrain : IGrainWithStringKey
{
    /// <summary>
    /// Adds or refreshes a gateway. <paramref name="rooms"/> are the rooms where it serves members: a directory
    /// that re-activated learns from them which rooms to tell when the gateway later expires. Refused when another
    /// process holds the id and is alive (heard within two heartbeat periods: two gateways with one id would
    /// evict each other's members at every heartbeat), or when the gateway belongs to another cluster key.
    /// </summary>
    [Alias("Register")]
    Task<RegisterStatus> Register(GatewayRegistration registration, ImmutableArray<string> rooms);

    /// <summary>Refreshes a gateway; false when the directory does not know it (it must register again).</summary>
    [Alias("Heartbeat")]
    Task<bool> Heartbeat(GatewayHeartbeat heartbeat);

    /// <summary>Removes a gateway now (graceful shutdown); its members are evicted.</summary>
    [Alias("Unregister")]
    Task Unregister(string gatewayId);

    /// <summary>
    /// Every room that hosts members of a gateway the directory knows, sorted: how the administration API enumerates
    /// rooms. Rooms tell the directory when they attach and detach a gateway (one-way, off their join path), so a room
    /// that just opened or emptied may be missing or listed for a moment.
    /// </summary>
    [Alias("ListRooms")]
    Task<ImmutableArray<string>> ListRooms();

    /// <summary>Every live gateway.</summary>
    [Alias("List")]
    Task<ImmutableArray<GatewayInfo>> List();

    /// <summary>One live gateway, or null: what a link negotiation needs, without the whole list.</summary>
    [Alias("Get")]
    Task<GatewayInfo?> Get(string gatewayId);

    /// <summary>Every live gateway, with how long until the list is known to be complete (a re-activated room
    /// waits that long before admitting newcomers).</summary>
    [Alias("Census")]
    Task<GatewayCensus> Census();

    /// <summary>Records that <paramref name="room"/> hosts members of the gateway and returns its registration,
    /// or null when the gateway is not registered.</summary>
    [Alias("AttachRoom")]
    Task<GatewayRegistration?> AttachRoom(string gatewayId, string room);

    /// <summary>
    /// Records that <paramref name="room"/> attached gateway process <paramref name="instanceId"/> on its own
    /// (from the observer the gateway sent), without waiting on the directory. When that process is not the one
    /// registered (unknown once the directory is settled, or replaced), the room is told to evict it.
    /// </summary>
    [OneWay, Alias("NoteRoom")]
    Task NoteRoom(string gatewayId, Guid instanceId, string room);

    /// <summary>The room no longer hosts members of the gateway.</summary>
    [OneWay, Alias("DetachRoom")]
    Task DetachRoom(string gatewayId, string room);

    /// <summary>
    /// A room's periodic check of the gateways hosting its members; re-attaches the room to the live ones, which
    /// also rebuilds the directory's room lists after the directory itself re-activated.
    /// </summary>
    [Alias("CheckGateways")]
    Task<GatewayCheckResult> CheckGateways(string room, ImmutableArray<string> gatewayIds);

    /// <summary>Passes a link message to the target gateway's observer.</summary>
    [Alias("RelayLinkMessage")]
    Task<LinkDelivery> RelayLinkMessage(LinkMessage message);
}

/// <summary>Where to find the directory.</summary>
public static class GatewayDirectory
{
    /// <summary>The one key of <see cref="IGatewayDirectoryGrain"/>.</summary>
    public const string Key = "default";

    /// <summary>The directory grain.</summary>
    public static IGatewayDirectoryGrain GetGatewayDirectory(this IGrainFactory grainFactory) =>
        grainFactory.GetGrain<IGatewayDirectoryGrain>(Key);
}
