using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>External commits (RFC 9420 §12.4.3.2) and proposals from external senders (§12.1.8).</summary>
public sealed class ExternalTests
{
    public static TheoryData<ushort> Suites => new() { 0x0001, 0x0003 };

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalCommit_FromGroupInfo_JoinsAndEveryMemberAgrees(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(5));
        scenario.AddMembers(3);
        var groupInfo = scenario.Members[1].CreateGroupInfo();
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var (joiner, commit) = MlsGroup.JoinByExternalCommit(groupInfo, Credential.Basic("external"u8.ToArray()), signature);
        foreach (var member in scenario.Members)
        {
            Assert.True(member.TryProcess(commit, out var processed, out var error), error.ToString());
            Assert.Equal(ProcessedKind.Commit, processed.Kind);
            Assert.Equal([joiner.OwnLeafIndex], processed.Commit!.Added);
        }
        scenario.Members.Add(joiner);
        scenario.CheckAgreement();

        // The new member takes part like any other.
        var next = joiner.Commit().Commit;
        scenario.Deliver(joiner, next);
        scenario.CheckAgreement();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalCommit_Resync_ReplacesTheOldLeaf(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(6));
        scenario.AddMembers(3);
        var lost = scenario.Members[2];
        scenario.Members.Remove(lost);
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var (rejoined, commit) = MlsGroup.JoinByExternalCommit(scenario.Members[0].CreateGroupInfo(), Credential.Basic("again"u8.ToArray()), signature, resyncLeaf: lost.OwnLeafIndex);
        foreach (var member in scenario.Members) member.Process(commit);
        scenario.Members.Add(rejoined);
        scenario.CheckAgreement();
        Assert.Equal(4, rejoined.Tree.MemberCount);
        lost.Dispose();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalCommit_Tampered_IsRefused(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(7));
        scenario.AddMembers(2);
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var (joiner, commit) = MlsGroup.JoinByExternalCommit(scenario.Members[0].CreateGroupInfo(), Credential.Basic("x"u8.ToArray()), signature);
        joiner.Dispose();
        var message = commit.PublicMessage!;
        var body = message.Content.Body.Commit!;
        // Replace the kem_output: the signature no longer verifies.
        var forged = MlsMessage.Of(message with { Content = message.Content with { Body = MessageBody.Of(body with { Proposals = [ProposalOrRef.ByValue(new ExternalInitProposal(new byte[32]))] }) } });
        Assert.False(scenario.Members[1].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.BadSignature, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalSender_RemoveProposal_IsCommittedByAMember(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);
        var (senderPrivate, senderPublic) = suite.GenerateSignatureKeyPair();
        var (creatorSignature, _) = suite.GenerateSignatureKeyPair();
        var extensions = new[] { Extension.Of(ExtensionTypes.ExternalSenders, new ExternalSendersExtension([new ExternalSender(senderPublic, Credential.Basic("ds"u8.ToArray()))])) };
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(8));
        scenario.AddMembers(2);
        var gce = scenario.Members[0].Commit(new CommitOptions { Proposals = [new GroupContextExtensionsProposal(extensions)] });
        scenario.Deliver(scenario.Members[0], gce.Commit);
        scenario.CheckAgreement();

        var victim = scenario.Members[2];
        var group = scenario.Members[0];
        var proposal = MlsGroup.ExternalProposal(suite, group.GroupId, group.Epoch, 0, senderPrivate, new RemoveProposal(victim.OwnLeafIndex));
        foreach (var member in scenario.Members) Assert.Equal(ProcessedKind.Proposal, member.Process(proposal).Kind);
        var commit = scenario.Members[1].Commit().Commit;
        scenario.Members.Remove(victim);
        Assert.True(victim.Process(commit).RemovedFromGroup);
        scenario.Deliver(scenario.Members[1], commit);
        scenario.CheckAgreement();
        victim.Dispose();

        // An unknown external sender index, and an Update from an external sender, are refused.
        var unknown = MlsGroup.ExternalProposal(suite, group.GroupId, group.Epoch, 1, senderPrivate, new RemoveProposal(0));
        Assert.False(group.TryProcess(unknown, out _, out var error));
        Assert.Equal(MlsGroupError.UnknownSender, error);
        var update = MlsGroup.ExternalProposal(suite, group.GroupId, group.Epoch, 0, senderPrivate, new UpdateProposal(group.Tree.Leaf(0)!));
        Assert.False(group.TryProcess(update, out _, out error));
        Assert.Equal(MlsGroupError.ProposalNotAllowed, error);
    }
}
