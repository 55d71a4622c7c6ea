using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Group;

/// <summary>Late application messages and MlsGroupOptions.PastEpochRetention.</summary>
public sealed class PastEpochTests
{
    [Theory]
    [InlineData((ushort)1)]
    [InlineData((ushort)3)]
    public void LateApplicationMessage_OpensWithinTheRetention_AndNotBeyondOrWithout(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);
        var (signature, _) = suite.GenerateSignatureKeyPair();
        using var alice = MlsGroup.Create(suite, "late"u8.ToArray(), Credential.Basic("alice"u8.ToArray()), signature);
        var (bobSignature, _) = suite.GenerateSignatureKeyPair();
        var (carolSignature, _) = suite.GenerateSignatureKeyPair();
        using var bobPackage = KeyPackageBundle.Create(suite, Credential.Basic("bob"u8.ToArray()), bobSignature);
        using var carolPackage = KeyPackageBundle.Create(suite, Credential.Basic("carol"u8.ToArray()), carolSignature);
        var add = alice.Commit(new CommitOptions { Proposals = [new AddProposal(bobPackage.KeyPackage), new AddProposal(carolPackage.KeyPackage)] });
        alice.MergePendingCommit();
        using var bob = MlsGroup.Join(add.Welcome!.Welcome!, bobPackage, null, new MlsGroupOptions { PastEpochRetention = 1 });
        using var carol = MlsGroup.Join(add.Welcome!.Welcome!, carolPackage);

        var late = alice.EncryptApplication("sent before the commit"u8.ToArray());
        var older = alice.EncryptApplication("two epochs back"u8.ToArray());
        var commit = alice.Commit().Commit;
        alice.MergePendingCommit();
        bob.Process(commit);
        carol.Process(commit);

        Assert.Equal("sent before the commit"u8.ToArray(), bob.Process(late).ApplicationData);
        Assert.False(carol.TryProcess(late, out _, out var error));
        Assert.Equal(MlsGroupError.WrongEpoch, error);
        // A late message is handed out once, like any other generation.
        Assert.False(bob.TryProcess(late, out _, out error));
        Assert.Equal(MlsGroupError.Undecryptable, error);

        var second = alice.Commit().Commit;
        alice.MergePendingCommit();
        bob.Process(second);
        Assert.False(bob.TryProcess(older, out _, out error));
        Assert.Equal(MlsGroupError.WrongEpoch, error);
        Assert.Equal(alice.EpochAuthenticator, bob.EpochAuthenticator);
    }
}
