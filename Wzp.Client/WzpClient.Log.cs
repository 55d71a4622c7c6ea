using Microsoft.Extensions.Logging;

namespace Wzp.Client;

public sealed partial class WzpClient
{
    /// <summary>Connection-level events only: nothing here runs per packet.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Joined room {Room} as slot {Slot} through {Gateway} ({Members} members)")]
        public static partial void Joined(ILogger logger, string room, int slot, string gateway, int members);

        [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Left room {Room}")]
        public static partial void Left(ILogger logger, string room);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Connection to the gateway ended: {Reason}")]
        public static partial void LinkEnded(ILogger logger, string reason);

        [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Reconnecting to {Gateway} (attempt {Attempt})")]
        public static partial void Reconnecting(ILogger logger, int attempt, string gateway);

        [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Hop rekeyed to epoch {Epoch}")]
        public static partial void Rekeyed(ILogger logger, uint epoch);

        [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "Gateway asked for a rekey to epoch {Epoch}; acknowledged")]
        public static partial void RekeyAcknowledged(ILogger logger, uint epoch);

        [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Gateway broke the protocol: {Reason}")]
        public static partial void ProtocolFailure(ILogger logger, string reason);

        [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Gateway {Gateway} failed ({Reason}); trying the next")]
        public static partial void GatewayFailed(ILogger logger, string gateway, string reason);

        [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Trusting cluster {Fingerprint} for {Name} on first use")]
        public static partial void ClusterKeyRecorded(ILogger logger, string name, string fingerprint);

        [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "Cluster key of {Name} replaced by {Fingerprint} as explicitly allowed")]
        public static partial void ClusterKeyReplaced(ILogger logger, string name, string fingerprint);
    }
}
