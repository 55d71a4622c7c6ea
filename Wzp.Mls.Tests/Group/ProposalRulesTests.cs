using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>Leaf node and proposal checks on receipt (RFC 9420 §7.3, §12.1), and PSK proposals (§8.4).</summary>
public sealed class ProposalRulesTests
{
    public static TheoryData<ushort> Suites => new() { 0x0001, 0x0003 };

    private static GroupScenarioTests.Scenario ThreeMembers(ushort suiteId, MlsGroupOptions? creatorOptions = null)
    {
        var scenario = new GroupScenarioTests.Scenario(CipherSuite.Get(suiteId), new Random(suiteId), creatorOptions: creatorOptions);
        scenario.AddMembers(2);
        return scenario;
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void AddProposal_ExpiredKeyPackage_IsRefusedAsInvalidLeafNode(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var suite = scenario.Suite;
        var (signature, _) = suite.GenerateSignatureKeyPair();
        using var expired = KeyPackageBundle.Create(suite, Credential.Basic("old"u8.ToArray()), signature, lifetime: new Lifetime(0, 1000));
        var proposal = scenario.Members[0].ProposeAdd(expired.KeyPackage);
        Assert.False(scenario.Members[1].TryProcess(proposal, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidLeafNode, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void AddProposal_CredentialTypeNotInCapabilities_IsRefusedAsInvalidLeafNode(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var suite = scenario.Suite;
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var capabilities = new Capabilities([1], [suite.Id], [], [], [CredentialTypes.X509]);
        using var bundle = KeyPackageBundle.Create(suite, Credential.Basic("b"u8.ToArray()), signature, capabilities);
        Assert.False(scenario.Members[1].TryProcess(scenario.Members[0].ProposeAdd(bundle.KeyPackage), out _, out var error));
        Assert.Equal(MlsGroupError.InvalidLeafNode, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void AddProposal_ReusingAMembersEncryptionKey_IsRefusedAsDuplicateLeafKey(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var suite = scenario.Suite;
        var (signature, _) = suite.GenerateSignatureKeyPair();
        using var fresh = KeyPackageBundle.Create(suite, Credential.Basic("dup"u8.ToArray()), signature);
        var stolenKey = scenario.Members[2].Tree.Leaf(scenario.Members[2].OwnLeafIndex)!.EncryptionKey;
        var leaf = (fresh.KeyPackage.LeafNode with { EncryptionKey = stolenKey }).Signed(suite, signature, [], 0);
        var keyPackage = (fresh.KeyPackage with { LeafNode = leaf }).Signed(suite, signature);
        Assert.False(scenario.Members[1].TryProcess(scenario.Members[0].ProposeAdd(keyPackage), out _, out var error));
        Assert.Equal(MlsGroupError.DuplicateLeafKey, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void UpdateProposal_WithBadLeafSignature_IsRefusedOnReceiptAndDoesNotBlockTheNextCommit(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var proposer = scenario.Members[2];
        var message = proposer.ProposeUpdate().PublicMessage!;
        var update = (UpdateProposal)message.Content.Body.Proposal!;
        var signature = (byte[])update.LeafNode.Signature.Clone();
        signature[3] ^= 1;
        var forged = proposer.ProtectForTests(message.Content with { Body = MessageBody.Of(new UpdateProposal(update.LeafNode with { Signature = signature })) }, null);
        Assert.False(scenario.Members[0].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidLeafNode, error);
        scenario.Deliver(scenario.Members[0], scenario.Members[0].Commit().Commit);
        scenario.CheckAgreement();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void UpdateProposal_KeepingTheEncryptionKey_IsRefusedAsInvalidLeafNode(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var proposer = scenario.Members[2];
        var message = proposer.ProposeUpdate().PublicMessage!;
        var update = (UpdateProposal)message.Content.Body.Proposal!;
        var current = proposer.Tree.Leaf(proposer.OwnLeafIndex)!;
        var stale = (update.LeafNode with { EncryptionKey = current.EncryptionKey }).Signed(scenario.Suite, proposer.SignaturePrivateKey, proposer.GroupId, proposer.OwnLeafIndex);
        var forged = proposer.ProtectForTests(message.Content with { Body = MessageBody.Of(new UpdateProposal(stale)) }, null);
        Assert.False(scenario.Members[0].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidLeafNode, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void UpdateProposal_WithLowOrderEncryptionKey_IsRefusedAsInvalidLeafNode(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var proposer = scenario.Members[2];
        var message = proposer.ProposeUpdate().PublicMessage!;
        var update = (UpdateProposal)message.Content.Body.Proposal!;
        // The all-zero X25519 point has order 1: every DH with it is zero (RFC 7748 §6.1).
        var lowOrder = (update.LeafNode with { EncryptionKey = new byte[32] }).Signed(scenario.Suite, proposer.SignaturePrivateKey, proposer.GroupId, proposer.OwnLeafIndex);
        var forged = proposer.ProtectForTests(message.Content with { Body = MessageBody.Of(new UpdateProposal(lowOrder)) }, null);
        Assert.False(scenario.Members[0].TryProcess(forged, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidLeafNode, error);
        scenario.Deliver(scenario.Members[0], scenario.Members[0].Commit().Commit);
        scenario.CheckAgreement();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void RemoveProposal_OfBlankLeaf_IsRefusedOnReceipt(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        Assert.False(scenario.Members[1].TryProcess(scenario.Members[0].ProposeRemove(3), out _, out var error));
        Assert.Equal(MlsGroupError.RemoveOfNonMember, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PskProposals_ExternalAndResumption_AreCommittedAndEveryMemberAgrees(ushort suiteId)
    {
        using var scenario = ThreeMembers(suiteId);
        var group = scenario.Members[0];
        // A resumption PSK of the current epoch, which every member holds.
        var resumption = new PreSharedKeyProposal(PreSharedKeyId.Resumption(ResumptionPskUsage.Application, group.GroupId, group.Epoch, new byte[32]));
        scenario.Deliver(group, group.Commit(new CommitOptions { Proposals = [resumption], IncludePath = false }).Commit);
        scenario.CheckAgreement();

        // A resumption PSK of an epoch nobody kept is refused.
        var ancient = new PreSharedKeyProposal(PreSharedKeyId.Resumption(ResumptionPskUsage.Application, group.GroupId, 1_000_000, new byte[32]));
        Assert.Equal(MlsGroupError.InvalidPsk, Assert.Throws<MlsGroupException>(() => group.Commit(new CommitOptions { Proposals = [ancient] })).Error);
    }

    [Fact]
    public void ExternalPsk_KnownToEveryMember_IsCommittedByReference()
    {
        var id = "shared psk"u8.ToArray();
        var psks = new Dictionary<string, byte[]> { [MlsGroupOptions.PskKey(id)] = "psk value"u8.ToArray() };
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        var (signature, _) = suite.GenerateSignatureKeyPair();
        using var alice = MlsGroup.Create(suite, "psk group"u8.ToArray(), Credential.Basic("alice"u8.ToArray()), signature, options: new MlsGroupOptions { ExternalPsks = psks });
        var (bobSignature, _) = suite.GenerateSignatureKeyPair();
        using var bobPackage = KeyPackageBundle.Create(suite, Credential.Basic("bob"u8.ToArray()), bobSignature);
        var add = alice.Commit(new CommitOptions { Proposals = [new AddProposal(bobPackage.KeyPackage)] });
        alice.MergePendingCommit();
        using var bob = MlsGroup.Join(add.Welcome!.Welcome!, bobPackage, null, new MlsGroupOptions { ExternalPsks = psks });
        bob.Process(alice.ProposeExternalPsk(id));
        var commit = alice.Commit(new CommitOptions { IncludePath = false });
        alice.MergePendingCommit();
        bob.Process(commit.Commit);
        Assert.Equal(alice.EpochAuthenticator, bob.EpochAuthenticator);
    }
}
