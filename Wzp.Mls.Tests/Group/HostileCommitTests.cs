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
}
