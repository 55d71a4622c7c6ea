using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Group;

/// <summary>What a processed message was.</summary>
public enum ProcessedKind
{
    Application,
    Proposal,
    Commit,
}

/// <summary>
/// The result of processing a group message: application data, a proposal now cached for a later commit, or a
/// commit that moved the group to a new epoch (<see cref="RemovedFromGroup"/> when it removed this member), with
/// what it changed in <see cref="Commit"/>.
/// </summary>
public sealed record ProcessedMessage(ProcessedKind Kind, Sender Sender, byte[]? ApplicationData, Proposal? Proposal, bool RemovedFromGroup, CommitSummary? Commit = null);

/// <summary>
/// The membership changes of a processed commit, as leaf indices: members added, removed and updated (by proposal or
/// by the committer's path), and the committer's leaf (for an external commit, the leaf the joiner took).
/// </summary>
public sealed record CommitSummary(IReadOnlyList<uint> Added, IReadOnlyList<uint> Removed, IReadOnlyList<uint> Updated, uint Committer);

/// <summary>
/// What a commit produced: the commit to send to the group, and for a commit that adds members their Welcome and the
/// GroupInfo it carries (null otherwise; <see cref="MlsGroup.CreateGroupInfo"/> makes one for external joiners).
/// </summary>
public sealed record CommitOutput(MlsMessage Commit, MlsMessage? Welcome, GroupInfo? GroupInfo);

/// <summary>How to build a commit.</summary>
public sealed class CommitOptions
{
    /// <summary>Proposals to include by value. Defaults to none.</summary>
    public IReadOnlyList<Proposal> Proposals { get; init; } = [];

    /// <summary>Include every proposal received (or sent) this epoch by reference. Defaults to true.</summary>
    public bool IncludePendingProposals { get; init; } = true;

    /// <summary>
    /// Whether to include an UpdatePath. Defaults to null: only when the proposals require one (RFC 9420 §12.4: an
    /// empty commit, or one with an Update, Remove, ExternalInit or GroupContextExtensions), which keeps add-only and
    /// PSK-only commits small; the application refreshes keys periodically with an empty commit. True always
    /// includes a path; false omits it and throws <see cref="MlsGroupError.PathRequired"/> when one is required.
    /// </summary>
    public bool? IncludePath { get; init; }

    /// <summary>authenticated_data of the commit's framing. Defaults to empty.</summary>
    public byte[] AuthenticatedData { get; init; } = [];
}

/// <summary>
/// One member's view of an MLS group (RFC 9420): creation, joining from a Welcome, proposals, commits with or
/// without path, processing of other members' messages with every validity check the RFC asks of a receiver, and
/// the exporter. Every refusal is an <see cref="MlsGroupException"/> (or a false Try result) naming the rule.
/// Not thread-safe: a group is one member's state machine.
/// </summary>
public sealed partial class MlsGroup : IDisposable
{
    private readonly CipherSuite _suite;
    private readonly byte[] _signaturePrivateKey;
    private readonly MlsGroupOptions _options;
    private readonly Dictionary<string, CachedProposal> _proposals = [];
    private readonly Dictionary<string, byte[]> _pendingUpdateKeys = [];
    private readonly Dictionary<ulong, byte[]> _resumptionPsks = [];
    private readonly List<EpochState> _pastEpochs = [];
    private EpochState _state;
    private PendingCommit? _pending;

    private MlsGroup(CipherSuite suite, byte[] signaturePrivateKey, MlsGroupOptions options, EpochState state)
    {
        _suite = suite;
        _signaturePrivateKey = signaturePrivateKey;
        _options = options;
        _state = state;
        RememberResumptionPsk();
    }

    public CipherSuite Suite => _suite;

    public byte[] GroupId => _state.Context.GroupId;

    public ulong Epoch => _state.Context.Epoch;

    public GroupContext Context => _state.Context;

    public uint OwnLeafIndex => _state.OwnLeaf;

    /// <summary>False once a commit removed this member; the group then refuses everything.</summary>
    public bool IsActive { get; private set; } = true;

    /// <summary>The public tree of the current epoch. Callers must not modify it.</summary>
    public RatchetTreeState Tree => _state.Tree;

    /// <summary>epoch_authenticator (RFC 9420 §8.7).</summary>
    public byte[] EpochAuthenticator
    {
        get
        {
            ThrowIfInactive();
            return (byte[])_state.Secrets.EpochAuthenticator.Clone();
        }
    }

    /// <summary>True while a commit this member created awaits <see cref="MergePendingCommit"/>.</summary>
    public bool HasPendingCommit => _pending is not null;

    /// <summary>MLS-Exporter (RFC 9420 §8.5).</summary>
    public byte[] Export(string label, ReadOnlySpan<byte> context, int length)
    {
        ThrowIfInactive();
        return _state.Secrets.Export(label, context, length);
    }

    /// <summary>
    /// A new one-member group at epoch 0 (RFC 9420 §11): the creator's leaf, an empty confirmed transcript hash, a
    /// random init secret and, as the RFC has it, the interim transcript hash over the epoch-0 confirmation tag.
    /// </summary>
    public static MlsGroup Create(CipherSuite suite, byte[] groupId, Credential credential, byte[] signaturePrivateKey, Extension[]? extensions = null, Capabilities? capabilities = null, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(groupId);
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentNullException.ThrowIfNull(signaturePrivateKey);
        using var bundle = KeyPackageBundle.Create(suite, credential, signaturePrivateKey, capabilities);
        var tree = new RatchetTreeState(suite);
        tree.SetLeaf(0, bundle.KeyPackage.LeafNode);
        var keys = new TreePrivateKeys(0);
        keys.Set(0, (byte[])bundle.EncryptionPrivateKey.Clone());
        var context = new GroupContext(ProtocolVersion.Mls10, suite.Id, groupId, 0, tree.TreeHash(), [], extensions ?? []);
        var init = RandomNumberGenerator.GetBytes(suite.HashLength);
        var secrets = EpochSecrets.FromInitSecret(suite, init, new byte[suite.HashLength], new byte[suite.HashLength], context);
        CryptographicOperations.ZeroMemory(init);
        var tag = TranscriptHash.ConfirmationTag(suite, secrets.ConfirmationKey, []);
        var interim = TranscriptHash.Interim(suite, [], tag);
        return new MlsGroup(suite, signaturePrivateKey, options ?? new MlsGroupOptions(), new EpochState(context, tree, keys, secrets, interim));
    }

    /// <summary>A signed GroupInfo of the current epoch with external_pub (and the tree if asked), for external joiners.</summary>
    public GroupInfo CreateGroupInfo(bool includeRatchetTree = true)
    {
        ThrowIfInactive();
        var tag = TranscriptHash.ConfirmationTag(_suite, _state.Secrets.ConfirmationKey, _state.Context.ConfirmedTranscriptHash);
        return SignedGroupInfo(_state, tag, includeRatchetTree, withExternalPub: true);
    }

    /// <summary>Protects application data as a PrivateMessage (RFC 9420 §6.3).</summary>
    public MlsMessage EncryptApplication(byte[] data, byte[]? authenticatedData = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ThrowIfInactive();
        ThrowIfReInitPending();
        var content = new FramedContent(GroupId, Epoch, Sender.Member(OwnLeafIndex), authenticatedData ?? [], MessageBody.Application(data));
        return MlsMessage.Of(MessageProtection.ProtectPrivate(_suite, content, _state.Context, _signaturePrivateKey, _state.SecretTree, _state.Secrets.SenderDataSecret));
    }

    // ---- proposals ----

    public MlsMessage ProposeAdd(KeyPackage keyPackage) => Propose(new AddProposal(keyPackage ?? throw new ArgumentNullException(nameof(keyPackage))));

    public MlsMessage ProposeRemove(uint leafIndex) => Propose(new RemoveProposal(leafIndex));

    /// <summary>An Update with a fresh encryption key (RFC 9420 §12.1.2); its private key is kept until a commit applies it.</summary>
    public MlsMessage ProposeUpdate()
    {
        ThrowIfInactive();
        var (privateKey, publicKey) = _suite.GenerateHpkeKeyPair();
        var leaf = (_state.Tree.Leaf(OwnLeafIndex)! with
        {
            EncryptionKey = publicKey,
            Source = LeafNodeSource.Update,
            Lifetime = null,
            ParentHash = null,
        }).Signed(_suite, _signaturePrivateKey, GroupId, OwnLeafIndex);
        _pendingUpdateKeys[Convert.ToHexString(publicKey)] = privateKey;
        return Propose(new UpdateProposal(leaf));
    }

    public MlsMessage ProposeExternalPsk(byte[] pskId)
        => Propose(new PreSharedKeyProposal(PreSharedKeyId.External(pskId, RandomNumberGenerator.GetBytes(_suite.HashLength))));

    public MlsMessage ProposeGroupContextExtensions(Extension[] extensions) => Propose(new GroupContextExtensionsProposal(extensions));

    /// <summary>Frames and signs a proposal and caches it for this member's own next commit.</summary>
    public MlsMessage Propose(Proposal proposal)
    {
        ArgumentNullException.ThrowIfNull(proposal);
        ThrowIfInactive();
        ThrowIfReInitPending();
        var content = new FramedContent(GroupId, Epoch, Sender.Member(OwnLeafIndex), [], MessageBody.Of(proposal));
        var (message, authenticated) = Protect(content, null);
        Cache(proposal, content.Sender, authenticated);
        return message;
    }

    // ---- processing ----

    /// <summary>Processes a group message; throws <see cref="MlsGroupException"/> naming the rule it breaks.</summary>
    public ProcessedMessage Process(MlsMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        ThrowIfInactive();
        try
        {
            return ProcessCore(message);
        }
        catch (Exception e) when (IsInputFault(e))
        {
            // Staging works on copies, so a message that trips a structural check deep inside leaves the epoch as it was.
            throw new MlsGroupException(MlsGroupError.MalformedMessage, e.Message);
        }
    }

    /// <summary>
    /// Exceptions that hostile input can raise below the group layer (a decoder, a tree operation on a structure that
    /// does not fit, a key that does not import); the group layer reports them as malformed input, never raw.
    /// </summary>
    internal static bool IsInputFault(Exception e)
        => e is MlsDecodeException or InvalidOperationException or ArgumentException or CryptographicException or IndexOutOfRangeException or OverflowException;

    private ProcessedMessage ProcessCore(MlsMessage message)
    {
        if (message.Version != ProtocolVersion.Mls10) throw new MlsGroupException(MlsGroupError.UnsupportedVersion);
        var unprotected = message.WireFormat switch
        {
            WireFormat.PublicMessage => UnprotectPublic(message.PublicMessage!),
            WireFormat.PrivateMessage => UnprotectPrivate(message.PrivateMessage!),
            _ => throw new MlsGroupException(MlsGroupError.UnexpectedWireFormat),
        };
        var content = unprotected.Content;
        if (content.ContentType != ContentType.Application) ThrowIfReInitPending();
        switch (content.ContentType)
        {
            case ContentType.Application:
                return new ProcessedMessage(ProcessedKind.Application, content.Sender, content.Body.ApplicationData, null, false);
            case ContentType.Proposal:
                var proposal = content.Body.Proposal!;
                CheckProposalSender(proposal, content.Sender);
                ValidateOnReceipt(proposal, content.Sender);
                Cache(proposal, content.Sender, unprotected.ToAuthenticatedContent());
                return new ProcessedMessage(ProcessedKind.Proposal, content.Sender, null, proposal, false);
            default:
                var summary = ProcessCommit(unprotected.ToAuthenticatedContent(), out var removed);
                return new ProcessedMessage(ProcessedKind.Commit, content.Sender, null, null, removed, summary);
        }
    }

    /// <summary>Processes a group message; false with the rule it breaks instead of throwing.</summary>
    public bool TryProcess(MlsMessage message, [NotNullWhen(true)] out ProcessedMessage? result, out MlsGroupError error)
    {
        try
        {
            result = Process(message);
            error = MlsGroupError.None;
            return true;
        }
        catch (MlsGroupException e)
        {
            result = null;
            error = e.Error;
            return false;
        }
    }

    /// <summary>Decodes and processes an encoded MLSMessage; malformed bytes are <see cref="MlsGroupError.MalformedMessage"/>.</summary>
    public bool TryProcess(ReadOnlySpan<byte> encoded, [NotNullWhen(true)] out ProcessedMessage? result, out MlsGroupError error)
    {
        if (!Tls.TryDecode<MlsMessage>(encoded, out var message))
        {
            result = null;
            error = MlsGroupError.MalformedMessage;
            return false;
        }
        return TryProcess(message, out result, out error);
    }

    public void Dispose() => WipeAll();

    private void WipeAll()
    {
        _pending?.State.Dispose();
        _pending = null;
        _state.Dispose();
        foreach (var past in _pastEpochs) past.Dispose();
        _pastEpochs.Clear();
        foreach (var key in _pendingUpdateKeys.Values) CryptographicOperations.ZeroMemory(key);
        _pendingUpdateKeys.Clear();
        foreach (var psk in _resumptionPsks.Values) CryptographicOperations.ZeroMemory(psk);
        _resumptionPsks.Clear();
        if (_reInitPsk is not null) CryptographicOperations.ZeroMemory(_reInitPsk.Psk);
        _reInitPsk = null;
    }

    private UnprotectedMessage UnprotectPublic(PublicMessage message)
    {
        if (!MessageProtection.TryUnprotectPublic(_suite, message, _state.Context, _state.Secrets.MembershipKey, SignatureKeyOf, out var result, out var error))
            throw new MlsGroupException(Map(error));
        // Checked after authentication, so a forgery naming this member's leaf is reported as the forgery it is.
        if (result.Content.ContentType == ContentType.Commit && result.Content.Sender.Type == SenderType.Member && result.Content.Sender.Index == OwnLeafIndex)
            throw new MlsGroupException(MlsGroupError.OwnCommit);
        return result;
    }

    private UnprotectedMessage UnprotectPrivate(PrivateMessage message)
    {
        var state = _state;
        // Application data of a retained earlier epoch still opens with that epoch's keys; handshake messages of an
        // earlier epoch are stale whatever the retention (RFC 9420 §6: a commit or proposal belongs to its epoch).
        if (message.Epoch != state.Context.Epoch && message.ContentType == ContentType.Application
            && _pastEpochs.Find(p => p.Context.Epoch == message.Epoch) is { } past)
            state = past;
        if (!MessageProtection.TryUnprotectPrivate(_suite, message, state.Context, state.SecretTree, state.Secrets.SenderDataSecret,
                leaf => state.Tree.Leaf(leaf)?.SignatureKey, out var result, out var error))
            throw new MlsGroupException(Map(error));
        if (result.Content.ContentType == ContentType.Commit && result.Content.Sender.Index == OwnLeafIndex)
            throw new MlsGroupException(MlsGroupError.OwnCommit);
        return result;
    }

    /// <summary>The key a PublicMessage's signature is checked with, by sender type (RFC 9420 §6.1).</summary>
    private byte[]? SignatureKeyOf(FramedContent content) => content.Sender.Type switch
    {
        SenderType.Member => _state.Tree.Leaf(content.Sender.Index)?.SignatureKey,
        SenderType.External => ExternalSenders() is { } senders && content.Sender.Index < senders.Length ? senders[content.Sender.Index].SignatureKey : null,
        SenderType.NewMemberCommit => content.Body.Commit?.Path?.LeafNode.SignatureKey,
        SenderType.NewMemberProposal => (content.Body.Proposal as AddProposal)?.KeyPackage.LeafNode.SignatureKey,
        _ => null,
    };

    private ExternalSender[]? ExternalSenders()
        => _state.Context.Extensions.TryGet<ExternalSendersExtension>(ExtensionTypes.ExternalSenders, out var senders) ? senders.Senders : null;

    private static MlsGroupError Map(UnprotectError error) => error switch
    {
        UnprotectError.WrongGroup => MlsGroupError.WrongGroup,
        UnprotectError.WrongEpoch => MlsGroupError.WrongEpoch,
        UnprotectError.BadMembershipTag => MlsGroupError.BadMembershipTag,
        UnprotectError.BadSignature => MlsGroupError.BadSignature,
        UnprotectError.UnknownSender or UnprotectError.MalformedSenderData => MlsGroupError.UnknownSender,
        UnprotectError.SenderNotAllowed => MlsGroupError.SenderNotAllowed,
        UnprotectError.MalformedAuthData => MlsGroupError.BadConfirmationTag,
        _ => MlsGroupError.Undecryptable,
    };

    /// <summary>Which proposals each sender type may send (RFC 9420 §12.1.8, §12.4.3.2).</summary>
    private static void CheckProposalSender(Proposal proposal, Sender sender)
    {
        var allowed = sender.Type switch
        {
            SenderType.Member => proposal.ProposalType is not ProposalTypes.ExternalInit,
            SenderType.External => proposal.ProposalType is ProposalTypes.Add or ProposalTypes.Remove or ProposalTypes.Psk or ProposalTypes.ReInit or ProposalTypes.GroupContextExtensions,
            SenderType.NewMemberProposal => proposal.ProposalType is ProposalTypes.Add,
            _ => false,
        };
        if (!allowed) throw new MlsGroupException(MlsGroupError.ProposalNotAllowed, $"{sender.Type} sent proposal type {proposal.ProposalType}");
    }

    private void Cache(Proposal proposal, Sender sender, AuthenticatedContent authenticated)
    {
        var reference = Proposal.Reference(_suite, Tls.Encode(authenticated));
        _proposals[Convert.ToHexString(reference)] = new CachedProposal(proposal, sender, reference);
    }

    /// <summary>Signs and frames content as the options say; returns the message and its AuthenticatedContent.</summary>
    private (MlsMessage Message, AuthenticatedContent Authenticated) Protect(FramedContent content, byte[]? confirmationTag)
    {
        if (_options.EncryptHandshake)
        {
            var signature = MessageProtection.Sign(_suite, content, WireFormat.PrivateMessage, _state.Context, _signaturePrivateKey);
            var message = MessageProtection.ProtectPrivate(_suite, content, _state.Context, _signaturePrivateKey, _state.SecretTree, _state.Secrets.SenderDataSecret, confirmationTag);
            return (MlsMessage.Of(message), new AuthenticatedContent(WireFormat.PrivateMessage, content, new FramedContentAuthData(signature, confirmationTag)));
        }
        var publicMessage = MessageProtection.ProtectPublic(_suite, content, _state.Context, _signaturePrivateKey, _state.Secrets.MembershipKey, confirmationTag);
        return (MlsMessage.Of(publicMessage), new AuthenticatedContent(WireFormat.PublicMessage, content, publicMessage.Auth));
    }

    internal MlsGroupOptions Options => _options;

    internal byte[] SignaturePrivateKey => _signaturePrivateKey;

    /// <summary>Frames content with this epoch's keys as given, for tests that need a tampered yet well-framed message.</summary>
    internal MlsMessage ProtectForTests(FramedContent content, byte[]? confirmationTag) => Protect(content, confirmationTag).Message;

    private void ThrowIfInactive()
    {
        if (!IsActive) throw new MlsGroupException(MlsGroupError.NotAMember);
    }

    private void RememberResumptionPsk()
    {
        _resumptionPsks[Epoch] = (byte[])_state.Secrets.ResumptionPsk.Clone();
        var stale = _resumptionPsks.Keys.Where(e => e + (ulong)Math.Max(1, _options.ResumptionPskRetention) <= Epoch).ToList();
        foreach (var epoch in stale)
        {
            CryptographicOperations.ZeroMemory(_resumptionPsks[epoch]);
            _resumptionPsks.Remove(epoch);
        }
    }

    /// <summary>Installs a new epoch: disposes the old one, forgets this epoch's proposals.</summary>
    private void Install(EpochState next)
    {
        var old = _state;
        _state = next;
        if (_options.PastEpochRetention > 0)
        {
            // Kept only to open late application messages: the tree's private keys go now, the rest when evicted.
            old.Keys.Dispose();
            _pastEpochs.Add(old);
            while (_pastEpochs.Count > _options.PastEpochRetention)
            {
                _pastEpochs[0].Dispose();
                _pastEpochs.RemoveAt(0);
            }
        }
        else
        {
            old.Dispose();
        }
        _proposals.Clear();
        foreach (var key in _pendingUpdateKeys.Values) CryptographicOperations.ZeroMemory(key);
        _pendingUpdateKeys.Clear();
        RememberResumptionPsk();
    }

    private GroupInfo SignedGroupInfo(EpochState state, byte[] confirmationTag, bool includeRatchetTree, bool withExternalPub)
    {
        var extensions = new List<Extension>();
        if (includeRatchetTree) extensions.Add(Extension.Of(ExtensionTypes.RatchetTree, state.Tree.ToRatchetTree()));
        if (withExternalPub) extensions.Add(Extension.Of(ExtensionTypes.ExternalPub, new ExternalPubExtension(state.Secrets.ExternalPublicKey())));
        return new GroupInfo(state.Context, [.. extensions], confirmationTag, state.OwnLeaf, []).Signed(_suite, _signaturePrivateKey);
    }

    private sealed record CachedProposal(Proposal Proposal, Sender Sender, byte[] Reference);

    private sealed record PendingCommit(EpochState State, ReInitProposal? ReInit);
}
