using Wzp.Mls.Codec;

namespace Wzp.Mls.Messages;

/// <summary>
/// Credential (RFC 9420 §5.3): a basic identity or an X.509 chain. Other credential types have no length prefix on
/// the wire, so they cannot be skipped and fail to decode.
/// </summary>
public sealed record Credential(ushort CredentialType, byte[]? Identity, byte[][]? Certificates) : ITlsCodec<Credential>
{
    public static Credential Basic(byte[] identity) => new(CredentialTypes.Basic, identity, null);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16(CredentialType);
        switch (CredentialType)
        {
            case CredentialTypes.Basic:
                writer.WriteOpaque(Identity ?? throw new InvalidOperationException("A basic credential needs an identity."));
                break;
            case CredentialTypes.X509:
                var mark = writer.BeginVector();
                foreach (var certificate in Certificates ?? []) writer.WriteOpaque(certificate);
                writer.EndVector(mark);
                break;
            default:
                throw new InvalidOperationException($"Credential type {CredentialType} cannot be encoded.");
        }
    }

    public static Credential Decode(ref TlsReader reader)
    {
        var type = reader.ReadUInt16();
        switch (type)
        {
            case CredentialTypes.Basic:
                return new Credential(type, reader.ReadOpaque(), null);
            case CredentialTypes.X509:
                var inner = reader.ReadVectorReader();
                var certificates = new List<byte[]>();
                while (!inner.IsEmpty) certificates.Add(inner.ReadOpaque());
                return new Credential(type, null, [.. certificates]);
            default:
                throw new MlsDecodeException($"Unknown credential type {type}.");
        }
    }
}

/// <summary>Capabilities (RFC 9420 §7.2); raw code points so unknown and GREASE values round-trip.</summary>
public sealed record Capabilities(ushort[] Versions, ushort[] CipherSuites, ushort[] Extensions, ushort[] Proposals, ushort[] Credentials)
    : ITlsCodec<Capabilities>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16Vector(Versions);
        writer.WriteUInt16Vector(CipherSuites);
        writer.WriteUInt16Vector(Extensions);
        writer.WriteUInt16Vector(Proposals);
        writer.WriteUInt16Vector(Credentials);
    }

    public static Capabilities Decode(ref TlsReader reader) => new(
        reader.ReadUInt16Vector(), reader.ReadUInt16Vector(), reader.ReadUInt16Vector(), reader.ReadUInt16Vector(), reader.ReadUInt16Vector());
}

/// <summary>Lifetime (RFC 9420 §7.2): seconds since the Unix epoch, both bounds inclusive.</summary>
public sealed record Lifetime(ulong NotBefore, ulong NotAfter) : ITlsCodec<Lifetime>
{
    public bool Contains(DateTimeOffset instant)
    {
        var seconds = instant.ToUnixTimeSeconds();
        return seconds >= 0 && (ulong)seconds >= NotBefore && (ulong)seconds <= NotAfter;
    }

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt64(NotBefore);
        writer.WriteUInt64(NotAfter);
    }

    public static Lifetime Decode(ref TlsReader reader) => new(reader.ReadUInt64(), reader.ReadUInt64());
}

/// <summary>Extension (RFC 9420 §13.4): a type and opaque data, parsed by type on demand.</summary>
public sealed record Extension(ushort ExtensionType, byte[] ExtensionData) : ITlsCodec<Extension>
{
    public static Extension Of<T>(ushort type, T value)
        where T : ITlsEncodable
        => new(type, Tls.Encode(value));

    /// <summary>Parses the data as <typeparamref name="T"/>; the whole data must be consumed.</summary>
    public T As<T>()
        where T : ITlsCodec<T>
        => Tls.Decode<T>(ExtensionData);

    public void Encode(TlsWriter writer)
    {
        writer.WriteUInt16(ExtensionType);
        writer.WriteOpaque(ExtensionData);
    }

    public static Extension Decode(ref TlsReader reader) => new(reader.ReadUInt16(), reader.ReadOpaque());
}

/// <summary>HPKECiphertext (RFC 9420 §7.6).</summary>
public sealed record HpkeCiphertext(byte[] KemOutput, byte[] Ciphertext) : ITlsCodec<HpkeCiphertext>
{
    public void Encode(TlsWriter writer)
    {
        writer.WriteOpaque(KemOutput);
        writer.WriteOpaque(Ciphertext);
    }

    public static HpkeCiphertext Decode(ref TlsReader reader) => new(reader.ReadOpaque(), reader.ReadOpaque());
}

/// <summary>An opaque&lt;V&gt; as a codec, for vectors of byte strings and optional&lt;opaque&gt;.</summary>
public sealed record OpaqueValue(byte[] Value) : ITlsCodec<OpaqueValue>
{
    public void Encode(TlsWriter writer) => writer.WriteOpaque(Value);

    public static OpaqueValue Decode(ref TlsReader reader) => new(reader.ReadOpaque());
}
