using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Wzp.Protocol;

/// <summary>The outcome of feeding one message to a state machine: a value, or the error to send before closing.</summary>
public readonly record struct Step<T>(T? Value, Error? Failure) where T : class
{
    public bool Succeeded => Failure is null;

    public static Step<T> Ok(T value) => new(value, null);

    public static Step<T> Fail(string code, string message) => new(null, new Error(code, message));
}

/// <summary>What both sides derive from one handshake (PROTOCOL.md §5.3).</summary>
internal static class HandshakeKeys
{
    public static ReadOnlySpan<byte> HelloLabel => "wzp/2 hello\0"u8;
    public static ReadOnlySpan<byte> TranscriptLabel => "wzp/1 transcript\0"u8;
    public static ReadOnlySpan<byte> WelcomeLabel => "wzp/1 welcome\0"u8;
    public static ReadOnlySpan<byte> ConfirmLabel => "wzp/2 confirm\0"u8;

    /// <summary>
    /// <c>SHA-256(u16 version ‖ identityKey ‖ ephemeralKey ‖ nonce ‖ lp(room) ‖ lp(alias))</c>: the version is
    /// bound in, so a hello cannot be passed off as another version's.
    /// </summary>
    public static byte[] HelloHash(int version, ReadOnlySpan<byte> identityKey, ReadOnlySpan<byte> ephemeralKey, ReadOnlySpan<byte> nonce, string room, string alias)
    {
        var buffer = new List<byte>(160);
        Span<byte> versionBytes = stackalloc byte[2];
        Primitives.WriteU16(versionBytes, version);
        buffer.AddRange(versionBytes);
        buffer.AddRange(identityKey);
        buffer.AddRange(ephemeralKey);
        buffer.AddRange(nonce);
        Primitives.AppendLengthPrefixed(buffer, Encoding.UTF8.GetBytes(room));
        Primitives.AppendLengthPrefixed(buffer, Encoding.UTF8.GetBytes(alias));
        return Primitives.Sha256(buffer.ToArray());
    }

    public static byte[] Labelled(ReadOnlySpan<byte> label, ReadOnlySpan<byte> value) => [.. label, .. value];

    public static byte[] TranscriptHash(ReadOnlySpan<byte> helloHash, ReadOnlySpan<byte> helloSignature, GatewayCredential credential,
        ReadOnlySpan<byte> gatewayEphemeral, ReadOnlySpan<byte> gatewayNonce) =>
        Primitives.Sha256([.. TranscriptLabel, .. helloHash, .. helloSignature, .. credential.CanonicalBytes(), .. gatewayEphemeral, .. gatewayNonce]);

    /// <summary>prk, chain0, confirmKey and the SAS from the shared secret; false on an all-zero X25519 output.</summary>
    public static bool Derive(EphemeralKey ours, ReadOnlySpan<byte> theirs, ReadOnlySpan<byte> transcriptHash,
        out byte[] chain0, out byte[] confirmKey, out string sas)
    {
        chain0 = confirmKey = [];
        sas = "";
        Span<byte> shared = stackalloc byte[Primitives.KeySize];
        Span<byte> prk = stackalloc byte[Primitives.HashSize];
        try
        {
            if (!Primitives.X25519Agree(ours, theirs, shared)) return false;
            Primitives.Extract(transcriptHash, shared, prk);
            chain0 = Primitives.Expand(prk, "wzp/1 chain"u8, Primitives.KeySize);
            confirmKey = Primitives.Expand(prk, "wzp/1 confirm"u8, Primitives.KeySize);
            Span<byte> sasBytes = stackalloc byte[4];
            Primitives.Expand(prk, "wzp/1 sas"u8, sasBytes);
            sas = (BinaryPrimitives.ReadUInt32BigEndian(sasBytes) % 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    /// <summary><c>"wzp/2 confirm\0" ‖ transcriptHash ‖ lp(token)</c>: what the confirm MAC covers.</summary>
    public static byte[] ConfirmInput(ReadOnlySpan<byte> transcriptHash, string token)
    {
        var buffer = new List<byte>(ConfirmLabel.Length + transcriptHash.Length + 2 + token.Length);
        buffer.AddRange(ConfirmLabel);
        buffer.AddRange(transcriptHash);
        Primitives.AppendLengthPrefixed(buffer, Encoding.UTF8.GetBytes(token));
        return [.. buffer];
    }

    public static byte[] ConfirmMac(ReadOnlySpan<byte> confirmKey, ReadOnlySpan<byte> transcriptHash, string token)
    {
        var mac = new byte[Primitives.MacSize];
        Primitives.HmacSha256(confirmKey, ConfirmInput(transcriptHash, token), mac);
        return mac;
    }
}

/// <summary>Limits on <c>hello</c> and <c>confirm</c> fields (PROTOCOL.md §5.1, §5.4).</summary>
public static class HelloLimits
{
    /// <summary>The protocol version this implementation speaks; a hello with another gets <c>unsupported-version</c>.</summary>
    public const int Version = 2;

    public const int NonceSize = 32;
    public const int MaxRoomLength = 128;
    public const int MaxAliasLength = 64;
    public const int MaxTokenLength = 4096;

    /// <summary>A room name: 1 to 128 characters, no control characters.</summary>
    public static bool IsValidRoom(string? room) => room is { Length: >= 1 and <= MaxRoomLength } && !room.Any(char.IsControl);

    public static bool IsValidAlias(string? alias) => alias is { Length: <= MaxAliasLength } && !alias.Any(char.IsControl);

    public static bool IsValidToken(string? token) => token is { Length: <= MaxTokenLength };
}

/// <summary>
/// The client side of the handshake (PROTOCOL.md §5) as a pure state machine: build <see cref="Hello"/>, feed the
/// <see cref="Welcome"/>, get the <see cref="Confirm"/> to send and the session keys, or the reason to give up.
/// </summary>
public sealed class ClientHandshake : IDisposable
{
    private readonly byte[]? _pinnedClusterKey;
    private readonly TimeProvider _time;
    private readonly EphemeralKey _ephemeral;
    private readonly byte[] _helloHash;
    private readonly string _token;
    private bool _done;

    /// <param name="identity">The client's identity; signs the hello.</param>
    /// <param name="room">Room to join.</param>
    /// <param name="alias">Display name, may be empty.</param>
    /// <param name="token">
    /// Access token, may be empty. It goes only into the confirm, which exists only once the gateway's credential
    /// and signature verified (and which the caller sends only after its own trust check).
    /// </param>
    /// <param name="pinnedClusterKey">
    /// The cluster key the credential must be signed by. Null accepts any cluster: the caller then applies its
    /// trust-on-first-use policy to <see cref="ClientSession.Credential"/> before sending the confirm.
    /// </param>
    /// <param name="time">Clock for the credential's validity; the system clock by default.</param>
    /// <param name="ephemeral">Fixed ephemeral key, for vectors; a fresh one by default. Owned by the handshake.</param>
    /// <param name="nonce">Fixed 32-byte nonce, for vectors; random by default.</param>
    public ClientHandshake(Identity identity, string room, string alias = "", string token = "", byte[]? pinnedClusterKey = null,
        TimeProvider? time = null, EphemeralKey? ephemeral = null, byte[]? nonce = null)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (!HelloLimits.IsValidRoom(room)) throw new ArgumentException("A room name is 1 to 128 characters without control characters.", nameof(room));
        if (!HelloLimits.IsValidAlias(alias)) throw new ArgumentException("An alias is at most 64 characters without control characters.", nameof(alias));
        if (!HelloLimits.IsValidToken(token)) throw new ArgumentException("A token is at most 4096 characters.", nameof(token));
        if (pinnedClusterKey is not null && pinnedClusterKey.Length != Identity.PublicKeySize) throw new ArgumentException("A cluster key is 32 bytes.", nameof(pinnedClusterKey));
        nonce ??= RandomNumberGenerator.GetBytes(HelloLimits.NonceSize);
        if (nonce.Length != HelloLimits.NonceSize) throw new ArgumentException("A nonce is 32 bytes.", nameof(nonce));
        _pinnedClusterKey = pinnedClusterKey;
        _time = time ?? TimeProvider.System;
        _token = token;
        _ephemeral = ephemeral ?? EphemeralKey.Generate();
        _helloHash = HandshakeKeys.HelloHash(HelloLimits.Version, identity.PublicKey, _ephemeral.PublicKey, nonce, room, alias);
        var signature = identity.Sign(HandshakeKeys.Labelled(HandshakeKeys.HelloLabel, _helloHash));
        Hello = new Hello(HelloLimits.Version, identity.PublicKey, _ephemeral.PublicKey, nonce, room, alias, signature);
    }

    public Hello Hello { get; }

    internal byte[] HelloHash => _helloHash;

    /// <summary>Checks the gateway's credential and signature and derives the keys.</summary>
    /// <returns>The session (with <see cref="ClientSession.Confirm"/> to send) or the failure.</returns>
    public Step<ClientSession> OnWelcome(Welcome welcome)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        if (_done) return Step<ClientSession>.Fail(ErrorCodes.BadRequest, "welcome already processed");
        _done = true;
        var credential = welcome.Credential;
        if (credential is null || !credential.IsWellFormed || welcome.EphemeralKey is not { Length: Primitives.KeySize } ||
            welcome.Nonce is not { Length: HelloLimits.NonceSize } || welcome.Signature is not { Length: Identity.SignatureSize })
            return Step<ClientSession>.Fail(ErrorCodes.BadRequest, "malformed welcome");
        var status = credential.Verify(_pinnedClusterKey ?? credential.ClusterKey, _time.GetUtcNow());
        if (status != CredentialStatus.Valid)
            return Step<ClientSession>.Fail(status == CredentialStatus.BadSignature ? ErrorCodes.BadSignature : ErrorCodes.Unauthorized,
                $"gateway credential rejected: {status}");
        var transcript = HandshakeKeys.TranscriptHash(_helloHash, Hello.Signature, credential, welcome.EphemeralKey, welcome.Nonce);
        if (!Identity.Verify(credential.GatewayKey, HandshakeKeys.Labelled(HandshakeKeys.WelcomeLabel, transcript), welcome.Signature))
            return Step<ClientSession>.Fail(ErrorCodes.BadSignature, "welcome signature does not match the transcript");
        if (!HandshakeKeys.Derive(_ephemeral, welcome.EphemeralKey, transcript, out var chain0, out var confirmKey, out var sas))
            return Step<ClientSession>.Fail(ErrorCodes.BadRequest, "key agreement failed");
        try
        {
            var confirm = new Confirm(HandshakeKeys.ConfirmMac(confirmKey, transcript, _token), _token);
            return Step<ClientSession>.Ok(new ClientSession(credential, transcript, chain0, sas, confirm, _time));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chain0);
            CryptographicOperations.ZeroMemory(confirmKey);
        }
    }

    public void Dispose() => _ephemeral.Dispose();
}

/// <summary>Gateway-side handshake policy.</summary>
public sealed class GatewayHandshakeOptions
{
    /// <summary>
    /// Checks the token of a confirm whose MAC verified; null accepts every token. Defaults to null. Compare in
    /// constant time.
    /// </summary>
    public Func<string, bool>? TokenValidator { get; init; }

    /// <summary>
    /// When set, every confirm's token must be a grant these keys accept, issued to the identity that signed the
    /// hello and for its room; it replaces <see cref="TokenValidator"/>. Defaults to null: no grant required.
    /// </summary>
    public Grants.GrantValidator? Grants { get; init; }

    /// <summary>
    /// Told of every grant check with the identity that presented it, for the gateway's log (which records the
    /// outcome, the key id and the subject, never the claims). Defaults to null.
    /// </summary>
    public Action<Fingerprint, Grants.GrantCheck>? GrantChecked { get; init; }
}

/// <summary>
/// The gateway side of the handshake (PROTOCOL.md §5) as a pure state machine: feed <see cref="Hello"/>, send the
/// returned <see cref="Welcome"/>; feed <see cref="Confirm"/>, get the session. Only a valid confirm yields a
/// session, so a replayed hello never admits anyone: its replayer cannot compute the MAC.
/// </summary>
public sealed class GatewayHandshake : IDisposable
{
    private readonly Identity _gateway;
    private readonly GatewayCredential _credential;
    private readonly GatewayHandshakeOptions _options;
    private readonly TimeProvider _time;
    private readonly EphemeralKey _ephemeral;
    private readonly byte[] _nonce;
    private Hello? _hello;
    private byte[]? _transcript;
    private State _state = State.AwaitingHello;

    private enum State { AwaitingHello, AwaitingConfirm, Done }

    public GatewayHandshake(Identity gateway, GatewayCredential credential, GatewayHandshakeOptions? options = null,
        TimeProvider? time = null, EphemeralKey? ephemeral = null, byte[]? nonce = null)
    {
        ArgumentNullException.ThrowIfNull(gateway);
        ArgumentNullException.ThrowIfNull(credential);
        if (!credential.GatewayKey.AsSpan().SequenceEqual(gateway.PublicKey))
            throw new ArgumentException("The credential was issued for another gateway key.", nameof(credential));
        _gateway = gateway;
        _credential = credential;
        _options = options ?? new GatewayHandshakeOptions();
        _time = time ?? TimeProvider.System;
        _ephemeral = ephemeral ?? EphemeralKey.Generate();
        _nonce = nonce ?? RandomNumberGenerator.GetBytes(HelloLimits.NonceSize);
    }

    /// <summary>The validated hello, once one was accepted.</summary>
    public Hello? Hello => _hello;

    public Step<Welcome> OnHello(Hello hello)
    {
        ArgumentNullException.ThrowIfNull(hello);
        if (_state != State.AwaitingHello) return Fail<Welcome>(ErrorCodes.BadRequest, "unexpected hello");
        _state = State.Done; // until proven good
        if (hello.Version != HelloLimits.Version)
            return Fail<Welcome>(ErrorCodes.UnsupportedVersion, $"version {hello.Version} is not supported; this gateway speaks {HelloLimits.Version}");
        if (hello.IdentityKey is not { Length: Identity.PublicKeySize } || hello.EphemeralKey is not { Length: Primitives.KeySize } ||
            hello.Nonce is not { Length: HelloLimits.NonceSize } || hello.Signature is not { Length: Identity.SignatureSize } ||
            !HelloLimits.IsValidRoom(hello.Room) || !HelloLimits.IsValidAlias(hello.Alias))
            return Fail<Welcome>(ErrorCodes.BadRequest, "malformed hello");
        var helloHash = HandshakeKeys.HelloHash(hello.Version, hello.IdentityKey, hello.EphemeralKey, hello.Nonce, hello.Room, hello.Alias);
        if (!Identity.Verify(hello.IdentityKey, HandshakeKeys.Labelled(HandshakeKeys.HelloLabel, helloHash), hello.Signature))
            return Fail<Welcome>(ErrorCodes.BadSignature, "hello signature does not verify");
        _transcript = HandshakeKeys.TranscriptHash(helloHash, hello.Signature, _credential, _ephemeral.PublicKey, _nonce);
        var signature = _gateway.Sign(HandshakeKeys.Labelled(HandshakeKeys.WelcomeLabel, _transcript));
        _hello = hello;
        _state = State.AwaitingConfirm;
        return Step<Welcome>.Ok(new Welcome(_credential, _ephemeral.PublicKey, _nonce, signature));
    }

    /// <summary>
    /// Checks the confirm MAC in constant time, then the token it covers, and yields the established session. The
    /// token is looked at only once the MAC proved it came from the client that signed the hello.
    /// </summary>
    public Step<GatewaySession> OnConfirm(Confirm confirm)
    {
        ArgumentNullException.ThrowIfNull(confirm);
        if (_state != State.AwaitingConfirm || _hello is null || _transcript is null) return Fail<GatewaySession>(ErrorCodes.BadRequest, "unexpected confirm");
        _state = State.Done;
        if (!HandshakeKeys.Derive(_ephemeral, _hello.EphemeralKey, _transcript, out var chain0, out var confirmKey, out var sas))
            return Fail<GatewaySession>(ErrorCodes.BadRequest, "key agreement failed");
        try
        {
            if (!HelloLimits.IsValidToken(confirm.Token)) return Fail<GatewaySession>(ErrorCodes.BadRequest, "malformed confirm");
            if (confirm.Mac is not { Length: Primitives.MacSize } ||
                !Primitives.HmacSha256Verify(confirmKey, HandshakeKeys.ConfirmInput(_transcript, confirm.Token), confirm.Mac))
                return Fail<GatewaySession>(ErrorCodes.BadMac, "confirm MAC does not match");
            Grants.Grant? grant = null;
            if (_options.Grants is { } grants)
            {
                var identity = Fingerprint.Of(_hello.IdentityKey);
                var check = grants.Validate(confirm.Token, identity, _hello.Room);
                _options.GrantChecked?.Invoke(identity, check);
                if (!check.Succeeded) return Fail<GatewaySession>(ErrorCodes.Unauthorized, $"grant refused: {check.Failure}");
                grant = check.Grant;
            }
            else if (_options.TokenValidator is { } validate && !validate(confirm.Token))
                return Fail<GatewaySession>(ErrorCodes.Unauthorized, "token refused");
            return Step<GatewaySession>.Ok(new GatewaySession(_gateway, _hello, _transcript, chain0, sas, _time, grant));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(chain0);
            CryptographicOperations.ZeroMemory(confirmKey);
        }
    }

    private Step<T> Fail<T>(string code, string message) where T : class
    {
        _state = State.Done;
        return Step<T>.Fail(code, message);
    }

    public void Dispose() => _ephemeral.Dispose();
}
