using Wzp.Mls.Codec;

namespace Wzp.Mls.Messages;

/// <summary>application_id (RFC 9420 §5.3.3): opaque application_id&lt;V&gt;.</summary>
public sealed record ApplicationIdExtension(byte[] ApplicationId) : ITlsCodec<ApplicationIdExtension>
{
    public void Encode(TlsWriter writer) => writer.WriteOpaque(ApplicationId);

    public static ApplicationIdExtension Decode(ref TlsReader reader) => new(reader.ReadOpaque());
}

/// <summary>required_capabilities (RFC 9420 §11.1).</summary>
public sealed record RequiredCapabilitiesExtension(ushort[] ExtensionTypes, ushort[] ProposalTypes, ushort[] CredentialTypes)
    : ITlsCodec<RequiredCapabilitiesExtension>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16Vector(ExtensionTypes);
        writer.WriteUInt16Vector(ProposalTypes);
        writer.WriteUInt16Vector(CredentialTypes);
    }

    public static RequiredCapabilitiesExtension Decode(ref TlsReader reader)
        => new(reader.ReadUInt16Vector(), reader.ReadUInt16Vector(), reader.ReadUInt16Vector());
}

/// <summary>external_pub (RFC 9420 §12.4.3.2): the HPKE public key external joiners encrypt to.</summary>
public sealed record ExternalPubExtension(byte[] ExternalPub) : ITlsCodec<ExternalPubExtension>
{
    public void Encode(TlsWriter writer) => writer.WriteOpaque(ExternalPub);

    public static ExternalPubExtension Decode(ref TlsReader reader) => new(reader.ReadOpaque());
}

/// <summary>ExternalSender (RFC 9420 §12.1.8.1).</summary>
public sealed record ExternalSender(byte[] SignatureKey, Credential Credential) : ITlsCodec<ExternalSender>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(SignatureKey);
        Credential.Encode(writer);
    }

    public static ExternalSender Decode(ref TlsReader reader) => new(reader.ReadOpaque(), Credential.Decode(ref reader));
}

/// <summary>external_senders (RFC 9420 §12.1.8.1): ExternalSender external_senders&lt;V&gt;.</summary>
public sealed record ExternalSendersExtension(ExternalSender[] Senders) : ITlsCodec<ExternalSendersExtension>
{
    public void Encode(TlsWriter writer) => writer.WriteVector(Senders);

    public static ExternalSendersExtension Decode(ref TlsReader reader) => new(reader.ReadVector<ExternalSender>());
}

/// <summary>
/// ratchet_tree (RFC 9420 §12.4.3.3): optional&lt;Node&gt; ratchet_tree&lt;V&gt;, the tree's nodes in array order with
/// blanks as null. The RFC requires the last node to be non-blank, so the caller truncates trailing blanks before
/// encoding; the codec keeps whatever it is given so that decoding and re-encoding are exact.
/// </summary>
public sealed record RatchetTree(Node?[] Nodes) : ITlsCodec<RatchetTree>
{
    public void Encode(TlsWriter writer)
    {
        var mark = writer.BeginVector();
        foreach (var node in Nodes) writer.WriteOptional(node);
        writer.EndVector(mark);
    }

    public static RatchetTree Decode(ref TlsReader reader)
    {
        var inner = reader.ReadVectorReader();
        var nodes = new List<Node?>();
        while (!inner.IsEmpty) nodes.Add(inner.ReadOptional<Node>());
        return new RatchetTree([.. nodes]);
    }
}
