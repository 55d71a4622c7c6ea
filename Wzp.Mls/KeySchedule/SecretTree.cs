using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Wzp.Mls.Crypto;
using Wzp.Mls.Tree;

namespace Wzp.Mls.KeySchedule;

/// <summary>Which of a leaf's two ratchets (RFC 9420 §9.1): handshake for proposals and commits, application for data.</summary>
public enum RatchetKind
{
    Handshake,
    Application,
}

/// <summary>An AEAD key and nonce of one generation of one sender's ratchet. The caller wipes them after use.</summary>
public sealed record RatchetSecret(uint Generation, byte[] Key, byte[] Nonce) : IDisposable
{
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(Key);
        CryptographicOperations.ZeroMemory(Nonce);
    }
}

/// <summary>
/// The secret tree of one epoch (RFC 9420 §9): per-leaf handshake and application hash ratchets derived from the
/// encryption secret. Node secrets are derived lazily along the path to a leaf and each parent secret is wiped as
/// soon as both children exist, so a compromise later in the epoch reveals no key already consumed.
/// </summary>
public sealed class SecretTree : IDisposable
{
    private readonly CipherSuite _suite;
    private readonly uint _leafCount;
    private readonly byte[]?[] _nodeSecrets;
    private readonly HashRatchet?[] _handshake;
    private readonly HashRatchet?[] _application;
    private readonly int _maxForwardDistance;
    private readonly int _maxRetainedKeys;

    /// <param name="suite">The group's cipher suite.</param>
    /// <param name="encryptionSecret">The epoch's encryption_secret; copied, so the caller may wipe its own.</param>
    /// <param name="leafCount">The tree's leaf count (a power of two).</param>
    /// <param name="maxForwardDistance">How many generations a receiver may skip ahead (RFC 9420 §9.2 leaves this to the application).</param>
    /// <param name="maxRetainedKeys">How many skipped generations per ratchet are kept for out-of-order messages.</param>
    public SecretTree(CipherSuite suite, ReadOnlySpan<byte> encryptionSecret, uint leafCount, int maxForwardDistance = 1024, int maxRetainedKeys = 32)
    {
        ArgumentNullException.ThrowIfNull(suite);
        if (leafCount == 0 || (leafCount & (leafCount - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(leafCount), "MLS trees have a power-of-two number of leaves.");
        _suite = suite;
        _leafCount = leafCount;
        _nodeSecrets = new byte[]?[TreeMath.NodeWidth(leafCount)];
        _nodeSecrets[TreeMath.Root(leafCount)] = encryptionSecret.ToArray();
        _handshake = new HashRatchet?[leafCount];
        _application = new HashRatchet?[leafCount];
        _maxForwardDistance = maxForwardDistance;
        _maxRetainedKeys = maxRetainedKeys;
    }

    public uint LeafCount => _leafCount;

    /// <summary>The sender's next key and nonce; the generation goes into the message's SenderData.</summary>
    public RatchetSecret Next(uint leafIndex, RatchetKind kind)
    {
        var ratchet = Ratchet(leafIndex, kind);
        if (!ratchet.TryGet(ratchet.Generation, out var secret))
            throw new CryptographicException("The ratchet's generation space is exhausted.");
        return secret;
    }

    /// <summary>
    /// The key and nonce of <paramref name="generation"/> for a receiver. False if that generation was already
    /// consumed, fell out of the retained window, or lies beyond the forward limit. Each generation is handed out once.
    /// </summary>
    public bool TryGet(uint leafIndex, RatchetKind kind, uint generation, [NotNullWhen(true)] out RatchetSecret? secret)
        => Ratchet(leafIndex, kind).TryGet(generation, out secret);

    public void Dispose()
    {
        foreach (var secret in _nodeSecrets)
            if (secret is not null) CryptographicOperations.ZeroMemory(secret);
        Array.Clear(_nodeSecrets);
        foreach (var ratchet in _handshake) ratchet?.Dispose();
        foreach (var ratchet in _application) ratchet?.Dispose();
    }

    private HashRatchet Ratchet(uint leafIndex, RatchetKind kind)
    {
        if (leafIndex >= _leafCount) throw new ArgumentOutOfRangeException(nameof(leafIndex));
        var ratchets = kind == RatchetKind.Handshake ? _handshake : _application;
        if (ratchets[leafIndex] is null) DeriveLeaf(leafIndex);
        return ratchets[leafIndex]!;
    }

    private void DeriveLeaf(uint leafIndex)
    {
        var leafNode = TreeMath.LeafToNode(leafIndex);
        // Walk from the root towards the leaf; the lowest node on that path still holding a secret is where
        // derivation resumes (everything above it was consumed into children already).
        var path = TreeMath.DirectPath(leafNode, _leafCount);
        path.Reverse();
        path.Add(leafNode);
        var start = path.FindLastIndex(n => _nodeSecrets[n] is not null);
        if (start < 0) throw new InvalidOperationException($"Leaf {leafIndex}'s ratchets were already derived and disposed.");
        for (var i = start; i < path.Count - 1; i++)
        {
            var node = path[i];
            var secret = _nodeSecrets[node]!;
            _nodeSecrets[TreeMath.Left(node)] = _suite.ExpandWithLabel(secret, "tree"u8, "left"u8, _suite.HashLength);
            _nodeSecrets[TreeMath.Right(node)] = _suite.ExpandWithLabel(secret, "tree"u8, "right"u8, _suite.HashLength);
            CryptographicOperations.ZeroMemory(secret);
            _nodeSecrets[node] = null;
        }
        var leafSecret = _nodeSecrets[leafNode]!;
        _handshake[leafIndex] = new HashRatchet(_suite, _suite.ExpandWithLabel(leafSecret, "handshake"u8, [], _suite.HashLength), _maxForwardDistance, _maxRetainedKeys);
        _application[leafIndex] = new HashRatchet(_suite, _suite.ExpandWithLabel(leafSecret, "application"u8, [], _suite.HashLength), _maxForwardDistance, _maxRetainedKeys);
        CryptographicOperations.ZeroMemory(leafSecret);
        _nodeSecrets[leafNode] = null;
    }

    /// <summary>One sender's ratchet (RFC 9420 §9.1): secret_n+1 = DeriveTreeSecret(secret_n, "secret", n, Nh).</summary>
    private sealed class HashRatchet(CipherSuite suite, byte[] secret, int maxForwardDistance, int maxRetainedKeys) : IDisposable
    {
        private readonly SortedDictionary<uint, RatchetSecret> _retained = [];
        private byte[] _secret = secret;

        public uint Generation { get; private set; }

        public bool TryGet(uint generation, [NotNullWhen(true)] out RatchetSecret? result)
        {
            result = null;
            if (generation < Generation)
            {
                if (!_retained.Remove(generation, out result)) return false;
                return true;
            }
            if (generation - Generation > (uint)maxForwardDistance || generation == uint.MaxValue) return false;
            while (Generation < generation)
            {
                Retain(Derive());
                Advance();
            }
            result = Derive();
            Advance();
            return true;
        }

        public void Dispose()
        {
            CryptographicOperations.ZeroMemory(_secret);
            foreach (var kept in _retained.Values) kept.Dispose();
            _retained.Clear();
        }

        private RatchetSecret Derive() => new(
            Generation,
            suite.DeriveTreeSecret(_secret, "key"u8, Generation, suite.AeadKeyLength),
            suite.DeriveTreeSecret(_secret, "nonce"u8, Generation, suite.AeadNonceLength));

        private void Advance()
        {
            var next = suite.DeriveTreeSecret(_secret, "secret"u8, Generation, suite.HashLength);
            CryptographicOperations.ZeroMemory(_secret);
            _secret = next;
            Generation++;
        }

        private void Retain(RatchetSecret skipped)
        {
            _retained[skipped.Generation] = skipped;
            while (_retained.Count > maxRetainedKeys)
            {
                var oldest = _retained.First();
                oldest.Value.Dispose();
                _retained.Remove(oldest.Key);
            }
        }
    }
}

/// <summary>The sender-data key and nonce of a PrivateMessage (RFC 9420 §6.3.2).</summary>
public static class SenderDataSecrets
{
    /// <summary>Derives from the first Nh bytes of the content ciphertext (all of it if shorter).</summary>
    public static (byte[] Key, byte[] Nonce) Derive(CipherSuite suite, ReadOnlySpan<byte> senderDataSecret, ReadOnlySpan<byte> ciphertext)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var sample = ciphertext[..Math.Min(ciphertext.Length, suite.HashLength)];
        return (suite.ExpandWithLabel(senderDataSecret, "key"u8, sample, suite.AeadKeyLength),
                suite.ExpandWithLabel(senderDataSecret, "nonce"u8, sample, suite.AeadNonceLength));
    }
}
