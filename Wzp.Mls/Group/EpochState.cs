using Wzp.Mls.Codec;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Group;

/// <summary>
/// Everything one epoch of a group holds: context, public tree, this member's tree keys, epoch secrets, secret
/// tree and interim transcript hash. A commit builds the next one beside it; the old one is disposed (wiping its
/// secrets) once the new one is installed.
/// </summary>
internal sealed class EpochState : IDisposable
{
    public EpochState(GroupContext context, RatchetTreeState tree, TreePrivateKeys keys, EpochSecrets secrets, byte[] interimTranscriptHash)
    {
        Context = context;
        EncodedContext = Tls.Encode(context);
        Tree = tree;
        Keys = keys;
        Secrets = secrets;
        InterimTranscriptHash = interimTranscriptHash;
        SecretTree = secrets.CreateSecretTree(tree.LeafCount);
    }

    public GroupContext Context { get; }

    public byte[] EncodedContext { get; }

    public RatchetTreeState Tree { get; }

    public TreePrivateKeys Keys { get; }

    public EpochSecrets Secrets { get; }

    public SecretTree SecretTree { get; }

    public byte[] InterimTranscriptHash { get; }

    public uint OwnLeaf => Keys.LeafIndex;

    public void Dispose()
    {
        SecretTree.Dispose();
        Secrets.Dispose();
        Keys.Dispose();
    }
}

/// <summary>Options of a group member.</summary>
public sealed class MlsGroupOptions
{
    /// <summary>Send proposals and commits as PrivateMessage instead of PublicMessage. Defaults to false.</summary>
    public bool EncryptHandshake { get; init; }

    /// <summary>Put the ratchet tree in the Welcome's GroupInfo (ratchet_tree extension). Defaults to true.</summary>
    public bool RatchetTreeInWelcome { get; init; } = true;

    /// <summary>
    /// The clock key-package lifetimes are checked against (RFC 9420 §7.3). Defaults to the system clock; null skips
    /// the check, which interop vectors with fixed lifetimes need.
    /// </summary>
    public TimeProvider? Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// How many earlier epochs' application keys (secret tree, sender-data secret, tree) are kept to open application
    /// messages that arrive after the commit that ended their epoch. Defaults to 0, which keeps none: a retired
    /// epoch's keys are wiped at once, as forward secrecy wants; 1 or 2 suits groups whose messages cross commits.
    /// </summary>
    public int PastEpochRetention { get; init; }

    /// <summary>How many past epochs' resumption PSKs are kept for PSK proposals (RFC 9420 §8.6). Defaults to 8.</summary>
    public int ResumptionPskRetention { get; init; } = 8;

    /// <summary>External PSKs by id (RFC 9420 §8.4), shared out of band. Defaults to none.</summary>
    public IReadOnlyDictionary<string, byte[]> ExternalPsks { get; init; } = new Dictionary<string, byte[]>();

    /// <summary>The key of <see cref="ExternalPsks"/> for a PSK id: its lower-case hex.</summary>
    public static string PskKey(ReadOnlySpan<byte> pskId) => Convert.ToHexStringLower(pskId);

    /// <summary>
    /// Lets a committer produce commits that break the RFC's proposal-list rules, so tests can check receivers refuse
    /// them. Never set outside tests.
    /// </summary>
    internal bool SkipCommitterValidation { get; set; }
}
