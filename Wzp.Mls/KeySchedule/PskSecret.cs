using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.KeySchedule;

/// <summary>A PSK to inject into an epoch: its id as it appears in proposals and GroupSecrets, and its value.</summary>
public sealed record PskInput(PreSharedKeyId Id, byte[] Psk);

/// <summary>psk_secret (RFC 9420 §8.4): each PSK folded in order, bound to its id, position and the count.</summary>
public static class PskSecret
{
    public static byte[] Compute(CipherSuite suite, IReadOnlyList<PskInput> psks)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(psks);
        var zero = new byte[suite.HashLength];
        var secret = new byte[suite.HashLength];
        for (var i = 0; i < psks.Count; i++)
        {
            var label = new TlsWriter();
            psks[i].Id.Encode(label);
            label.WriteUInt16(checked((ushort)i));
            label.WriteUInt16(checked((ushort)psks.Count));
            var extracted = suite.Extract(zero, psks[i].Psk);
            var input = suite.ExpandWithLabel(extracted, "derived psk"u8, label.WrittenSpan, suite.HashLength);
            var next = suite.Extract(input, secret);
            CryptographicOperations.ZeroMemory(extracted);
            CryptographicOperations.ZeroMemory(input);
            CryptographicOperations.ZeroMemory(secret);
            secret = next;
        }
        return secret;
    }
}
