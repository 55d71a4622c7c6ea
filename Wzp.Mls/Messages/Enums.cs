namespace Wzp.Mls.Messages;

/// <summary>ProtocolVersion (RFC 9420 §6).</summary>
public enum ProtocolVersion : ushort
{
    Reserved = 0,
    Mls10 = 1,
}

/// <summary>WireFormat (RFC 9420 §6, §17.2).</summary>
public enum WireFormat : ushort
{
    Reserved = 0,
    PublicMessage = 1,
    PrivateMessage = 2,
    Welcome = 3,
    GroupInfo = 4,
    KeyPackage = 5,
}

/// <summary>ContentType (RFC 9420 §6).</summary>
public enum ContentType : byte
{
    Reserved = 0,
    Application = 1,
    Proposal = 2,
    Commit = 3,
}

/// <summary>SenderType (RFC 9420 §6).</summary>
public enum SenderType : byte
{
    Reserved = 0,
    Member = 1,
    External = 2,
    NewMemberProposal = 3,
    NewMemberCommit = 4,
}

/// <summary>LeafNodeSource (RFC 9420 §7.2).</summary>
public enum LeafNodeSource : byte
{
    Reserved = 0,
    KeyPackage = 1,
    Update = 2,
    Commit = 3,
}

/// <summary>NodeType (RFC 9420 §7.8).</summary>
public enum NodeType : byte
{
    Reserved = 0,
    Leaf = 1,
    Parent = 2,
}

/// <summary>PSKType (RFC 9420 §8.4).</summary>
public enum PskType : byte
{
    Reserved = 0,
    External = 1,
    Resumption = 2,
}

/// <summary>ResumptionPSKUsage (RFC 9420 §8.4).</summary>
public enum ResumptionPskUsage : byte
{
    Reserved = 0,
    Application = 1,
    ReInit = 2,
    Branch = 3,
}

/// <summary>ProposalOrRefType (RFC 9420 §12.4).</summary>
public enum ProposalOrRefType : byte
{
    Reserved = 0,
    Proposal = 1,
    Reference = 2,
}

/// <summary>
/// Registered proposal types (RFC 9420 §17.4). Wire fields carry a plain <see cref="ushort"/> because capabilities
/// lists hold unregistered and GREASE values that must survive a round trip.
/// </summary>
public static class ProposalTypes
{
    public const ushort Add = 0x0001;
    public const ushort Update = 0x0002;
    public const ushort Remove = 0x0003;
    public const ushort Psk = 0x0004;
    public const ushort ReInit = 0x0005;
    public const ushort ExternalInit = 0x0006;
    public const ushort GroupContextExtensions = 0x0007;
}

/// <summary>Registered extension types (RFC 9420 §17.3).</summary>
public static class ExtensionTypes
{
    public const ushort ApplicationId = 0x0001;
    public const ushort RatchetTree = 0x0002;
    public const ushort RequiredCapabilities = 0x0003;
    public const ushort ExternalPub = 0x0004;
    public const ushort ExternalSenders = 0x0005;
}

/// <summary>Registered credential types (RFC 9420 §17.5).</summary>
public static class CredentialTypes
{
    public const ushort Basic = 0x0001;
    public const ushort X509 = 0x0002;
}
