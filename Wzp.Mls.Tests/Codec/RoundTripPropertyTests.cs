using CsCheck;
using Wzp.Mls.Codec;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Codec;

/// <summary>
/// Generated structures of every shape the RFC allows (every credential, leaf source, node type, proposal type,
/// sender type, content type and wire format) encode, decode and re-encode to the same bytes. The vectors cover
/// the common shapes; these reach the rare arms (x509 credentials, resumption PSKs, references, external senders).
/// </summary>
public sealed class RoundTripPropertyTests
{
    private static readonly Gen<byte[]> Bytes = Gen.Byte.Array[0, 40];
    private static readonly Gen<byte[]> LongBytes = Gen.Byte.Array[0, 300];
    private static readonly Gen<ushort[]> Codes = Gen.UShort.Array[0, 5];

    private static readonly Gen<Credential> Credentials = Gen.OneOf(
        Bytes.Select(Credential.Basic),
        Bytes.Array[0, 3].Select(chain => new Credential(CredentialTypes.X509, null, chain)));

    private static readonly Gen<Capabilities> CapabilitiesGen =
        from versions in Codes
        from suites in Codes
        from extensions in Codes
        from proposals in Codes
        from credentials in Codes
        select new Capabilities(versions, suites, extensions, proposals, credentials);

    private static readonly Gen<Extension[]> Extensions = Gen.Select(Gen.UShort, LongBytes, (t, d) => new Extension(t, d)).Array[0, 3];

    private static readonly Gen<LeafNode> Leaves =
        from encryptionKey in Bytes
        from signatureKey in Bytes
        from credential in Credentials
        from capabilities in CapabilitiesGen
        from source in Gen.Int[1, 3]
        from notBefore in Gen.ULong
        from notAfter in Gen.ULong
        from parentHash in Bytes
        from extensions in Extensions
        from signature in Bytes
        select new LeafNode(encryptionKey, signatureKey, credential, capabilities, (LeafNodeSource)source,
            source == 1 ? new Lifetime(notBefore, notAfter) : null, source == 3 ? parentHash : null, extensions, signature);

    private static readonly Gen<KeyPackage> KeyPackages =
        from version in Gen.UShort
        from suite in Gen.UShort
        from initKey in Bytes
        from leaf in Leaves
        from extensions in Extensions
        from signature in Bytes
        select new KeyPackage((ProtocolVersion)version, suite, initKey, leaf, extensions, signature);

    private static readonly Gen<Node> Nodes = Gen.OneOf(
        Leaves.Select(Node.OfLeaf),
        Gen.Select(Bytes, Bytes, Gen.UInt.Array[0, 4], (key, hash, unmerged) => Node.OfParent(new ParentNode(key, hash, unmerged))));

    private static readonly Gen<HpkeCiphertext> Ciphertexts = Gen.Select(Bytes, Bytes, (k, c) => new HpkeCiphertext(k, c));

    private static readonly Gen<UpdatePath> Paths =
        from leaf in Leaves
        from nodes in Gen.Select(Bytes, Ciphertexts.Array[0, 3], (k, c) => new UpdatePathNode(k, c)).Array[0, 3]
        select new UpdatePath(leaf, nodes);

    private static readonly Gen<PreSharedKeyId> PskIds = Gen.OneOf(
        Gen.Select(Bytes, Bytes, PreSharedKeyId.External),
        from usage in Gen.Byte
        from groupId in Bytes
        from epoch in Gen.ULong
        from nonce in Bytes
        select PreSharedKeyId.Resumption((ResumptionPskUsage)usage, groupId, epoch, nonce));

    private static readonly Gen<Proposal> Proposals = Gen.OneOf<Proposal>(
        KeyPackages.Select(kp => (Proposal)new AddProposal(kp)),
        Leaves.Select(l => (Proposal)new UpdateProposal(l)),
        Gen.UInt.Select(i => (Proposal)new RemoveProposal(i)),
        PskIds.Select(p => (Proposal)new PreSharedKeyProposal(p)),
        Gen.Select(Bytes, Gen.UShort, Gen.UShort, Extensions, (g, v, s, e) => (Proposal)new ReInitProposal(g, (ProtocolVersion)v, s, e)),
        Bytes.Select(k => (Proposal)new ExternalInitProposal(k)),
        Extensions.Select(e => (Proposal)new GroupContextExtensionsProposal(e)));

    private static readonly Gen<Commit> Commits =
        from proposals in Gen.OneOf(Proposals.Select(ProposalOrRef.ByValue), Bytes.Select(ProposalOrRef.ByReference)).Array[0, 3]
        from hasPath in Gen.Bool
        from path in Paths
        select new Commit(proposals, hasPath ? path : null);

    private static readonly Gen<Sender> Senders = Gen.OneOf(
        Gen.UInt.Select(Sender.Member),
        Gen.UInt.Select(Sender.External),
        Gen.Const(Sender.NewMemberProposal),
        Gen.Const(Sender.NewMemberCommit));

    private static readonly Gen<MessageBody> Bodies = Gen.OneOf(
        Bytes.Select(MessageBody.Application),
        Proposals.Select(MessageBody.Of),
        Commits.Select(MessageBody.Of));

    private static readonly Gen<FramedContent> Contents =
        from groupId in Bytes
        from epoch in Gen.ULong
        from sender in Senders
        from authenticatedData in Bytes
        from body in Bodies
        select new FramedContent(groupId, epoch, sender, authenticatedData, body);

    private static readonly Gen<PublicMessage> PublicMessages =
        from content in Contents
        from signature in Bytes
        from tag in Bytes
        from membershipTag in Bytes
        select new PublicMessage(content, new FramedContentAuthData(signature, content.ContentType == ContentType.Commit ? tag : null),
            content.Sender.Type == SenderType.Member ? membershipTag : null);

    private static readonly Gen<PrivateMessage> PrivateMessages =
        from groupId in Bytes
        from epoch in Gen.ULong
        from type in Gen.Int[1, 3]
        from authenticatedData in Bytes
        from senderData in Bytes
        from ciphertext in LongBytes
        select new PrivateMessage(groupId, epoch, (ContentType)type, authenticatedData, senderData, ciphertext);

    private static readonly Gen<GroupContext> Contexts =
        from version in Gen.UShort
        from suite in Gen.UShort
        from groupId in Bytes
        from epoch in Gen.ULong
        from treeHash in Bytes
        from transcript in Bytes
        from extensions in Extensions
        select new GroupContext((ProtocolVersion)version, suite, groupId, epoch, treeHash, transcript, extensions);

    private static readonly Gen<GroupInfo> GroupInfos =
        from context in Contexts
        from extensions in Extensions
        from tag in Bytes
        from signer in Gen.UInt
        from signature in Bytes
        select new GroupInfo(context, extensions, tag, signer, signature);

    private static readonly Gen<GroupSecrets> GroupSecretsGen =
        from joiner in Bytes
        from hasPath in Gen.Bool
        from pathSecret in Bytes
        from psks in PskIds.Array[0, 3]
        select new GroupSecrets(joiner, hasPath ? pathSecret : null, psks);

    private static readonly Gen<Welcome> Welcomes =
        from suite in Gen.UShort
        from secrets in Gen.Select(Bytes, Ciphertexts, (m, c) => new EncryptedGroupSecrets(m, c)).Array[0, 3]
        from groupInfo in LongBytes
        select new Welcome(suite, secrets, groupInfo);

    private static readonly Gen<MlsMessage> Messages = Gen.OneOf(
        PublicMessages.Select(MlsMessage.Of),
        PrivateMessages.Select(MlsMessage.Of),
        Welcomes.Select(MlsMessage.Of),
        GroupInfos.Select(MlsMessage.Of),
        KeyPackages.Select(MlsMessage.Of));

    [Fact]
    public void MlsMessage_Generated_RoundTrips() => Messages.Sample(RoundTrip<MlsMessage>, iter: 500);

    [Fact]
    public void Commit_Generated_RoundTrips() => Commits.Sample(RoundTrip<Commit>, iter: 500);

    [Fact]
    public void Proposal_Generated_RoundTrips() => Proposals.Sample(RoundTrip<Proposal>, iter: 500);

    [Fact]
    public void RatchetTree_Generated_RoundTrips()
        => Gen.OneOf(Nodes.Select(n => (Node?)n), Gen.Const((Node?)null)).Array[0, 8].Select(n => new RatchetTree(n)).Sample(RoundTrip<RatchetTree>, iter: 300);

    [Fact]
    public void GroupSecrets_Generated_RoundTrips() => GroupSecretsGen.Sample(RoundTrip<GroupSecrets>, iter: 500);

    [Fact]
    public void AuthenticatedContent_Generated_RoundTrips()
        => (from wireFormat in Gen.Int[1, 2]
            from message in PublicMessages
            select new AuthenticatedContent((WireFormat)wireFormat, message.Content, message.Auth)).Sample(RoundTrip<AuthenticatedContent>, iter: 300);

    [Fact]
    public void ExtensionPayloads_Generated_RoundTrip()
    {
        Gen.Select(Bytes, Credentials, (k, c) => new ExternalSender(k, c)).Array[0, 3].Select(s => new ExternalSendersExtension(s))
            .Sample(RoundTrip<ExternalSendersExtension>, iter: 200);
        Gen.Select(Codes, Codes, Codes, (e, p, c) => new RequiredCapabilitiesExtension(e, p, c)).Sample(RoundTrip<RequiredCapabilitiesExtension>, iter: 200);
        Bytes.Select(b => new ExternalPubExtension(b)).Sample(RoundTrip<ExternalPubExtension>, iter: 100);
        Bytes.Select(b => new ApplicationIdExtension(b)).Sample(RoundTrip<ApplicationIdExtension>, iter: 100);
    }

    private static void RoundTrip<T>(T value)
        where T : ITlsCodec<T>
    {
        var bytes = Tls.Encode(value);
        var again = Tls.Encode(Tls.Decode<T>(bytes));
        Assert.Equal(bytes, again);
    }
}
