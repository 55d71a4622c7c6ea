using System.Text;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Group;

/// <summary>
/// Groups driven through random sequences of adds, removes, updates and empty commits, with members mixing
/// PublicMessage and PrivateMessage handshakes. After every commit every member must agree on the epoch
/// authenticator and an exporter value, and removed members must be unable to process anything that follows.
/// </summary>
public sealed class GroupScenarioTests
{
    public static TheoryData<ushort, int, int> Sizes => new()
    {
        { 0x0001, 2, 30 },
        { 0x0003, 2, 30 },
        { 0x0001, 10, 40 },
        { 0x0003, 10, 40 },
        { 0x0001, 100, 12 },
        { 0x0003, 100, 8 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void RandomOperations_EveryMemberAgreesAfterEveryCommit_AndRemovedMembersAreLockedOut(ushort suiteId, int size, int steps)
    {
        var suite = CipherSuite.Get(suiteId);
        var random = new Random(size * 7919 + suiteId);
        var scenario = new Scenario(suite, random);
        while (scenario.Members.Count < size) scenario.AddMembers(Math.Min(size - scenario.Members.Count, 1 + random.Next(Math.Max(1, size / 4))));
        var externalJoins = 0;
        for (var step = 0; step < steps; step++)
        {
            switch (random.Next(6))
            {
                case 5:
                    scenario.ExternalJoin();
                    externalJoins++;
                    break;
                case 0:
                    scenario.AddMembers(1 + random.Next(2));
                    break;
                case 1 when scenario.Members.Count > 2:
                    scenario.RemoveMember();
                    break;
                case 2:
                    scenario.UpdateByReference();
                    break;
                case 3:
                    scenario.EmptyCommit(withPath: random.Next(2) == 0);
                    break;
                default:
                    scenario.ApplicationMessage();
                    break;
            }
        }
        // Every run includes at least one external join, whatever the seed draws.
        if (externalJoins == 0) scenario.ExternalJoin();
        scenario.RemoveMember();
        scenario.Dispose();
    }

    /// <summary>A set of members of one group, each its own MlsGroup, and the members removed so far.</summary>
    internal sealed class Scenario : IDisposable
    {
        private readonly CipherSuite _suite;
        private readonly Random _random;
        private readonly List<MlsGroup> _removed = [];
        private int _nextId;

        public Scenario(CipherSuite suite, Random random, bool encryptCreator = false, MlsGroupOptions? creatorOptions = null)
        {
            _suite = suite;
            _random = random;
            var (signature, _) = suite.GenerateSignatureKeyPair();
            Members.Add(MlsGroup.Create(suite, Encoding.ASCII.GetBytes($"group-{Guid.NewGuid()}"), Credential.Basic("member-0"u8.ToArray()), signature,
                options: creatorOptions ?? new MlsGroupOptions { EncryptHandshake = encryptCreator }));
            _nextId = 1;
        }

        public List<MlsGroup> Members { get; } = [];

        public CipherSuite Suite => _suite;

        public MlsGroup RandomMember() => Members[_random.Next(Members.Count)];

        public KeyPackageBundle NewKeyPackage()
        {
            var (signature, _) = _suite.GenerateSignatureKeyPair();
            return KeyPackageBundle.Create(_suite, Credential.Basic(Encoding.ASCII.GetBytes($"member-{_nextId++}")), signature);
        }

        public void AddMembers(int count)
        {
            var committer = RandomMember();
            var bundles = Enumerable.Range(0, count).Select(_ => NewKeyPackage()).ToList();
            // Adds alone do not need a path; half the commits leave it out.
            var output = committer.Commit(new CommitOptions
            {
                Proposals = bundles.Select(b => (Proposal)new AddProposal(b.KeyPackage)).ToArray(),
                IncludePath = _random.Next(2) == 0,
            });
            var summary = Deliver(committer, output.Commit);
            if (summary is not null) Assert.Equal(count, summary.Added.Count);
            var welcome = output.Welcome!.Welcome!;
            foreach (var bundle in bundles)
            {
                var options = new MlsGroupOptions { EncryptHandshake = _random.Next(2) == 0 };
                // Half the joiners take the tree from the Welcome, half out of band (from a member).
                var joined = output.GroupInfo!.Extensions.Find(ExtensionTypes.RatchetTree) is not null && _random.Next(2) == 0
                    ? MlsGroup.Join(welcome, bundle, null, options)
                    : MlsGroup.Join(welcome with { }, bundle, committer.Tree.ToRatchetTree(), options);
                Members.Add(joined);
                bundle.Dispose();
            }
            CheckAgreement();
        }

        /// <summary>A new client joins by external commit from a random member's GroupInfo (RFC 9420 §12.4.3.2).</summary>
        public void ExternalJoin()
        {
            var (signature, _) = _suite.GenerateSignatureKeyPair();
            var groupInfo = RandomMember().CreateGroupInfo(includeRatchetTree: _random.Next(2) == 0);
            var tree = Members[0].Tree.ToRatchetTree();
            var (joiner, commit) = MlsGroup.JoinByExternalCommit(groupInfo, Credential.Basic(Encoding.ASCII.GetBytes($"member-{_nextId++}")), signature, tree,
                options: new MlsGroupOptions { EncryptHandshake = _random.Next(2) == 0 });
            var summary = Deliver(joiner, commit, joinerIsNew: true);
            Assert.Equal([joiner.OwnLeafIndex], summary!.Added);
            Members.Add(joiner);
            CheckAgreement();
        }

        public void RemoveMember()
        {
            var committer = RandomMember();
            var victim = Members.Where(m => m != committer).ElementAt(_random.Next(Members.Count - 1));
            MlsMessage commit;
            if (_random.Next(2) == 0)
            {
                commit = committer.Commit(new CommitOptions { Proposals = [new RemoveProposal(victim.OwnLeafIndex)] }).Commit;
            }
            else
            {
                // By reference: a third member (or the committer) proposes, everyone receives the proposal.
                var proposer = RandomMember();
                var proposal = proposer.ProposeRemove(victim.OwnLeafIndex);
                foreach (var member in Members.Where(m => m != proposer)) member.Process(proposal);
                commit = committer.Commit().Commit;
            }
            Members.Remove(victim);
            var processed = victim.Process(commit);
            Assert.True(processed.RemovedFromGroup);
            Assert.False(victim.IsActive);
            Assert.Equal(MlsGroupError.NotAMember, Assert.Throws<MlsGroupException>(() => victim.Export("wzp test", [], 32)).Error);
            Assert.Equal(MlsGroupError.NotAMember, Assert.Throws<MlsGroupException>(() => victim.EncryptApplication([1])).Error);
            _removed.Add(victim);
            var removedLeaf = victim.OwnLeafIndex;
            var summary = Deliver(committer, commit);
            Assert.Equal([removedLeaf], summary!.Removed);
            CheckAgreement();
        }

        public void UpdateByReference()
        {
            var proposer = RandomMember();
            var committer = Members.Count > 1 ? Members.Where(m => m != proposer).ElementAt(_random.Next(Members.Count - 1)) : proposer;
            var proposal = proposer.ProposeUpdate();
            foreach (var member in Members.Where(m => m != proposer)) member.Process(proposal);
            var output = committer.Commit();
            Deliver(committer, output.Commit);
            CheckAgreement();
        }

        public void EmptyCommit(bool withPath)
        {
            var committer = RandomMember();
            if (!withPath)
            {
                // An empty commit must carry a path (RFC 9420 §12.4).
                var refused = Assert.Throws<MlsGroupException>(() => committer.Commit(new CommitOptions { IncludePath = false }));
                Assert.Equal(MlsGroupError.PathRequired, refused.Error);
            }
            var output = committer.Commit();
            Deliver(committer, output.Commit);
            CheckAgreement();
        }

        public void ApplicationMessage()
        {
            var sender = RandomMember();
            var data = Encoding.UTF8.GetBytes($"hello from {sender.OwnLeafIndex} at {sender.Epoch}");
            var message = sender.EncryptApplication(data);
            foreach (var member in Members.Where(m => m != sender))
            {
                var processed = member.Process(message);
                Assert.Equal(ProcessedKind.Application, processed.Kind);
                Assert.Equal(data, processed.ApplicationData);
            }
            foreach (var removed in _removed)
                Assert.False(removed.TryProcess(message, out _, out _));
        }

        /// <summary>Merges the committer's pending commit and has every other member process the commit.</summary>
        public CommitSummary? Deliver(MlsGroup committer, MlsMessage commit, bool joinerIsNew = false)
        {
            var encoded = Tls.Encode(commit);
            CommitSummary? summary = null;
            foreach (var member in Members.Where(m => m != committer))
            {
                Assert.True(member.TryProcess(encoded, out var processed, out var error), $"member {member.OwnLeafIndex}: {error}");
                Assert.Equal(ProcessedKind.Commit, processed.Kind);
                Assert.Equal(committer.OwnLeafIndex, processed.Commit!.Committer);
                summary ??= processed.Commit;
                Assert.Equal(summary.Added, processed.Commit.Added);
                Assert.Equal(summary.Removed, processed.Commit.Removed);
            }
            if (!joinerIsNew) committer.MergePendingCommit();
            foreach (var removed in _removed)
            {
                Assert.False(removed.TryProcess(encoded, out _, out var error));
                Assert.True(error is MlsGroupError.NotAMember or MlsGroupError.WrongEpoch, error.ToString());
            }
            return summary;
        }

        public void CheckAgreement()
        {
            var first = Members[0];
            var authenticator = first.EpochAuthenticator;
            var exported = first.Export("wzp test", "ctx"u8, 32);
            foreach (var member in Members)
            {
                Assert.Equal(first.Epoch, member.Epoch);
                Vectors.Equal(authenticator, member.EpochAuthenticator, $"epoch authenticator of leaf {member.OwnLeafIndex}");
                Vectors.Equal(exported, member.Export("wzp test", "ctx"u8, 32), $"exporter of leaf {member.OwnLeafIndex}");
                Vectors.Equal(first.Tree.TreeHash(), member.Tree.TreeHash(), "tree hash");
            }
            Assert.Equal(Members.Count, first.Tree.MemberCount);
            // The cached hashes, invalidated only along changed paths, equal a from-scratch hash of the same tree.
            Assert.True(Wzp.Mls.Tree.RatchetTreeState.TryFrom(_suite, first.Tree.ToRatchetTree(), out var fresh));
            Vectors.Equal(fresh.TreeHash(), first.Tree.TreeHash(), "cached against fresh tree hash");
            Assert.True(fresh.VerifyParentHashes());
        }

        public void Dispose()
        {
            foreach (var member in Members.Concat(_removed)) member.Dispose();
        }
    }
}
