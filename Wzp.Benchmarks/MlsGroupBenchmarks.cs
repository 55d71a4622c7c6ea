using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Benchmarks;

/// <summary>
/// MLS group operations at 10, 100 and 1,000 members (issue 15): creating a commit that adds one member (with
/// path and Welcome), processing that commit as another member, and joining from its Welcome (full tree
/// validation included). Each processed or joined commit is undone outside the measurement by a Remove, so the
/// group stays at its size; one invocation per iteration because every operation moves the epoch.
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
    private int _next;

    [Params(10, 100, 1000)]
    public int Members { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var (signature, _) = Suite.GenerateSignatureKeyPair();
        _creator = MlsGroup.Create(Suite, "benchmark"u8.ToArray(), Credential.Basic("creator"u8.ToArray()), signature);
        using (var observer = NewKeyPackage())
        {
            var first = _creator.Commit(new CommitOptions { Proposals = [new AddProposal(observer.KeyPackage)] });
            _creator.MergePendingCommit();
            _observer = MlsGroup.Join(first.Welcome!.Welcome!, observer);
        }
        while (_creator.Tree.MemberCount < Members)
        {
            var batch = Enumerable.Range(0, Math.Min(100, Members - _creator.Tree.MemberCount)).Select(_ => NewKeyPackage()).ToList();
            var output = _creator.Commit(new CommitOptions { Proposals = batch.Select(b => (Proposal)new AddProposal(b.KeyPackage)).ToArray() });
            _creator.MergePendingCommit();
            _observer.Process(output.Commit);
            foreach (var bundle in batch) bundle.Dispose();
        }
        _reused = NewKeyPackage();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _creator.Dispose();
        _observer.Dispose();
        _reused.Dispose();
    }

    [Benchmark(Description = "create add-commit (path + Welcome)")]
    public void CreateAddCommit()
    {
        _creator.Commit(new CommitOptions { Proposals = [new AddProposal(_reused.KeyPackage)] });
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

    private KeyPackageBundle NewKeyPackage()
    {
        var (signature, _) = Suite.GenerateSignatureKeyPair();
        return KeyPackageBundle.Create(Suite, Credential.Basic(Encoding.ASCII.GetBytes($"member-{_next++}")), signature);
    }
}
