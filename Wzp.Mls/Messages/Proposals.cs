using Wzp.Mls.Codec;

namespace Wzp.Mls.Messages;

/// <summary>
/// Proposal (RFC 9420 §12.1): the proposal type followed by its body. Each subclass also codes its body alone
/// (<c>EncodeBody</c>/<c>DecodeBody</c>), the form the RFC's Add, Update, ... structs take. Unknown proposal types
/// have no length on the wire and fail to decode.
/// </summary>
public abstract record Proposal : ITlsCodec<Proposal>
{
    public abstract ushort ProposalType { get; }

    public abstract void EncodeBody(TlsWriter writer);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16(ProposalType);
        EncodeBody(writer);
    }

    public static Proposal Decode(ref TlsReader reader)
    {
        var type = reader.ReadUInt16();
        return type switch
        {
            ProposalTypes.Add => AddProposal.DecodeBody(ref reader),
            ProposalTypes.Update => UpdateProposal.DecodeBody(ref reader),
            ProposalTypes.Remove => RemoveProposal.DecodeBody(ref reader),
            ProposalTypes.Psk => PreSharedKeyProposal.DecodeBody(ref reader),
            ProposalTypes.ReInit => ReInitProposal.DecodeBody(ref reader),
            ProposalTypes.ExternalInit => ExternalInitProposal.DecodeBody(ref reader),
            ProposalTypes.GroupContextExtensions => GroupContextExtensionsProposal.DecodeBody(ref reader),
            _ => throw new MlsDecodeException($"Unknown proposal type {type}."),
        };
    }

    /// <summary>ProposalRef (RFC 9420 §5.2): RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent).</summary>
    public static byte[] Reference(Crypto.CipherSuite suite, ReadOnlySpan<byte> authenticatedContent)
        => suite.RefHash("MLS 1.0 Proposal Reference"u8, authenticatedContent);
}

/// <summary>Add (RFC 9420 §12.1.1).</summary>
public sealed record AddProposal(KeyPackage KeyPackage) : Proposal
{
    public override ushort ProposalType => ProposalTypes.Add;

    public override void EncodeBody(TlsWriter writer) => KeyPackage.Encode(writer);

    public static AddProposal DecodeBody(ref TlsReader reader) => new(KeyPackage.Decode(ref reader));
}

/// <summary>Update (RFC 9420 §12.1.2).</summary>
public sealed record UpdateProposal(LeafNode LeafNode) : Proposal
{
    public override ushort ProposalType => ProposalTypes.Update;

    public override void EncodeBody(TlsWriter writer) => LeafNode.Encode(writer);

    public static UpdateProposal DecodeBody(ref TlsReader reader) => new(LeafNode.Decode(ref reader));
}

/// <summary>Remove (RFC 9420 §12.1.3): the leaf index removed.</summary>
public sealed record RemoveProposal(uint Removed) : Proposal
{
    public override ushort ProposalType => ProposalTypes.Remove;

    public override void EncodeBody(TlsWriter writer) => writer.WriteUInt32(Removed);

    public static RemoveProposal DecodeBody(ref TlsReader reader) => new(reader.ReadUInt32());
}

/// <summary>PreSharedKey (RFC 9420 §12.1.4).</summary>
public sealed record PreSharedKeyProposal(PreSharedKeyId Psk) : Proposal
{
    public override ushort ProposalType => ProposalTypes.Psk;

    public override void EncodeBody(TlsWriter writer) => Psk.Encode(writer);

    public static PreSharedKeyProposal DecodeBody(ref TlsReader reader) => new(PreSharedKeyId.Decode(ref reader));
}

/// <summary>ReInit (RFC 9420 §12.1.5).</summary>
public sealed record ReInitProposal(byte[] GroupId, ProtocolVersion Version, ushort CipherSuite, Extension[] Extensions) : Proposal
{
    public override ushort ProposalType => ProposalTypes.ReInit;

    public override void EncodeBody(TlsWriter writer)
    {
        writer.WriteOpaque(GroupId);
        writer.WriteUInt16((ushort)Version);
        writer.WriteUInt16(CipherSuite);
        writer.WriteVector(Extensions);
    }

    public static ReInitProposal DecodeBody(ref TlsReader reader)
        => new(reader.ReadOpaque(), (ProtocolVersion)reader.ReadUInt16(), reader.ReadUInt16(), reader.ReadVector<Extension>());
}

/// <summary>ExternalInit (RFC 9420 §12.1.6).</summary>
public sealed record ExternalInitProposal(byte[] KemOutput) : Proposal
{
    public override ushort ProposalType => ProposalTypes.ExternalInit;

    public override void EncodeBody(TlsWriter writer) => writer.WriteOpaque(KemOutput);

    public static ExternalInitProposal DecodeBody(ref TlsReader reader) => new(reader.ReadOpaque());
}

/// <summary>GroupContextExtensions (RFC 9420 §12.1.7).</summary>
public sealed record GroupContextExtensionsProposal(Extension[] Extensions) : Proposal
{
    public override ushort ProposalType => ProposalTypes.GroupContextExtensions;

    public override void EncodeBody(TlsWriter writer) => writer.WriteVector(Extensions);

    public static GroupContextExtensionsProposal DecodeBody(ref TlsReader reader) => new(reader.ReadVector<Extension>());
}

/// <summary>
/// PreSharedKeyID (RFC 9420 §8.4). External PSKs set <see cref="PskId"/>; resumption PSKs set
/// <see cref="Usage"/>, <see cref="PskGroupId"/> and <see cref="PskEpoch"/>.
/// </summary>
public sealed record PreSharedKeyId(
    PskType PskType,
    byte[]? PskId,
    ResumptionPskUsage Usage,
    byte[]? PskGroupId,
    ulong PskEpoch,
    byte[] PskNonce) : ITlsCodec<PreSharedKeyId>
{
    public static PreSharedKeyId External(byte[] pskId, byte[] pskNonce) => new(PskType.External, pskId, ResumptionPskUsage.Reserved, null, 0, pskNonce);

    public static PreSharedKeyId Resumption(ResumptionPskUsage usage, byte[] groupId, ulong epoch, byte[] pskNonce)
        => new(PskType.Resumption, null, usage, groupId, epoch, pskNonce);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt8((byte)PskType);
        if (PskType == PskType.External)
        {
            writer.WriteOpaque(PskId ?? throw new InvalidOperationException("An external PSK needs an id."));
        }
        else if (PskType == PskType.Resumption)
        {
            writer.WriteUInt8((byte)Usage);
            writer.WriteOpaque(PskGroupId ?? throw new InvalidOperationException("A resumption PSK needs a group id."));
            writer.WriteUInt64(PskEpoch);
        }
        else
        {
            throw new InvalidOperationException($"Unknown PSK type {PskType}.");
        }
        writer.WriteOpaque(PskNonce);
    }

    public static PreSharedKeyId Decode(ref TlsReader reader)
    {
        var type = (PskType)reader.ReadUInt8();
        switch (type)
        {
            case PskType.External:
                var id = reader.ReadOpaque();
                return External(id, reader.ReadOpaque());
            case PskType.Resumption:
                var usage = (ResumptionPskUsage)reader.ReadUInt8();
                var groupId = reader.ReadOpaque();
                var epoch = reader.ReadUInt64();
                return Resumption(usage, groupId, epoch, reader.ReadOpaque());
            default:
                throw new MlsDecodeException($"Unknown PSK type {(byte)type}.");
        }
    }
}

/// <summary>ProposalOrRef (RFC 9420 §12.4): a proposal by value or a ProposalRef.</summary>
public sealed record ProposalOrRef : ITlsCodec<ProposalOrRef>
{
    private ProposalOrRef(Proposal? proposal, byte[]? reference)
    {
        Proposal = proposal;
        Reference = reference;
    }

    public Proposal? Proposal { get; }

    public byte[]? Reference { get; }

    public ProposalOrRefType Type => Proposal is not null ? ProposalOrRefType.Proposal : ProposalOrRefType.Reference;

    public static ProposalOrRef ByValue(Proposal proposal) => new(proposal ?? throw new ArgumentNullException(nameof(proposal)), null);

    public static ProposalOrRef ByReference(byte[] reference) => new(null, reference ?? throw new ArgumentNullException(nameof(reference)));

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt8((byte)Type);
        if (Proposal is not null) Proposal.Encode(writer);
        else writer.WriteOpaque(Reference);
    }

    public static ProposalOrRef Decode(ref TlsReader reader) => (ProposalOrRefType)reader.ReadUInt8() switch
    {
        ProposalOrRefType.Proposal => ByValue(Proposal.Decode(ref reader)),
        ProposalOrRefType.Reference => ByReference(reader.ReadOpaque()),
        var t => throw new MlsDecodeException($"Unknown ProposalOrRef type {(byte)t}."),
    };
}

/// <summary>Commit (RFC 9420 §12.4).</summary>
public sealed record Commit(ProposalOrRef[] Proposals, UpdatePath? Path) : ITlsCodec<Commit>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteVector(Proposals);
        writer.WriteOptional(Path);
    }

    public static Commit Decode(ref TlsReader reader) => new(reader.ReadVector<ProposalOrRef>(), reader.ReadOptional<UpdatePath>());
}
