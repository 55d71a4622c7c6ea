using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Benchmarks;

/// <summary>
/// MLS group operations at 10, 100 and 1,000 members (issue 15), suite 1, in a group whose tree is full (every
/// parent populated, as after each member has committed once with a path): creating a commit that adds one member
/// (no path, the library's default for add-only commits, and with a path), processing it as another member,
/// joining from its Welcome (full tree validation and every leaf signature), and creating and processing a commit
/// that removes one member (a path is required). Adds and removes measured with processing or joining are undone
/// outside the measurement, so the group keeps its size; one invocation per iteration because each moves the epoch.
/// <see cref="Sizes"/> gives the encoded sizes of those messages, full and after removals blanked part of the tree.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 2, iterationCount: 15, invocationCount: 1)]
public class MlsGroupBenchmarks
{
    private static readonly CipherSuite Suite = CipherSuite.X25519Aes128GcmSha256Ed25519;

    private MlsGroup _creator = null!;
    private MlsGroup _observer = null!;
    private KeyPackageBundle _reused = null!;
    private KeyPackageBundle _joiner = null!;
    private MlsMessage _commit = null!;
    private Welcome _welcome = null!;
    private MlsGroup? _joined;
    private uint _victim;
    private int _next;

    [Params(10, 100, 1000)]
    public int Members { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_creator, _observer) = MlsGroup.CreateWithFullTree(Suite, Members);
        _reused = NewKeyPackage();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _creator.Dispose();
        _observer.Dispose();
        _reused.Dispose();
    }

    [Benchmark(Description = "create add-commit (no path) + Welcome")]
    public void CreateAddCommit()
    {
        _creator.Commit(new CommitOptions { Proposals = [new AddProposal(_reused.KeyPackage)] });
        _creator.ClearPendingCommit();
    }

    [Benchmark(Description = "create add-commit with path + Welcome")]
    public void CreateAddCommitWithPath()
    {
        _creator.Commit(new CommitOptions { Proposals = [new AddProposal(_reused.KeyPackage)], IncludePath = true });
        _creator.ClearPendingCommit();
    }

    [IterationSetup(Targets = [nameof(ProcessAddCommit), nameof(JoinFromWelcome)])]
    public void StageAdd()
    {
        _joiner = NewKeyPackage();
        var output = _creator.Commit(new CommitOptions { Proposals = [new AddProposal(_joiner.KeyPackage)] });
        _creator.MergePendingCommit();
        _commit = output.Commit;
        _welcome = output.Welcome!.Welcome!;
    }

    [Benchmark(Description = "process add-commit")]
    public void ProcessAddCommit() => _observer.Process(_commit);

    [Benchmark(Description = "join from Welcome")]
    public void JoinFromWelcome() => _joined = MlsGroup.Join(_welcome, _joiner);

    [IterationCleanup(Targets = [nameof(ProcessAddCommit), nameof(JoinFromWelcome)])]
    public void UndoAdd()
    {
        if (_observer.Epoch != _creator.Epoch) _observer.Process(_commit);
        var added = _creator.Tree.FindLeaf(l => l.SignatureKey.AsSpan().SequenceEqual(_joiner.KeyPackage.LeafNode.SignatureKey))!.Value;
        var output = _creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(added)] });
        _creator.MergePendingCommit();
        _observer.Process(output.Commit);
        _joined?.Dispose();
        _joined = null;
        _joiner.Dispose();
    }

    [IterationSetup(Target = nameof(CreateRemoveCommit))]
    public void PickVictim() => _victim = (uint)(2 + (_next % Math.Max(1, Members - 2)));

    [Benchmark(Description = "create remove-commit (path)")]
    public void CreateRemoveCommit()
    {
        _creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(_victim)] });
        _creator.ClearPendingCommit();
    }

    [IterationSetup(Target = nameof(ProcessRemoveCommit))]
    public void StageRemove()
    {
        // A fresh member is added (no path, outside the measurement) and then removed, so the size stays put.
        _joiner = NewKeyPackage();
        var add = _creator.Commit(new CommitOptions { Proposals = [new AddProposal(_joiner.KeyPackage)] });
        _creator.MergePendingCommit();
        _observer.Process(add.Commit);
        var added = _creator.Tree.FindLeaf(l => l.SignatureKey.AsSpan().SequenceEqual(_joiner.KeyPackage.LeafNode.SignatureKey))!.Value;
        _commit = _creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(added)] }).Commit;
        _creator.MergePendingCommit();
    }

    [Benchmark(Description = "process remove-commit")]
    public void ProcessRemoveCommit() => _observer.Process(_commit);

    [IterationCleanup(Target = nameof(ProcessRemoveCommit))]
    public void CleanupRemove() => _joiner.Dispose();

    /// <summary>
    /// Encoded sizes at <paramref name="members"/>: add commit (no path) and its Welcome, add commit with path,
    /// remove commit in the full tree, and a remove commit after a tenth of the members were removed by one member.
    /// </summary>
    public static (int AddCommit, int Welcome, int AddCommitWithPath, int RemoveCommitFull, int RemoveCommitAfterRemovals) Sizes(int members)
    {
        var (creator, observer) = MlsGroup.CreateWithFullTree(Suite, members);
        using (creator)
        using (observer)
        {
            var (signature, _) = Suite.GenerateSignatureKeyPair();
            using var bundle = KeyPackageBundle.Create(Suite, Credential.Basic("sized"u8.ToArray()), signature);
            var add = creator.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage)] });
            creator.ClearPendingCommit();
            var withPath = creator.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage)], IncludePath = true });
            creator.ClearPendingCommit();
            var removeFull = creator.Commit(new CommitOptions { Proposals = [new RemoveProposal((uint)members - 1)] });
            creator.ClearPendingCommit();
            var random = new Random(members);
            for (var i = 0; i < Math.Max(1, members / 10); i++)
            {
                var victims = creator.Tree.Members().Select(m => m.Index).Where(l => l > 1).ToList();
                creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(victims[random.Next(victims.Count)])] });
                creator.MergePendingCommit();
            }
            var last = creator.Tree.Members().Select(m => m.Index).Where(l => l > 1).Last();
            var removeAfter = creator.Commit(new CommitOptions { Proposals = [new RemoveProposal(last)] });
            creator.ClearPendingCommit();
            return (Tls.Encode(add.Commit).Length, Tls.Encode(add.Welcome!).Length, Tls.Encode(withPath.Commit).Length,
                Tls.Encode(removeFull.Commit).Length, Tls.Encode(removeAfter.Commit).Length);
        }
    }

    private KeyPackageBundle NewKeyPackage()
    {
        var (signature, _) = Suite.GenerateSignatureKeyPair();
        return KeyPackageBundle.Create(Suite, Credential.Basic(Encoding.ASCII.GetBytes($"joiner-{_next++}")), signature);
    }
}
