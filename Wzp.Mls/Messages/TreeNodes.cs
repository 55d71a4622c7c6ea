using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;

namespace Wzp.Mls.Messages;

/// <summary>
/// LeafNode (RFC 9420 §7.2). <see cref="Lifetime"/> is set only for <see cref="LeafNodeSource.KeyPackage"/>,
/// <see cref="ParentHash"/> only for <see cref="LeafNodeSource.Commit"/>.
/// </summary>
public sealed record LeafNode(
    byte[] EncryptionKey,
    byte[] SignatureKey,
    Credential Credential,
    Capabilities Capabilities,
    LeafNodeSource Source,
    Lifetime? Lifetime,
    byte[]? ParentHash,
    Extension[] Extensions,
    byte[] Signature) : ITlsCodec<LeafNode>
{
    private const string SignLabel = "LeafNodeTBS";

    public void Encode(TlsWriter writer)
    {
        EncodeContent(writer);
        writer.WriteOpaque(Signature);
    }

    public static LeafNode Decode(ref TlsReader reader)
    {
        var encryptionKey = reader.ReadOpaque();
        var signatureKey = reader.ReadOpaque();
        var credential = Credential.Decode(ref reader);
        var capabilities = Capabilities.Decode(ref reader);
        var source = (LeafNodeSource)reader.ReadUInt8();
        Lifetime? lifetime = null;
        byte[]? parentHash = null;
        switch (source)
        {
            case LeafNodeSource.KeyPackage:
                lifetime = Lifetime.Decode(ref reader);
                break;
            case LeafNodeSource.Update:
                break;
            case LeafNodeSource.Commit:
                parentHash = reader.ReadOpaque();
                break;
            default:
                throw new MlsDecodeException($"Unknown leaf node source {(byte)source}.");
        }
        var extensions = reader.ReadVector<Extension>();
        var signature = reader.ReadOpaque();
        return new LeafNode(encryptionKey, signatureKey, credential, capabilities, source, lifetime, parentHash, extensions, signature);
    }

    /// <summary>
    /// LeafNodeTBS: the content plus, for update and commit leaves, the group id and leaf index that bind the
    /// leaf to its position (RFC 9420 §7.2).
    /// </summary>
    public byte[] ToBeSigned(ReadOnlySpan<byte> groupId, uint leafIndex)
    {
        var writer = new TlsWriter();
        EncodeContent(writer);
        if (Source is LeafNodeSource.Update or LeafNodeSource.Commit)
        {
            writer.WriteOpaque(groupId);
            writer.WriteUInt32(leafIndex);
        }
        return writer.ToArray();
    }

    /// <summary>Checks the leaf's signature; group id and leaf index are ignored for key-package leaves.</summary>
    public bool VerifySignature(CipherSuite suite, ReadOnlySpan<byte> groupId, uint leafIndex)
        => suite.VerifyWithLabel(SignatureKey, SignLabel, ToBeSigned(groupId, leafIndex), Signature);

    /// <summary>A copy of this leaf signed with <paramref name="signaturePrivateKey"/>.</summary>
    public LeafNode Signed(CipherSuite suite, ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> groupId, uint leafIndex)
        => this with { Signature = suite.SignWithLabel(signaturePrivateKey, SignLabel, ToBeSigned(groupId, leafIndex)) };

    private void EncodeContent(TlsWriter writer)
    {
        writer.WriteOpaque(EncryptionKey);
        writer.WriteOpaque(SignatureKey);
        Credential.Encode(writer);
        Capabilities.Encode(writer);
        writer.WriteUInt8((byte)Source);
        switch (Source)
        {
            case LeafNodeSource.KeyPackage:
                (Lifetime ?? throw new InvalidOperationException("A key-package leaf needs a lifetime.")).Encode(writer);
                break;
            case LeafNodeSource.Commit:
                writer.WriteOpaque(ParentHash ?? throw new InvalidOperationException("A commit leaf needs a parent hash."));
                break;
            case LeafNodeSource.Update:
                break;
            default:
                throw new InvalidOperationException($"Unknown leaf node source {Source}.");
        }
        writer.WriteVector(Extensions);
    }
}

/// <summary>ParentNode (RFC 9420 §7.1).</summary>
public sealed record ParentNode(byte[] EncryptionKey, byte[] ParentHash, uint[] UnmergedLeaves) : ITlsCodec<ParentNode>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(EncryptionKey);
        writer.WriteOpaque(ParentHash);
        writer.WriteUInt32Vector(UnmergedLeaves);
    }

    public static ParentNode Decode(ref TlsReader reader) => new(reader.ReadOpaque(), reader.ReadOpaque(), reader.ReadUInt32Vector());
}

/// <summary>Node (RFC 9420 §7.8): a leaf or a parent; exactly one of <see cref="Leaf"/> and <see cref="Parent"/> is set.</summary>
public sealed record Node : ITlsCodec<Node>
{
    private Node(LeafNode? leaf, ParentNode? parent)
    {
        Leaf = leaf;
        Parent = parent;
    }

    public LeafNode? Leaf { get; }

    public ParentNode? Parent { get; }

    public NodeType Type => Leaf is not null ? NodeType.Leaf : NodeType.Parent;

    public static Node OfLeaf(LeafNode leaf) => new(leaf ?? throw new ArgumentNullException(nameof(leaf)), null);

    public static Node OfParent(ParentNode parent) => new(null, parent ?? throw new ArgumentNullException(nameof(parent)));

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt8((byte)Type);
        if (Leaf is not null) Leaf.Encode(writer);
        else Parent!.Encode(writer);
    }

    public static Node Decode(ref TlsReader reader) => (NodeType)reader.ReadUInt8() switch
    {
        NodeType.Leaf => OfLeaf(LeafNode.Decode(ref reader)),
        NodeType.Parent => OfParent(ParentNode.Decode(ref reader)),
        var t => throw new MlsDecodeException($"Unknown node type {(byte)t}."),
    };
}

/// <summary>UpdatePathNode (RFC 9420 §7.6): a new public key and its path secret encrypted to the copath resolution.</summary>
public sealed record UpdatePathNode(byte[] EncryptionKey, HpkeCiphertext[] EncryptedPathSecret) : ITlsCodec<UpdatePathNode>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(EncryptionKey);
        writer.WriteVector(EncryptedPathSecret);
    }

    public static UpdatePathNode Decode(ref TlsReader reader) => new(reader.ReadOpaque(), reader.ReadVector<HpkeCiphertext>());
}

/// <summary>UpdatePath (RFC 9420 §7.6).</summary>
public sealed record UpdatePath(LeafNode LeafNode, UpdatePathNode[] Nodes) : ITlsCodec<UpdatePath>
{
    public void Encode(TlsWriter writer)
    {
        LeafNode.Encode(writer);
        writer.WriteVector(Nodes);
    }

    public static UpdatePath Decode(ref TlsReader reader) => new(LeafNode.Decode(ref reader), reader.ReadVector<UpdatePathNode>());
}

/// <summary>KeyPackage (RFC 9420 §10).</summary>
public sealed record KeyPackage(
    ProtocolVersion Version,
    ushort CipherSuite,
    byte[] InitKey,
    LeafNode LeafNode,
    Extension[] Extensions,
    byte[] Signature) : ITlsCodec<KeyPackage>
{
    private const string SignLabel = "KeyPackageTBS";

    public void Encode(TlsWriter writer)
    {
        EncodeContent(writer);
        writer.WriteOpaque(Signature);
    }

    public static KeyPackage Decode(ref TlsReader reader) => new(
        (ProtocolVersion)reader.ReadUInt16(),
        reader.ReadUInt16(),
        reader.ReadOpaque(),
        LeafNode.Decode(ref reader),
        reader.ReadVector<Extension>(),
        reader.ReadOpaque());

    /// <summary>KeyPackageTBS: every field but the signature.</summary>
    public byte[] ToBeSigned()
    {
        var writer = new TlsWriter();
        EncodeContent(writer);
        return writer.ToArray();
    }

    /// <summary>Checks the key package's signature with its leaf's signature key.</summary>
    public bool VerifySignature(CipherSuite suite) => suite.VerifyWithLabel(LeafNode.SignatureKey, SignLabel, ToBeSigned(), Signature);

    public KeyPackage Signed(CipherSuite suite, ReadOnlySpan<byte> signaturePrivateKey)
        => this with { Signature = suite.SignWithLabel(signaturePrivateKey, SignLabel, ToBeSigned()) };

    /// <summary>KeyPackageRef (RFC 9420 §5.2): RefHash("MLS 1.0 KeyPackage Reference", KeyPackage).</summary>
    public byte[] Reference(CipherSuite suite) => suite.RefHash("MLS 1.0 KeyPackage Reference"u8, Tls.Encode(this));

    private void EncodeContent(TlsWriter writer)
    {
        writer.WriteUInt16((ushort)Version);
        writer.WriteUInt16(CipherSuite);
        writer.WriteOpaque(InitKey);
        LeafNode.Encode(writer);
        writer.WriteVector(Extensions);
    }
}
