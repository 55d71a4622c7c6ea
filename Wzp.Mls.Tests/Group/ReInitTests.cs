using System.Text;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>ReInit (RFC 9420 §11.2, §12.1.5): commit, the suspended old group, the new group and joining it.</summary>
public sealed class ReInitTests
{
    [Fact]
    public void ReInit_ToAnotherSuite_EveryMemberMovesToTheNewGroupAndAgrees()
    {
        using var scenario = new GroupScenarioTests.Scenario(CipherSuite.X25519Aes128GcmSha256Ed25519, new Random(11));
        scenario.AddMembers(2);
        var (alice, bob, carol) = (scenario.Members[0], scenario.Members[1], scenario.Members[2]);
        var newSuite = CipherSuite.X25519ChaCha20Poly1305Sha256Ed25519;
        var newGroupId = Encoding.ASCII.GetBytes($"reinit-{Guid.NewGuid()}");
        var reInit = new ReInitProposal(newGroupId, ProtocolVersion.Mls10, newSuite.Id, []);

        var commit = alice.Commit(new CommitOptions { Proposals = [reInit] }).Commit;
        alice.MergePendingCommit();
        foreach (var member in new[] { bob, carol }) Assert.True(member.TryProcess(commit, out _, out var error), error.ToString());
        scenario.CheckAgreement();
        foreach (var member in scenario.Members) Assert.Equal(newGroupId, member.PendingReInit!.GroupId);

        // The old group is finished: nothing more is sent or accepted in it but application data already in flight.
        Assert.Equal(MlsGroupError.ReInitPending, Assert.Throws<MlsGroupException>(() => bob.EncryptApplication([1])).Error);
        Assert.Equal(MlsGroupError.ReInitPending, Assert.Throws<MlsGroupException>(() => bob.Commit()).Error);
        Assert.Equal(MlsGroupError.ReInitPending, Assert.Throws<MlsGroupException>(() => bob.ProposeUpdate()).Error);

        var bobBundle = NewBundle(newSuite, "bob");
        var carolBundle = NewBundle(newSuite, "carol");
        var (newAlice, output) = alice.CreateReInitGroup([bobBundle.KeyPackage, carolBundle.KeyPackage]);
        using var newBob = MlsGroup.JoinReInit(output.Welcome!.Welcome!, bobBundle, bob);
        using var newCarol = MlsGroup.JoinReInit(output.Welcome!.Welcome!, carolBundle, carol);
        using (newAlice)
        {
            var members = new[] { newAlice, newBob, newCarol };
            foreach (var member in members)
            {
                Assert.Equal(1ul, member.Epoch);
                Assert.Equal(newSuite.Id, member.Suite.Id);
                Assert.Equal(newGroupId, member.GroupId);
                Assert.Equal(newAlice.EpochAuthenticator, member.EpochAuthenticator);
                Assert.Equal(newAlice.Export("x", [], 32), member.Export("x", [], 32));
            }
            var hello = newCarol.EncryptApplication("hello"u8.ToArray());
            Assert.Equal("hello"u8.ToArray(), newAlice.Process(hello).ApplicationData);
            var next = newBob.Commit().Commit;
            newBob.MergePendingCommit();
            newAlice.Process(next);
            newCarol.Process(next);
            Assert.Equal(newBob.EpochAuthenticator, newCarol.EpochAuthenticator);
        }
        bobBundle.Dispose();
        carolBundle.Dispose();
    }

    [Fact]
    public void ReInit_WelcomeWithoutTheReInitPsk_IsRefused()
    {
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(12));
        scenario.AddMembers(1);
        var (alice, bob) = (scenario.Members[0], scenario.Members[1]);
        var commit = alice.Commit(new CommitOptions { Proposals = [new ReInitProposal("next"u8.ToArray(), ProtocolVersion.Mls10, suite.Id, [])] }).Commit;
        alice.MergePendingCommit();
        bob.Process(commit);

        // A plain new group with the right id, not carrying the old group's reinit PSK.
        var (signature, _) = suite.GenerateSignatureKeyPair();
        using var impostor = MlsGroup.Create(suite, "next"u8.ToArray(), Credential.Basic("alice"u8.ToArray()), signature);
        using var bundle = NewBundle(suite, "bob");
        var plain = impostor.Commit(new CommitOptions { Proposals = [new AddProposal(bundle.KeyPackage)] });
        var e = Assert.Throws<MlsGroupException>(() => MlsGroup.JoinReInit(plain.Welcome!.Welcome!, bundle, bob));
        Assert.Equal(MlsGroupError.ReInitPending, e.Error);

        // And the real reinit Welcome cannot be used as an ordinary join: its PSK is the old group's.
        using var real = NewBundle(suite, "bob");
        var (newAlice, output) = alice.CreateReInitGroup([real.KeyPackage]);
        newAlice.Dispose();
        Assert.False(MlsGroup.TryJoin(output.Welcome!.Welcome!, real, null, null, out _, out var error));
        Assert.Equal(MlsGroupError.InvalidPsk, error);
    }

    [Fact]
    public void ReInit_UnsupportedSuiteOrWithOtherProposals_IsRefused()
    {
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        using var scenario = new GroupScenarioTests.Scenario(suite, new Random(13));
        scenario.AddMembers(1);
        var alice = scenario.Members[0];
        var unknown = new ReInitProposal("next"u8.ToArray(), ProtocolVersion.Mls10, 0x0002, []);
        Assert.Equal(MlsGroupError.InvalidReInit, Assert.Throws<MlsGroupException>(() => alice.Commit(new CommitOptions { Proposals = [unknown] })).Error);
        var valid = new ReInitProposal("next"u8.ToArray(), ProtocolVersion.Mls10, suite.Id, []);
        Assert.Equal(MlsGroupError.ReInitNotAlone, Assert.Throws<MlsGroupException>(() => alice.Commit(new CommitOptions { Proposals = [valid, new RemoveProposal(1)] })).Error);
        Assert.Null(alice.PendingReInit);
    }

    private static KeyPackageBundle NewBundle(CipherSuite suite, string name)
    {
        var (signature, _) = suite.GenerateSignatureKeyPair();
        return KeyPackageBundle.Create(suite, Credential.Basic(Encoding.ASCII.GetBytes(name)), signature);
    }
}
