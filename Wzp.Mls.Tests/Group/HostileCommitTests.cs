using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>
/// Mutated commits that still authenticate (re-framed with the committer's keys, so they reach every check behind
/// the membership tag and signature) never make a receiver throw, and never move or damage its state.
/// </summary>
public sealed class HostileCommitTests
{
    [Theory]
    [InlineData((ushort)1, 11)]
    [InlineData((ushort)3, 12)]
    public void MutatedAuthenticCommits_AreRefusedWithATypedError_AndTheReceiverStillFollowsTheGroup(ushort suiteId, int seed)
    {
        using var scenario = new GroupScenarioTests.Scenario(CipherSuite.Get(suiteId), new Random(seed));
        scenario.AddMembers(4);
        var random = new Random(seed);
        var committer = scenario.Members[0];
        var receiver = scenario.Members[1];
        var update = scenario.Members[3].ProposeUpdate();
        foreach (var member in scenario.Members.Where(m => m != scenario.Members[3])) member.Process(update);
        using var bundle = scenario.NewKeyPackage();
        var output = committer.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage), new RemoveProposal(2)] });
        var content = output.Commit.PublicMessage!.Content;
        var tag = output.Commit.PublicMessage.Auth.ConfirmationTag!;
        var body = Tls.Encode(content.Body.Commit!);
        var refusals = new Dictionary<MlsGroupError, int>();
        for (var i = 0; i < 300; i++)
        {
            var mutated = (byte[])body.Clone();
            for (var flips = 1 + random.Next(3); flips > 0; flips--) mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
            if (!Tls.TryDecode<Commit>(mutated, out var commit)) continue;
            var forged = committer.ProtectForTests(content with { Body = MessageBody.Of(commit) }, tag);
            var epoch = receiver.Epoch;
            Assert.False(receiver.TryProcess(forged, out _, out var error), $"mutation {i} was accepted");
            Assert.NotEqual(MlsGroupError.None, error);
            Assert.Equal(epoch, receiver.Epoch);
            refusals[error] = refusals.GetValueOrDefault(error) + 1;
        }
        Assert.NotEmpty(refusals);
        var removed = scenario.Members.Single(m => m.OwnLeafIndex == 2);
        scenario.Members.Remove(removed);
        Assert.True(removed.Process(output.Commit).RemovedFromGroup);
        removed.Dispose();
        scenario.Deliver(committer, output.Commit);
        scenario.Members.Add(MlsGroup.Join(output.Welcome!.Welcome!, bundle));
        scenario.CheckAgreement();
    }

    [Theory]
    [InlineData((ushort)1, 21)]
    [InlineData((ushort)3, 22)]
    public void MutatedTreesAndGroupInfos_NeverThrowAnythingButTheGroupError(ushort suiteId, int seed)
    {
        var suite = CipherSuite.Get(suiteId);
        // Without the tree in the Welcome, the joiner must take the (mutated) one given out of band.
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(seed), creatorOptions: new MlsGroupOptions { RatchetTreeInWelcome = false });
        scenario.AddMembers(5);
        var random = new Random(seed);
        var creator = scenario.Members[0];
        using var bundle = scenario.NewKeyPackage();
        var output = creator.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage)] });
        creator.MergePendingCommit();
        var welcome = output.Welcome!.Welcome!;
        var tree = Tls.Encode(creator.Tree.ToRatchetTree());
        Assert.True(MlsGroup.TryJoin(welcome, bundle, Tls.Decode<RatchetTree>(tree), null, out var honest, out _));
        honest.Dispose();
        var groupInfo = Tls.Encode(creator.CreateGroupInfo(includeRatchetTree: false));
        var (signature, _) = suite.GenerateSignatureKeyPair();
        for (var i = 0; i < 150; i++)
        {
            var mutatedTree = Mutate(tree, random);
            if (Tls.TryDecode<RatchetTree>(mutatedTree, out var decodedTree))
            {
                // The Welcome's GroupInfo carries the tree too; a mutated out-of-band tree only matters without it.
                // Any change to the tree changes its hash, so no mutation may be accepted.
                Assert.False(MlsGroup.TryJoin(welcome, bundle, decodedTree, null, out _, out var error));
                Assert.NotEqual(MlsGroupError.None, error);
                try
                {
                    MlsGroup.JoinByExternalCommit(Tls.Decode<GroupInfo>(groupInfo), Credential.Basic("x"u8.ToArray()), signature, decodedTree).Group.Dispose();
                }
                catch (MlsGroupException)
                {
                }
            }
            if (Tls.TryDecode<GroupInfo>(Mutate(groupInfo, random), out var decodedInfo))
            {
                try
                {
                    MlsGroup.JoinByExternalCommit(decodedInfo, Credential.Basic("x"u8.ToArray()), signature, Tls.Decode<RatchetTree>(tree)).Group.Dispose();
                }
                catch (MlsGroupException)
                {
                }
            }
        }
    }

    private static byte[] Mutate(byte[] data, Random random)
    {
        var mutated = (byte[])data.Clone();
        for (var flips = 1 + random.Next(3); flips > 0; flips--) mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
        return mutated;
    }
}
