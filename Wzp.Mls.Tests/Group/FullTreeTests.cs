using System.Text;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>The synthetic full-tree group the benchmarks use behaves like a real one.</summary>
public sealed class FullTreeTests
{
    [Theory]
    [InlineData((ushort)1, 2)]
    [InlineData((ushort)1, 37)]
    [InlineData((ushort)3, 64)]
    public void FullTree_AddJoinRemove_EveryRealMemberAgrees(ushort suiteId, int members)
    {
        var suite = CipherSuite.Get(suiteId);
        var (creator, observer) = MlsGroup.CreateWithFullTree(suite, members);
        using (creator)
        using (observer)
        {
            for (uint p = 1; p < creator.Tree.NodeCount; p += 2)
                if (p < 2 * (uint)members - 1) Assert.NotNull(creator.Tree.Parent(p));
            Assert.Equal(creator.EpochAuthenticator, observer.EpochAuthenticator);

            var (signature, _) = suite.GenerateSignatureKeyPair();
            using var bundle = KeyPackageBundle.Create(suite, Credential.Basic(Encoding.ASCII.GetBytes("new")), signature);
            var add = creator.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage)] });
            Assert.Null(add.Commit.PublicMessage!.Content.Body.Commit!.Path);
            creator.MergePendingCommit();
            observer.Process(add.Commit);
            using var joined = MlsGroup.Join(add.Welcome!.Welcome!, bundle);
            Assert.Equal(creator.EpochAuthenticator, joined.EpochAuthenticator);

            // With two members the only other leaf to remove is the one just added.
            var victim = members > 2 ? (uint)members - 1 : joined.OwnLeafIndex;
            var remove = creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(victim)] });
            creator.MergePendingCommit();
            observer.Process(remove.Commit);
            var processed = joined.Process(Tls.Decode<MlsMessage>(Tls.Encode(remove.Commit)));
            Assert.Equal(victim == joined.OwnLeafIndex, processed.RemovedFromGroup);
            Assert.Equal(creator.EpochAuthenticator, observer.EpochAuthenticator);
            Assert.Equal(creator.Export("x", [], 16), observer.Export("x", [], 16));
            if (joined.IsActive) Assert.Equal(creator.EpochAuthenticator, joined.EpochAuthenticator);
        }
    }
}
