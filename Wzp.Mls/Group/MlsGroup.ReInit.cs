using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Group;

public sealed partial class MlsGroup
{
    private ReInitPsk? _reInitPsk;

    /// <summary>
    /// The ReInit this group committed (RFC 9420 §11.2), or null. Once set the group sends and accepts no more
    /// handshake or application messages; a member creates the new group with <see cref="CreateReInitGroup"/> and
    /// the others join it with <see cref="JoinReInit"/>.
    /// </summary>
    public ReInitProposal? PendingReInit { get; private set; }

    /// <summary>
    /// Creates the group a committed ReInit asks for (RFC 9420 §11.2): its group id, version, cipher suite and
    /// extensions, with this member as creator, and commits Adds of <paramref name="keyPackages"/> (the other
    /// members' key packages for the new suite) with a resumption PSK of usage reinit naming this group's last epoch.
    /// The new group is at epoch 1; the Welcome in the returned output goes to the others.
    /// </summary>
    public (MlsGroup Group, CommitOutput Output) CreateReInitGroup(IReadOnlyList<KeyPackage> keyPackages, byte[]? signaturePrivateKey = null, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(keyPackages);
        ThrowIfInactive();
        var reInit = PendingReInit ?? throw new MlsGroupException(MlsGroupError.ReInitPending, "no ReInit was committed");
        var suite = CipherSuite.TryGet(reInit.CipherSuite) ?? throw new MlsGroupException(MlsGroupError.InvalidReInit);
        var own = _state.Tree.Leaf(OwnLeafIndex)!;
        var group = Create(suite, (byte[])reInit.GroupId.Clone(), own.Credential, signaturePrivateKey ?? _signaturePrivateKey, reInit.Extensions, own.Capabilities, options ?? _options);
        try
        {
            group._reInitPsk = new ReInitPsk((byte[])GroupId.Clone(), Epoch, (byte[])_state.Secrets.ResumptionPsk.Clone());
            var psk = PreSharedKeyId.Resumption(ResumptionPskUsage.ReInit, (byte[])GroupId.Clone(), Epoch, RandomNumberGenerator.GetBytes(suite.HashLength));
            var output = group.Commit(new CommitOptions { Proposals = [.. keyPackages.Select(k => (Proposal)new AddProposal(k)), new PreSharedKeyProposal(psk)] });
            group.MergePendingCommit();
            return (group, output);
        }
        catch
        {
            group.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Joins the group that replaces <paramref name="oldGroup"/> after its ReInit (RFC 9420 §11.2): the Welcome must
    /// carry the resumption PSK (usage reinit) of the old group's last epoch, and the new group must be at epoch 1
    /// with the group id, version, cipher suite and extensions the ReInit named; otherwise <see cref="MlsGroupError.ReInitPending"/>.
    /// </summary>
    public static MlsGroup JoinReInit(Welcome welcome, KeyPackageBundle bundle, MlsGroup oldGroup, RatchetTree? ratchetTree = null, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        ArgumentNullException.ThrowIfNull(bundle);
        ArgumentNullException.ThrowIfNull(oldGroup);
        oldGroup.ThrowIfInactive();
        if (oldGroup.PendingReInit is null) throw new MlsGroupException(MlsGroupError.ReInitPending, "the old group committed no ReInit");
        try
        {
            return JoinCore(welcome, bundle, ratchetTree, options, oldGroup);
        }
        catch (Exception e) when (IsInputFault(e))
        {
            throw new MlsGroupException(MlsGroupError.MalformedMessage, e.Message);
        }
    }

    /// <summary>RFC 9420 §12.1.5: the version may not go down, and the suite must be one this library implements.</summary>
    private void CheckReInit(ReInitProposal reInit)
    {
        if (reInit.Version < _state.Context.Version || reInit.Version != ProtocolVersion.Mls10 || CipherSuite.TryGet(reInit.CipherSuite) is null)
            throw new MlsGroupException(MlsGroupError.InvalidReInit);
        if (reInit.Extensions.HasDuplicateTypes()) throw new MlsGroupException(MlsGroupError.InvalidReInit, "duplicate extension types");
    }

    private void ThrowIfReInitPending()
    {
        if (PendingReInit is not null) throw new MlsGroupException(MlsGroupError.ReInitPending);
    }

    /// <summary>For a joiner of a reinit group: the old group's PSK if <paramref name="id"/> names its last epoch.</summary>
    private byte[]? ReInitPskFor(PreSharedKeyId id)
        => id.PskType == PskType.Resumption && id.Usage == ResumptionPskUsage.ReInit && PendingReInit is not null
           && id.PskGroupId.AsSpan().SequenceEqual(GroupId) && id.PskEpoch == Epoch
            ? _state.Secrets.ResumptionPsk
            : null;

    /// <summary>Whether a joined group is the one <paramref name="reInit"/> asked for (RFC 9420 §11.2).</summary>
    private static bool MatchesReInit(GroupContext context, ReInitProposal reInit)
        => context.GroupId.AsSpan().SequenceEqual(reInit.GroupId) && context.Version == reInit.Version && context.CipherSuite == reInit.CipherSuite
           && context.Epoch == 1 && Tls.Encode(new ExtensionVector(context.Extensions)).AsSpan().SequenceEqual(Tls.Encode(new ExtensionVector(reInit.Extensions)));

    private sealed record ReInitPsk(byte[] GroupId, ulong Epoch, byte[] Psk);

    private sealed record ExtensionVector(Extension[] Extensions) : ITlsEncodable
    {
        public void Encode(TlsWriter writer) => writer.WriteVector(Extensions);
    }
}
