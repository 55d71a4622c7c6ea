using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>
/// Commits that break an RFC 9420 rule, each refused by the receiver with the MlsGroupError naming the rule, and
/// the receiver left in its epoch able to process the next valid commit.
/// </summary>
public sealed class InvalidCommitTests
{
    public static TheoryData<ushort> Suites => new() { 0x0001, 0x0003 };

    private static GroupScenarioTests.Scenario ThreeMembers(ushort suiteId, bool encrypt = false, MlsGroupOptions? creatorOptions = null)
    {
        var scenario = new GroupScenarioTests.Scenario(CipherSuite.Get(suiteId), new Random(suiteId), encrypt, creatorOptions);
        scenario.AddMembers(2);
        return scenario;
    }

    /// <summary>Commits with <paramref name="options"/> from member 0 without committer checks; member 1 must refuse it.</summary>
    private static void AssertRefused(GroupScenarioTests.Scenario scenario, CommitOptions options, MlsGroupError expected)
    {
        var committer = scenario.Members[0];
        var receiver = scenario.Members[1];
        var epoch = receiver.Epoch;
        SkipChecks(committer, true);
        var output = committer.Commit(options);
        SkipChecks(committer, false);
        committer.ClearPendingCommit();
        Assert.False(receiver.TryProcess(output.Commit, out _, out var error));
        Assert.Equal(expected, error);
        Assert.Equal(epoch, receiver.Epoch);
        ProveStillWorking(scenario);
    }

    private static void SkipChecks(MlsGroup group, bool skip) => group.Options.SkipCommitterValidation = skip;

    private static void ProveStillWorking(GroupScenarioTests.Scenario scenario)
    {
        var committer = scenario.Members[2];
        scenario.Deliver(committer, committer.Commit().Commit);
        scenario.CheckAgreement();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_RemovingTheCommitter_IsRefusedAsCommitterRemoved(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new RemoveProposal(0)], IncludePath = false }, MlsGroupError.CommitterRemoved);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_RemoveWithoutPath_IsRefusedAsPathRequired(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new RemoveProposal(2)], IncludePath = false }, MlsGroupError.PathRequired);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_EmptyWithoutPath_IsRefusedAsPathRequired(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { IncludePath = false }, MlsGroupError.PathRequired);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_RemovingABlankLeaf_IsRefusedAsRemoveOfNonMember(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new RemoveProposal(3)] }, MlsGroupError.RemoveOfNonMember);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_RemovingTheSameLeafTwice_IsRefusedAsConflicting(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new RemoveProposal(2), new RemoveProposal(2)] }, MlsGroupError.ConflictingLeafProposals);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_AddingAnExistingMember_IsRefusedAsDuplicateAdd(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        using var bundle = scenario.NewKeyPackage();
        AssertRefused(scenario, new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage), new AddProposal(bundle.KeyPackage)] }, MlsGroupError.DuplicateAdd);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_AddWithBadKeyPackageSignature_IsRefusedAsInvalidKeyPackage(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        using var bundle = scenario.NewKeyPackage();
        var signature = (byte[])bundle.KeyPackage.Signature.Clone();
        signature[0] ^= 1;
        AssertRefused(scenario, new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage with { Signature = signature })] }, MlsGroupError.InvalidKeyPackage);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_TwoGroupContextExtensions_IsRefused(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new GroupContextExtensionsProposal([]), new GroupContextExtensionsProposal([])] }, MlsGroupError.MultipleGroupContextExtensions);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_UnknownExternalPsk_IsRefusedAsInvalidPsk(ushort suite)
    {
        // Only the committer holds the PSK.
        var id = "committer only"u8.ToArray();
        using var scenario = ThreeMembers(suite, creatorOptions: new MlsGroupOptions { ExternalPsks = new Dictionary<string, byte[]> { [MlsGroupOptions.PskKey(id)] = new byte[32] } });
        var psk = PreSharedKeyId.External(id, new byte[32]);
        AssertRefused(scenario, new CommitOptions { Proposals = [new PreSharedKeyProposal(psk)] }, MlsGroupError.InvalidPsk);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_ExternalInitFromAMember_IsRefused(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        AssertRefused(scenario, new CommitOptions { Proposals = [new ExternalInitProposal(new byte[32])] }, MlsGroupError.InvalidExternalInit);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_IncludingTheCommittersOwnUpdate_IsRefusedAsCommitterUpdate(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var update = scenario.Members[0].ProposeUpdate();
        scenario.Members[1].Process(update);
        AssertRefused(scenario, new CommitOptions(), MlsGroupError.CommitterUpdate);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_ReferencingAProposalTheReceiverNeverSaw_IsRefusedAsUnknownReference(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        // Member 2's Update reaches the committer but not member 1.
        scenario.Members[0].Process(scenario.Members[2].ProposeUpdate());
        AssertRefused(scenario, new CommitOptions(), MlsGroupError.UnknownProposalReference);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_WithWrongConfirmationTag_IsRefusedAsBadConfirmationTag(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var committer = scenario.Members[0];
        var output = committer.Commit();
        var content = output.Commit.PublicMessage!.Content;
        var tag = (byte[])output.Commit.PublicMessage.Auth.ConfirmationTag!.Clone();
        tag[0] ^= 1;
        var forged = committer.ProtectForTests(content, tag);
        committer.ClearPendingCommit();
        Assert.False(scenario.Members[1].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.BadConfirmationTag, error);
        ProveStillWorking(scenario);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_WithTamperedPathKey_IsRefusedAsInvalidUpdatePath(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var committer = scenario.Members[0];
        var output = committer.Commit();
        var content = output.Commit.PublicMessage!.Content;
        var commit = content.Body.Commit!;
        var nodes = commit.Path!.Nodes.ToArray();
        var key = (byte[])nodes[^1].EncryptionKey.Clone();
        key[5] ^= 1;
        nodes[^1] = nodes[^1] with { EncryptionKey = key };
        var tampered = content with { Body = MessageBody.Of(commit with { Path = commit.Path with { Nodes = nodes } }) };
        var forged = committer.ProtectForTests(tampered, output.Commit.PublicMessage.Auth.ConfirmationTag);
        committer.ClearPendingCommit();
        Assert.False(scenario.Members[1].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidUpdatePath, error);
        ProveStillWorking(scenario);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_BitFlipped_IsRefusedAsBadMembershipTag(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var committer = scenario.Members[0];
        var encoded = Tls.Encode(committer.Commit().Commit);
        committer.ClearPendingCommit();
        encoded[^40] ^= 1;
        Assert.False(scenario.Members[1].TryProcess(encoded, out _, out var error));
        Assert.Equal(MlsGroupError.BadMembershipTag, error);
        ProveStillWorking(scenario);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_FedBackToItsCommitter_IsRefusedAsOwnCommit(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var committer = scenario.Members[0];
        var commit = committer.Commit().Commit;
        Assert.False(committer.TryProcess(commit, out _, out var error));
        Assert.Equal(MlsGroupError.OwnCommit, error);
        scenario.Deliver(committer, commit);
        scenario.CheckAgreement();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Commit_ReplayedAfterItsEpoch_IsRefusedAsWrongEpoch(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        var committer = scenario.Members[0];
        var commit = committer.Commit().Commit;
        scenario.Deliver(committer, commit);
        Assert.False(scenario.Members[1].TryProcess(commit, out _, out var error));
        Assert.Equal(MlsGroupError.WrongEpoch, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PrivateCommit_Tampered_IsRefusedAsUndecryptable(ushort suite)
    {
        using var scenario = ThreeMembers(suite, encrypt: true);
        var committer = scenario.Members[0];
        var message = committer.Commit().Commit;
        committer.ClearPendingCommit();
        Assert.Equal(WireFormat.PrivateMessage, message.WireFormat);
        var encoded = Tls.Encode(message);
        encoded[^3] ^= 1;
        Assert.False(scenario.Members[1].TryProcess(encoded, out _, out var error));
        Assert.Equal(MlsGroupError.Undecryptable, error);
        ProveStillWorking(scenario);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Welcome_ForAnotherKeyPackage_IsRefused(ushort suite)
    {
        using var scenario = ThreeMembers(suite);
        using var invited = scenario.NewKeyPackage();
        using var stranger = scenario.NewKeyPackage();
        var output = scenario.Members[0].Commit(new CommitOptions { Proposals = [new AddProposal(invited.KeyPackage)] });
        Assert.False(MlsGroup.TryJoin(output.Welcome!.Welcome!, stranger, null, null, out _, out var error));
        Assert.Equal(MlsGroupError.WelcomeNotForThisKeyPackage, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Welcome_WithTamperedOutOfBandTree_IsRefusedAsInvalidRatchetTree(ushort suite)
    {
        var options = new MlsGroupOptions { RatchetTreeInWelcome = false };
        var (signature, _) = CipherSuite.Get(suite).GenerateSignatureKeyPair();
        using var creator = MlsGroup.Create(CipherSuite.Get(suite), "g"u8.ToArray(), Credential.Basic("c"u8.ToArray()), signature, options: options);
        var scenario = new GroupScenarioTests.Scenario(CipherSuite.Get(suite), new Random(1));
        using var invited = scenario.NewKeyPackage();
        var output = creator.Commit(new CommitOptions { Proposals = [new AddProposal(invited.KeyPackage)], IncludePath = true });
        creator.MergePendingCommit();
        Assert.False(MlsGroup.TryJoin(output.Welcome!.Welcome!, invited, null, null, out _, out var missing));
        Assert.Equal(MlsGroupError.MissingRatchetTree, missing);
        var nodes = creator.Tree.ToRatchetTree().Nodes.ToArray();
        var parent = nodes[1]!.Parent!;
        var key = (byte[])parent.EncryptionKey.Clone();
        key[0] ^= 1;
        nodes[1] = Node.OfParent(parent with { EncryptionKey = key });
        Assert.False(MlsGroup.TryJoin(output.Welcome!.Welcome!, invited, new RatchetTree(nodes), null, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidRatchetTree, error);
        Assert.True(MlsGroup.TryJoin(output.Welcome!.Welcome!, invited, creator.Tree.ToRatchetTree(), null, out var joined, out _));
        Assert.Equal(creator.EpochAuthenticator, joined.EpochAuthenticator);
        joined.Dispose();
        scenario.Dispose();
    }
}
