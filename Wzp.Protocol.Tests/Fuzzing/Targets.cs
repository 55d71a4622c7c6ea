using System.Buffers;
using System.Text;
using Microsoft.Extensions.Time.Testing;

namespace Wzp.Protocol.Tests.Fuzzing;

/// <summary>Genuine material the targets' seeds are made from: a client-gateway hop, a link, a credential.</summary>
internal sealed class FuzzMaterial : IDisposable
{
    public FuzzMaterial()
    {
        (Client, Gateway) = Peers.Connect();
        var chain = new byte[32];
        Random.Shared.NextBytes(chain);
        LinkA = new HopKeySchedule(HopRole.Client, chain, Peers.Clock);
        LinkB = new HopKeySchedule(HopRole.Gateway, chain, Peers.Clock);
        Other = Identity.Generate();
        OtherCredential = GatewayCredential.Issue(Peers.Cluster, "gw-other", Other.PublicKey, Peers.Clock.GetUtcNow().AddHours(-1), Peers.Clock.GetUtcNow().AddDays(1));
    }

    public TestPeers Peers { get; } = new();

    public ClientSession Client { get; }

    public GatewaySession Gateway { get; }

    public HopKeySchedule LinkA { get; }

    public HopKeySchedule LinkB { get; }

    public Identity Other { get; }

    public GatewayCredential OtherCredential { get; }

    public FakeTimeProvider Clock => Peers.Clock;

    public static MediaHeader Header(int i, bool quality = false) =>
        new(i % 2 == 0, quality, (CodecId)(i % 9), i % 3 == 0, (byte)(i % 128), (ushort)i, (uint)(i * 960), (byte)i, (byte)(i >> 1), 0, (byte)(i % 16));

    public void Dispose()
    {
        Client.Dispose();
        Gateway.Dispose();
        LinkA.Dispose();
        LinkB.Dispose();
        Other.Dispose();
        Peers.Dispose();
    }
}

/// <summary>Client-gateway media datagrams (PROTOCOL.md §6), opened by both sides; opening allocates nothing.</summary>
internal sealed class MediaDatagramTarget(FuzzMaterial m) : FuzzTarget
{
    private readonly byte[] _plaintext = new byte[2048];

    public override string Name => "media-datagram";

    public override IEnumerable<byte[]> Seeds()
    {
        var buffer = new byte[MediaDatagram.MaxSize];
        foreach (var (size, i) in new[] { 0, 1, 3, 4, 5, 40, 160, MediaDatagram.MaxPlaintext }.Select((s, i) => (s, i)))
        {
            var quality = size >= QualityReport.Size && i % 2 == 0;
            var n = MediaDatagram.Seal(m.Gateway.Keys, (ushort)i, Header(i, quality).ToArray(), new byte[size], buffer);
            yield return buffer[..n];
            n = MediaDatagram.Seal(m.Client.Keys, 0, Header(i + 1).ToArray(), new byte[size], buffer);
            yield return buffer[..n];
        }
    }

    private static MediaHeader Header(int i, bool quality = false) => FuzzMaterial.Header(i, quality);

    public override string Run(ReadOnlySpan<byte> input)
    {
        var up = MediaDatagram.Open(m.Gateway.Keys, input, _plaintext, out var upLength, out _);
        var down = MediaDatagram.Open(m.Client.Keys, input, _plaintext, out var downLength, out _);
        if (up == DropReason.None && (upLength < 0 || upLength > MediaDatagram.MaxPlaintext)) throw new InvalidOperationException("opened length out of range");
        if (down == DropReason.None && (downLength < 0 || downLength > MediaDatagram.MaxPlaintext)) throw new InvalidOperationException("opened length out of range");
        var prefix = MediaDatagram.TryReadPrefix(input, out _, out _, out _, out _);
        MediaHeader.TryRead(input, out _);
        QualityReport.TryRead(input, out _);
        return Outcome.Of(up, down, prefix);
    }

    public override long AllocationBound(int length) => 0;
}

/// <summary>Gateway-to-gateway datagrams (PROTOCOL.md §8); opening allocates nothing.</summary>
internal sealed class LinkDatagramTarget(FuzzMaterial m) : FuzzTarget
{
    private readonly byte[] _plaintext = new byte[2048];

    public override string Name => "link-datagram";

    public override IEnumerable<byte[]> Seeds()
    {
        var buffer = new byte[LinkDatagram.MaxSize];
        foreach (var (size, i) in new[] { 0, 1, 4, 160, MediaDatagram.MaxPlaintext }.Select((s, i) => (s, i)))
        {
            var n = LinkDatagram.Seal(m.LinkA, 7, 0x1122334455667788UL, (ushort)i, FuzzMaterial.Header(i, size >= 4).ToArray(), new byte[size], buffer);
            if (n > 0) yield return buffer[..n];
            n = LinkDatagram.Seal(m.LinkB, 9, ulong.MaxValue, ushort.MaxValue, FuzzMaterial.Header(i).ToArray(), new byte[size], buffer);
            if (n > 0) yield return buffer[..n];
        }
    }

    public override string Run(ReadOnlySpan<byte> input)
    {
        var a = LinkDatagram.Open(m.LinkA, input, _plaintext, out var aLength, out _, out _);
        var b = LinkDatagram.Open(m.LinkB, input, _plaintext, out var bLength, out _, out _);
        if ((a == DropReason.None && aLength > MediaDatagram.MaxPlaintext) || (b == DropReason.None && bLength > MediaDatagram.MaxPlaintext))
            throw new InvalidOperationException("a link datagram opened to more plaintext than a media datagram carries");
        var id = LinkDatagram.TryReadLinkId(input, out _);
        return Outcome.Of(a, b, id);
    }

    public override long AllocationBound(int length) => 0;
}

/// <summary>Outcome names made once, so naming an outcome allocates nothing inside a measured execution.</summary>
internal static class Outcome
{
    private static readonly int Reasons = Enum.GetValues<DropReason>().Length;
    private static readonly string[] Names = [.. Enumerable.Range(0, Reasons * Reasons * 2)
        .Select(i => $"{(DropReason)(i / (Reasons * 2))}/{(DropReason)(i / 2 % Reasons)}/{(i % 2 == 1 ? "parsed" : "unparsed")}")];

    public static string Of(DropReason first, DropReason second, bool parsed) => Names[((int)first * Reasons + (int)second) * 2 + (parsed ? 1 : 0)];

    /// <summary>A message's type, with every type the codec does not know folded into one outcome.</summary>
    public static string Type(ControlMessage message) => message is UnknownMessage ? "unknown" : message.Type;
}

/// <summary>Every control message type, encoded as the codec does (the seeds of both control targets).</summary>
internal static class ControlSeeds
{
    public static IEnumerable<ControlMessage> Messages(FuzzMaterial m)
    {
        using var client = m.Peers.Client(room: "fuzz-room");
        using var gateway = m.Peers.GatewaySide();
        var welcome = gateway.OnHello(client.Hello).Value!;
        var session = client.OnWelcome(welcome).Value!;
        yield return client.Hello;
        yield return welcome;
        yield return session.Confirm;
        yield return session.Confirm with { Token = "t\u00e9\"\\k\u0001en" };
        MemberInfo[] members = [new(1, new byte[16], "alice"), new(2, new byte[16], "b\u00f6b <\"&>"), new(65535, new byte[16], "")];
        yield return new Joined("fuzz-room", 3, 7, members);
        yield return new Joined("fuzz-room", 3, 7, members[..1], More: true);
        yield return new RoomUpdate(members, [4, 5]);
        yield return new RoomUpdate([], [1], More: true);
        var rekey = gateway.OnConfirm(session.Confirm).Value!.Rekeys.Request()!;
        yield return rekey;
        var ack = session.Rekeys.OnRekey(rekey).Value!;
        yield return ack;
        yield return new RekeyDone(1);
        yield return new Leave();
        yield return new Ping();
        yield return new Pong();
        yield return new Error(ErrorCodes.Unauthorized, "token refused");
        session.Dispose();
    }
}

/// <summary>
/// Control frames as the gateway and the client read them from the stream (PROTOCOL.md §3): a length prefix, a
/// JSON body, member lists in parts. The first input byte picks the reader's mode and how the bytes are split
/// into transport reads; the only documented error is <see cref="ControlFrameException"/>.
/// </summary>
internal sealed class ControlFrameTarget(FuzzMaterial m) : FuzzTarget
{
    public override string Name => "control-frames";

    public override int MaxInputLength => 8_192;

    public override IEnumerable<byte[]> Seeds()
    {
        var frames = ControlSeeds.Messages(m).Select(ControlCodec.Encode).ToList();
        foreach (var frame in frames) yield return [0, .. frame];
        yield return [1, .. frames[4], .. frames[5], .. frames[4]];
        yield return [0x13, .. frames.SelectMany(f => f)];
        yield return [0x20, .. frames[6], .. frames[7], .. frames[6]];
    }

    public override string Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return "empty";
        var reader = new ControlFrameReader(assembleParts: (input[0] & 1) == 0);
        var chunk = Math.Max(1, input[0] >> 1);
        var rest = input[1..];
        var outcome = new StringBuilder();
        try
        {
            while (!rest.IsEmpty)
            {
                var memory = reader.GetWriteMemory();
                var n = Math.Min(Math.Min(chunk, rest.Length), memory.Length);
                rest[..n].CopyTo(memory.Span);
                reader.Advance(n);
                rest = rest[n..];
                while (reader.TryRead(out var message))
                {
                    if (message is null) throw new InvalidOperationException("TryRead returned true without a message");
                    if (outcome.Length < 64) outcome.Append(Outcome.Type(message)).Append(' ');
                }
            }
            return outcome.Length == 0 ? "incomplete" : outcome.ToString();
        }
        catch (ControlFrameException e)
        {
            return $"error:{e.Error}";
        }
    }

    // The reader's buffer grows to one frame (64 KiB); JSON decoding allocates in proportion to the input.
    public override long AllocationBound(int length) => 160 * 1024 + 512L * length;
}

/// <summary>
/// One control message body through the codec and then to the state machine that consumes that type (hello to
/// a gateway handshake, welcome to a client handshake, rekey messages to sessions): the codec may throw only
/// <see cref="ControlFrameException"/>; the consumers never throw, they refuse with an error.
/// </summary>
internal sealed class ControlMessageTarget(FuzzMaterial m) : FuzzTarget
{
    public override string Name => "control-messages";

    public override int MaxInputLength => 4_096;

    public override IEnumerable<byte[]> Seeds() => ControlSeeds.Messages(m).Select(message =>
    {
        var frame = new ReadOnlySequence<byte>(ControlCodec.Encode(message));
        ControlCodec.TryReadFrame(ref frame, out var body);
        return body.ToArray();
    });

    public override string Run(ReadOnlySpan<byte> input)
    {
        ControlMessage message;
        try
        {
            if (input.IsEmpty) return "empty";
            message = ControlCodec.Decode(input);
        }
        catch (ControlFrameException e)
        {
            return $"error:{e.Error}";
        }
        RoundTrip(message);
        return $"{Outcome.Type(message)}:{Consume(message)}";
    }

    /// <summary>What the codec accepted, it must encode again, and that encoding must decode to the same message.</summary>
    private static void RoundTrip(ControlMessage message)
    {
        if (message is UnknownMessage) return; // never sent
        byte[] encoded;
        try
        {
            encoded = ControlCodec.Encode(message);
        }
        catch (ArgumentException) when (message is Joined or RoomUpdate)
        {
            return; // escaping can grow a list past one frame; EncodeFrames sends such lists in parts
        }
        var frame = new ReadOnlySequence<byte>(encoded);
        if (!ControlCodec.TryReadFrame(ref frame, out var body)) throw new InvalidOperationException("an encoded frame does not read back");
        var again = ControlCodec.Encode(ControlCodec.Decode(body));
        if (!again.AsSpan().SequenceEqual(encoded)) throw new InvalidOperationException($"'{message.Type}' does not survive a second round trip");
    }

    private string Consume(ControlMessage message)
    {
        switch (message)
        {
            case Hello hello:
            {
                using var gateway = m.Peers.GatewaySide();
                var step = gateway.OnHello(hello);
                return step.Succeeded ? "welcomed" : step.Failure!.Code;
            }
            case Welcome welcome:
            {
                using var client = m.Peers.Client();
                var step = client.OnWelcome(welcome);
                step.Value?.Dispose();
                return step.Succeeded ? "confirmed" : step.Failure!.Code;
            }
            case Rekey rekey:
            {
                var step = m.Client.Rekeys.OnRekey(rekey);
                return step.Succeeded ? "acked" : step.Failure!.Code;
            }
            case RekeyAck ack:
            {
                var step = m.Gateway.Rekeys.OnAck(ack);
                return step.Succeeded ? "done" : step.Failure!.Code;
            }
            case RekeyDone done:
                return m.Client.Rekeys.OnRekeyDone(done)?.Code ?? "finished";
            default:
                return "decoded";
        }
    }

    public override long AllocationBound(int length) => 256 * 1024 + 512L * length;
}

/// <summary>
/// Gateway credentials in JSON (in <c>welcome</c>, link offers and the gateway's file) and their canonical bytes:
/// parsing throws only <see cref="FormatException"/>; whatever parses verifies (to a status), hashes to canonical
/// bytes of the length its fields give, and serializes back to an equal credential.
/// </summary>
internal sealed class CredentialTarget(FuzzMaterial m) : FuzzTarget
{
    public override string Name => "credentials";

    public override int MaxInputLength => 2_048;

    public override IEnumerable<byte[]> Seeds()
    {
        yield return Encoding.UTF8.GetBytes(m.Peers.Credential.ToJson());
        yield return Encoding.UTF8.GetBytes(m.OtherCredential.ToJson());
        var now = m.Clock.GetUtcNow();
        yield return Encoding.UTF8.GetBytes(GatewayCredential.Issue(m.Peers.Cluster, new string('\u00e9', 127), m.Other.PublicKey, now, now).ToJson());
        yield return Encoding.UTF8.GetBytes(GatewayCredential.Issue(m.Peers.Cluster, "g", m.Other.PublicKey, DateTimeOffset.UnixEpoch, now.AddYears(100)).ToJson());
    }

    public override string Run(ReadOnlySpan<byte> input)
    {
        GatewayCredential credential;
        try
        {
            credential = GatewayCredential.FromJson(Encoding.UTF8.GetString(input));
        }
        catch (FormatException)
        {
            return "malformed";
        }
        var status = credential.Verify(m.Peers.Cluster.PublicKey, m.Clock.GetUtcNow());
        var canonical = credential.CanonicalBytes();
        var expected = 25 + 2 + Encoding.UTF8.GetByteCount(credential.GatewayId) + 32 + 16 + 32 + 64;
        if (canonical.Length != expected) throw new InvalidOperationException($"canonical bytes are {canonical.Length}, not {expected}");
        if (!GatewayCredential.FromJson(credential.ToJson()).Equals(credential)) throw new InvalidOperationException("a credential does not round-trip");
        _ = credential.ClusterFingerprint;
        return status.ToString();
    }

    public override long AllocationBound(int length) => 64 * 1024 + 64L * length;
}

/// <summary>
/// Link offers and accepts (PROTOCOL.md §8), as relayed by the directory from any registered gateway: parsed,
/// then handed to the acceptor and to an offerer waiting for its accept. Parsing returns null on bad input;
/// negotiation refuses with an error; neither throws.
/// </summary>
internal sealed class LinkNegotiationTarget(FuzzMaterial m) : FuzzTarget, IDisposable
{
    private readonly LinkOfferer _offerer = new(m.Peers.Gateway, m.Peers.Credential, m.Clock);
    private readonly LinkOfferNonces _nonces = new();

    public override string Name => "link-negotiation";

    public override int MaxInputLength => 2_048;

    public override IEnumerable<byte[]> Seeds()
    {
        using var other = new LinkOfferer(m.Other, m.OtherCredential, m.Clock);
        yield return other.Offer.ToBytes();
        var accepted = LinkAcceptor.Accept(m.Other, m.OtherCredential, _offerer.Offer, 5, 6, m.Clock).Value!;
        yield return accepted.Accept.ToBytes();
        accepted.Session.Dispose();
    }

    public override string Run(ReadOnlySpan<byte> input)
    {
        var offer = LinkOffer.TryParse(input);
        var accept = LinkAccept.TryParse(input);
        var outcome = "none";
        if (offer is not null)
        {
            var step = LinkAcceptor.Accept(m.Peers.Gateway, m.Peers.Credential, offer, 11, 12, m.Clock, _nonces);
            step.Value?.Session.Dispose();
            outcome = "offer:" + (step.Succeeded ? "accepted" : step.Failure!.Code);
        }
        if (accept is not null)
        {
            var step = _offerer.OnAccept(accept);
            step.Value?.Dispose();
            outcome += "/accept:" + (step.Succeeded ? "linked" : step.Failure!.Code);
        }
        return outcome;
    }

    public override long AllocationBound(int length) => 128 * 1024 + 128L * length;

    public void Dispose() => _offerer.Dispose();
}
