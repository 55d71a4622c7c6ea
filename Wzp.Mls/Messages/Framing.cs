using Wzp.Mls.Codec;

namespace Wzp.Mls.Messages;

/// <summary>Sender (RFC 9420 §6): <see cref="Index"/> is the leaf index of a member or the index into external_senders.</summary>
public sealed record Sender(SenderType Type, uint Index) : ITlsCodec<Sender>
{
    public static Sender Member(uint leafIndex) => new(SenderType.Member, leafIndex);

    public static Sender External(uint senderIndex) => new(SenderType.External, senderIndex);

    public static Sender NewMemberProposal { get; } = new(SenderType.NewMemberProposal, 0);

    public static Sender NewMemberCommit { get; } = new(SenderType.NewMemberCommit, 0);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt8((byte)Type);
        if (Type is SenderType.Member or SenderType.External) writer.WriteUInt32(Index);
    }

    public static Sender Decode(ref TlsReader reader)
    {
        var type = (SenderType)reader.ReadUInt8();
        return type switch
        {
            SenderType.Member or SenderType.External => new Sender(type, reader.ReadUInt32()),
            SenderType.NewMemberProposal => NewMemberProposal,
            SenderType.NewMemberCommit => NewMemberCommit,
            _ => throw new MlsDecodeException($"Unknown sender type {(byte)type}."),
        };
    }
}

/// <summary>
/// The content of a framed message by content type: application data, a proposal or a commit (exactly one set).
/// Shared by FramedContent and PrivateMessageContent.
/// </summary>
public sealed record MessageBody
{
    private MessageBody(ContentType type, byte[]? applicationData, Proposal? proposal, Commit? commit)
    {
        ContentType = type;
        ApplicationData = applicationData;
        Proposal = proposal;
        Commit = commit;
    }

    public ContentType ContentType { get; }

    public byte[]? ApplicationData { get; }

    public Proposal? Proposal { get; }

    public Commit? Commit { get; }

    public static MessageBody Application(byte[] data) => new(ContentType.Application, data ?? throw new ArgumentNullException(nameof(data)), null, null);

    public static MessageBody Of(Proposal proposal) => new(ContentType.Proposal, null, proposal ?? throw new ArgumentNullException(nameof(proposal)), null);

    public static MessageBody Of(Commit commit) => new(ContentType.Commit, null, null, commit ?? throw new ArgumentNullException(nameof(commit)));

    /// <summary>Writes the select(content_type) arm, without the content type itself.</summary>
    public void EncodeArm(TlsWriter writer)
    {
        switch (ContentType)
        {
            case ContentType.Application:
                writer.WriteOpaque(ApplicationData);
                break;
            case ContentType.Proposal:
                Proposal!.Encode(writer);
                break;
            default:
                Commit!.Encode(writer);
                break;
        }
    }

    public static MessageBody DecodeArm(ref TlsReader reader, ContentType type) => type switch
    {
        ContentType.Application => Application(reader.ReadOpaque()),
        ContentType.Proposal => Of(Proposal.Decode(ref reader)),
        ContentType.Commit => Of(Commit.Decode(ref reader)),
        _ => throw new MlsDecodeException($"Unknown content type {(byte)type}."),
    };

    public static ContentType ReadContentType(ref TlsReader reader)
    {
        var type = (ContentType)reader.ReadUInt8();
        if (type is not (ContentType.Application or ContentType.Proposal or ContentType.Commit))
            throw new MlsDecodeException($"Unknown content type {(byte)type}.");
        return type;
    }
}

/// <summary>FramedContent (RFC 9420 §6).</summary>
public sealed record FramedContent(byte[] GroupId, ulong Epoch, Sender Sender, byte[] AuthenticatedData, MessageBody Body)
    : ITlsCodec<FramedContent>
{
    public ContentType ContentType => Body.ContentType;

    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(GroupId);
        writer.WriteUInt64(Epoch);
        Sender.Encode(writer);
        writer.WriteOpaque(AuthenticatedData);
        writer.WriteUInt8((byte)Body.ContentType);
        Body.EncodeArm(writer);
    }

    public static FramedContent Decode(ref TlsReader reader)
    {
        var groupId = reader.ReadOpaque();
        var epoch = reader.ReadUInt64();
        var sender = Sender.Decode(ref reader);
        var authenticatedData = reader.ReadOpaque();
        var type = MessageBody.ReadContentType(ref reader);
        return new FramedContent(groupId, epoch, sender, authenticatedData, MessageBody.DecodeArm(ref reader, type));
    }

    /// <summary>
    /// FramedContentTBS (RFC 9420 §6.1), what the sender signs. <paramref name="groupContext"/> is required for
    /// member and new_member_commit senders and ignored otherwise.
    /// </summary>
    public byte[] ToBeSigned(WireFormat wireFormat, GroupContext? groupContext)
    {
        var writer = new TlsWriter();
        writer.WriteUInt16((ushort)ProtocolVersion.Mls10);
        writer.WriteUInt16((ushort)wireFormat);
        Encode(writer);
        if (Sender.Type is SenderType.Member or SenderType.NewMemberCommit)
            (groupContext ?? throw new ArgumentNullException(nameof(groupContext), "Member and new-member commits sign over the group context.")).Encode(writer);
        return writer.ToArray();
    }
}

/// <summary>FramedContentAuthData (RFC 9420 §6.1): the signature and, for commits, the confirmation tag.</summary>
public sealed record FramedContentAuthData(byte[] Signature, byte[]? ConfirmationTag)
{
    public void Encode(TlsWriter writer, ContentType contentType)
    {
        writer.WriteOpaque(Signature);
        if (contentType == ContentType.Commit)
            writer.WriteOpaque(ConfirmationTag ?? throw new InvalidOperationException("A commit needs a confirmation tag."));
    }

    public static FramedContentAuthData Decode(ref TlsReader reader, ContentType contentType)
    {
        var signature = reader.ReadOpaque();
        return new FramedContentAuthData(signature, contentType == ContentType.Commit ? reader.ReadOpaque() : null);
    }
}

/// <summary>AuthenticatedContent (RFC 9420 §6.1): the input to transcript hashes and proposal references.</summary>
public sealed record AuthenticatedContent(WireFormat WireFormat, FramedContent Content, FramedContentAuthData Auth) : ITlsCodec<AuthenticatedContent>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16((ushort)WireFormat);
        Content.Encode(writer);
        Auth.Encode(writer, Content.ContentType);
    }

    public static AuthenticatedContent Decode(ref TlsReader reader)
    {
        var wireFormat = MlsMessage.ReadWireFormat(ref reader);
        var content = FramedContent.Decode(ref reader);
        return new AuthenticatedContent(wireFormat, content, FramedContentAuthData.Decode(ref reader, content.ContentType));
    }

    /// <summary>ConfirmedTranscriptHashInput (RFC 9420 §8.2): wire_format, content and signature (no confirmation tag).</summary>
    public byte[] ConfirmedTranscriptHashInput()
    {
        var writer = new TlsWriter();
        writer.WriteUInt16((ushort)WireFormat);
        Content.Encode(writer);
        writer.WriteOpaque(Auth.Signature);
        return writer.ToArray();
    }
}

/// <summary>PublicMessage (RFC 9420 §6.2); the membership tag is present exactly for member senders.</summary>
public sealed record PublicMessage(FramedContent Content, FramedContentAuthData Auth, byte[]? MembershipTag) : ITlsCodec<PublicMessage>
{
    public void Encode(TlsWriter writer)
    {
        Content.Encode(writer);
        Auth.Encode(writer, Content.ContentType);
        if (Content.Sender.Type == SenderType.Member)
            writer.WriteOpaque(MembershipTag ?? throw new InvalidOperationException("A member's PublicMessage needs a membership tag."));
    }

    public static PublicMessage Decode(ref TlsReader reader)
    {
        var content = FramedContent.Decode(ref reader);
        var auth = FramedContentAuthData.Decode(ref reader, content.ContentType);
        var tag = content.Sender.Type == SenderType.Member ? reader.ReadOpaque() : null;
        return new PublicMessage(content, auth, tag);
    }

    /// <summary>AuthenticatedContentTBM (RFC 9420 §6.2): FramedContentTBS then the auth data, the membership MAC's input.</summary>
    public byte[] ToBeMaced(GroupContext groupContext)
    {
        var writer = new TlsWriter();
        writer.WriteFixed(Content.ToBeSigned(WireFormat.PublicMessage, groupContext));
        Auth.Encode(writer, Content.ContentType);
        return writer.ToArray();
    }
}

/// <summary>PrivateMessage (RFC 9420 §6.3).</summary>
public sealed record PrivateMessage(byte[] GroupId, ulong Epoch, ContentType ContentType, byte[] AuthenticatedData, byte[] EncryptedSenderData, byte[] Ciphertext)
    : ITlsCodec<PrivateMessage>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(GroupId);
        writer.WriteUInt64(Epoch);
        writer.WriteUInt8((byte)ContentType);
        writer.WriteOpaque(AuthenticatedData);
        writer.WriteOpaque(EncryptedSenderData);
        writer.WriteOpaque(Ciphertext);
    }

    public static PrivateMessage Decode(ref TlsReader reader)
    {
        var groupId = reader.ReadOpaque();
        var epoch = reader.ReadUInt64();
        var type = MessageBody.ReadContentType(ref reader);
        return new PrivateMessage(groupId, epoch, type, reader.ReadOpaque(), reader.ReadOpaque(), reader.ReadOpaque());
    }

    /// <summary>SenderDataAAD (RFC 9420 §6.3.2).</summary>
    public byte[] SenderDataAad()
    {
        var writer = new TlsWriter();
        writer.WriteOpaque(GroupId);
        writer.WriteUInt64(Epoch);
        writer.WriteUInt8((byte)ContentType);
        return writer.ToArray();
    }

    /// <summary>PrivateContentAAD (RFC 9420 §6.3.1).</summary>
    public byte[] ContentAad()
    {
        var writer = new TlsWriter();
        writer.WriteOpaque(GroupId);
        writer.WriteUInt64(Epoch);
        writer.WriteUInt8((byte)ContentType);
        writer.WriteOpaque(AuthenticatedData);
        return writer.ToArray();
    }
}

/// <summary>SenderData (RFC 9420 §6.3.2): who sent a PrivateMessage and with which key generation.</summary>
public sealed record SenderData(uint LeafIndex, uint Generation, byte[] ReuseGuard) : ITlsCodec<SenderData>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt32(LeafIndex);
        writer.WriteUInt32(Generation);
        if (ReuseGuard.Length != 4) throw new InvalidOperationException("reuse_guard is 4 bytes.");
        writer.WriteFixed(ReuseGuard);
    }

    public static SenderData Decode(ref TlsReader reader) => new(reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadFixed(4));
}

/// <summary>
/// PrivateMessageContent (RFC 9420 §6.3.1): the body, auth data and zero padding. Decoding checks that the padding
/// is all zero, as the RFC requires.
/// </summary>
public sealed record PrivateMessageContent(MessageBody Body, FramedContentAuthData Auth, int PaddingLength)
{
    public byte[] Encode()
    {
        var writer = new TlsWriter();
        Body.EncodeArm(writer);
        Auth.Encode(writer, Body.ContentType);
        writer.WriteFixed(new byte[PaddingLength]);
        return writer.ToArray();
    }

    public static PrivateMessageContent Decode(ReadOnlySpan<byte> plaintext, ContentType contentType)
    {
        var reader = new TlsReader(plaintext);
        var body = MessageBody.DecodeArm(ref reader, contentType);
        var auth = FramedContentAuthData.Decode(ref reader, contentType);
        var padding = reader.ReadSpan(reader.Remaining);
        if (padding.ContainsAnyExcept((byte)0)) throw new MlsDecodeException("Non-zero padding in PrivateMessageContent.");
        return new PrivateMessageContent(body, auth, padding.Length);
    }
}
