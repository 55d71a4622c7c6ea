using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;

namespace Wzp.Mls.Messages;

/// <summary>GroupContext (RFC 9420 §8.1).</summary>
public sealed record GroupContext(
    ProtocolVersion Version,
    ushort CipherSuite,
    byte[] GroupId,
    ulong Epoch,
    byte[] TreeHash,
    byte[] ConfirmedTranscriptHash,
    Extension[] Extensions) : ITlsCodec<GroupContext>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16((ushort)Version);
        writer.WriteUInt16(CipherSuite);
        writer.WriteOpaque(GroupId);
        writer.WriteUInt64(Epoch);
        writer.WriteOpaque(TreeHash);
        writer.WriteOpaque(ConfirmedTranscriptHash);
        writer.WriteVector(Extensions);
    }

    public static GroupContext Decode(ref TlsReader reader) => new(
        (ProtocolVersion)reader.ReadUInt16(), reader.ReadUInt16(), reader.ReadOpaque(), reader.ReadUInt64(),
        reader.ReadOpaque(), reader.ReadOpaque(), reader.ReadVector<Extension>());
}

/// <summary>GroupInfo (RFC 9420 §12.4.3).</summary>
public sealed record GroupInfo(GroupContext GroupContext, Extension[] Extensions, byte[] ConfirmationTag, uint Signer, byte[] Signature)
    : ITlsCodec<GroupInfo>
{
    private const string SignLabel = "GroupInfoTBS";

    public void Encode(TlsWriter writer)
    {
        EncodeContent(writer);
        writer.WriteOpaque(Signature);
    }

    public static GroupInfo Decode(ref TlsReader reader) => new(
        GroupContext.Decode(ref reader), reader.ReadVector<Extension>(), reader.ReadOpaque(), reader.ReadUInt32(), reader.ReadOpaque());

    /// <summary>GroupInfoTBS: every field but the signature.</summary>
    public byte[] ToBeSigned()
    {
        var writer = new TlsWriter();
        EncodeContent(writer);
        return writer.ToArray();
    }

    public bool VerifySignature(CipherSuite suite, ReadOnlySpan<byte> signerSignatureKey)
    {
        ArgumentNullException.ThrowIfNull(suite);
        using var tbs = new TlsWriter(EstimatedLength);
        EncodeContent(tbs);
        return suite.VerifyWithLabel(signerSignatureKey, SignLabel, tbs.WrittenSpan, Signature);
    }

    public GroupInfo Signed(CipherSuite suite, ReadOnlySpan<byte> signaturePrivateKey)
    {
        ArgumentNullException.ThrowIfNull(suite);
        using var tbs = new TlsWriter(EstimatedLength);
        EncodeContent(tbs);
        return this with { Signature = suite.SignWithLabel(signaturePrivateKey, SignLabel, tbs.WrittenSpan) };
    }

    /// <summary>Enough for the encoding as a first guess (the ratchet_tree extension dominates at scale).</summary>
    internal int EstimatedLength => 512 + Extensions.Sum(e => e.ExtensionData.Length + 8) + Signature.Length;

    private void EncodeContent(TlsWriter writer)
    {
        GroupContext.Encode(writer);
        writer.WriteVector(Extensions);
        writer.WriteOpaque(ConfirmationTag);
        writer.WriteUInt32(Signer);
    }
}

/// <summary>GroupSecrets (RFC 9420 §12.4.3.1); <see cref="PathSecret"/> is the optional&lt;PathSecret&gt;.</summary>
public sealed record GroupSecrets(byte[] JoinerSecret, byte[]? PathSecret, PreSharedKeyId[] Psks) : ITlsCodec<GroupSecrets>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(JoinerSecret);
        writer.WriteOptional(PathSecret is null ? null : new OpaqueValue(PathSecret));
        writer.WriteVector(Psks);
    }

    public static GroupSecrets Decode(ref TlsReader reader)
        => new(reader.ReadOpaque(), reader.ReadOptional<OpaqueValue>()?.Value, reader.ReadVector<PreSharedKeyId>());
}

/// <summary>EncryptedGroupSecrets (RFC 9420 §12.4.3.1).</summary>
public sealed record EncryptedGroupSecrets(byte[] NewMember, HpkeCiphertext EncryptedSecrets) : ITlsCodec<EncryptedGroupSecrets>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(NewMember);
        EncryptedSecrets.Encode(writer);
    }

    public static EncryptedGroupSecrets Decode(ref TlsReader reader) => new(reader.ReadOpaque(), HpkeCiphertext.Decode(ref reader));
}

/// <summary>Welcome (RFC 9420 §12.4.3.1).</summary>
public sealed record Welcome(ushort CipherSuite, EncryptedGroupSecrets[] Secrets, byte[] EncryptedGroupInfo) : ITlsCodec<Welcome>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16(CipherSuite);
        writer.WriteVector(Secrets);
        writer.WriteOpaque(EncryptedGroupInfo);
    }

    public static Welcome Decode(ref TlsReader reader) => new(reader.ReadUInt16(), reader.ReadVector<EncryptedGroupSecrets>(), reader.ReadOpaque());
}

/// <summary>MLSMessage (RFC 9420 §6): version, wire format and one of the five bodies.</summary>
public sealed record MlsMessage : ITlsCodec<MlsMessage>
{
    private MlsMessage(ProtocolVersion version, WireFormat wireFormat, ITlsEncodable body)
    {
        Version = version;
        WireFormat = wireFormat;
        Body = body;
    }

    public ProtocolVersion Version { get; }

    public WireFormat WireFormat { get; }

    public ITlsEncodable Body { get; }

    public PublicMessage? PublicMessage => Body as PublicMessage;

    public PrivateMessage? PrivateMessage => Body as PrivateMessage;

    public Welcome? Welcome => Body as Welcome;

    public GroupInfo? GroupInfo => Body as GroupInfo;

    public KeyPackage? KeyPackage => Body as KeyPackage;

    public static MlsMessage Of(PublicMessage message) => new(ProtocolVersion.Mls10, WireFormat.PublicMessage, message);

    public static MlsMessage Of(PrivateMessage message) => new(ProtocolVersion.Mls10, WireFormat.PrivateMessage, message);

    public static MlsMessage Of(Welcome message) => new(ProtocolVersion.Mls10, WireFormat.Welcome, message);

    public static MlsMessage Of(GroupInfo message) => new(ProtocolVersion.Mls10, WireFormat.GroupInfo, message);

    public static MlsMessage Of(KeyPackage message) => new(ProtocolVersion.Mls10, WireFormat.KeyPackage, message);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16((ushort)Version);
        writer.WriteUInt16((ushort)WireFormat);
        Body.Encode(writer);
    }

    public static MlsMessage Decode(ref TlsReader reader)
    {
        // The version is kept as read: the RFC has the receiver reject a version it does not support, which is a
        // protocol check (with its own error) rather than a malformed encoding.
        var version = (ProtocolVersion)reader.ReadUInt16();
        var wireFormat = ReadWireFormat(ref reader);
        ITlsEncodable body = wireFormat switch
        {
            WireFormat.PublicMessage => PublicMessage.Decode(ref reader),
            WireFormat.PrivateMessage => PrivateMessage.Decode(ref reader),
            WireFormat.Welcome => Welcome.Decode(ref reader),
            WireFormat.GroupInfo => GroupInfo.Decode(ref reader),
            _ => KeyPackage.Decode(ref reader),
        };
        return new MlsMessage(version, wireFormat, body);
    }

    internal static WireFormat ReadWireFormat(ref TlsReader reader)
    {
        var wireFormat = (WireFormat)reader.ReadUInt16();
        if (wireFormat is < WireFormat.PublicMessage or > WireFormat.KeyPackage)
            throw new MlsDecodeException($"Unknown wire format {(ushort)wireFormat}.");
        return wireFormat;
    }
}
