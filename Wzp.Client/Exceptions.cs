using Wzp.Protocol;

namespace Wzp.Client;

/// <summary>
/// Every failure of <see cref="WzpClient"/> that a user can cause or meet (unreachable gateway, refused key,
/// gateway error). The message is one line, names no secret, and is fit to show as is.
/// </summary>
public class WzpClientException : Exception
{
    public WzpClientException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>No QUIC connection to the gateway could be made (DNS, timeout, refused ALPN, closed port).</summary>
public sealed class GatewayUnreachableException(string endpoint, string reason, Exception? inner = null)
    : WzpClientException($"cannot reach gateway {endpoint}: {reason}", inner)
{
    public string Endpoint { get; } = endpoint;
}

/// <summary>The gateway sent an <c>error</c> message (PROTOCOL.md §4) and closed the connection.</summary>
public sealed class GatewayErrorException(string code, string gatewayMessage)
    : WzpClientException($"gateway refused: {code}: {gatewayMessage}")
{
    /// <summary>The stable kebab-case code (<see cref="ErrorCodes"/>), e.g. <c>room-full</c>.</summary>
    public string Code { get; } = code;

    /// <summary>The gateway's human-readable message.</summary>
    public string GatewayMessage { get; } = gatewayMessage;
}

/// <summary>
/// The gateway failed this client's checks during the handshake: a credential that does not verify or is
/// outside its validity, a welcome signature that does not match, or an out-of-order message.
/// </summary>
public sealed class HandshakeFailedException(string code, string reason)
    : WzpClientException($"handshake with the gateway failed: {reason}")
{
    /// <summary>The <see cref="ErrorCodes"/> word that describes the failure.</summary>
    public string Code { get; } = code;
}

/// <summary>The gateway's cluster key is not the one the user pinned.</summary>
public sealed class ClusterPinMismatchException(Fingerprint pinned, Fingerprint presented)
    : WzpClientException($"the gateway belongs to cluster {presented}, not the pinned cluster {pinned}; refusing to connect")
{
    public Fingerprint Pinned { get; } = pinned;

    public Fingerprint Presented { get; } = presented;
}

/// <summary>
/// Trust on first use: the gateway presents a different cluster key from the one recorded for it. Either the
/// operator replaced the cluster key, or someone is impersonating the gateway.
/// </summary>
public sealed class ClusterKeyChangedException(string name, Fingerprint known, Fingerprint presented, string knownClustersPath)
    : WzpClientException(
        $"WARNING: the cluster key of '{name}' CHANGED from {known} to {presented}: someone may be impersonating the gateway; " +
        $"refusing to connect (if the operator really replaced the key, pin the new one or allow the change explicitly; record in {knownClustersPath})")
{
    public string Name { get; } = name;

    public Fingerprint Known { get; } = known;

    public Fingerprint Presented { get; } = presented;
}

/// <summary>The known-clusters file cannot be read, parsed or written.</summary>
public sealed class KnownClustersException(string message, Exception? inner = null) : WzpClientException(message, inner);

/// <summary>The connection to the gateway ended and could not be re-established.</summary>
public sealed class ConnectionLostException(string reason, Exception? inner = null)
    : WzpClientException($"connection to the gateway lost: {reason}", inner);
