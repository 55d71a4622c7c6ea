namespace Wzp.Protocol;

/// <summary>A client's established hop to a gateway: its keys, what it verified, and its rekey responder.</summary>
public sealed class ClientSession : IDisposable
{
    internal ClientSession(GatewayCredential credential, byte[] transcriptHash, byte[] chain0, string sas, Confirm confirm, TimeProvider time)
    {
        Credential = credential;
        TranscriptHash = transcriptHash;
        Sas = sas;
        Confirm = confirm;
        Keys = new HopKeySchedule(HopRole.Client, chain0, time);
        Rekeys = new RekeyResponder(credential.GatewayKey, transcriptHash, Keys);
    }

    /// <summary>The gateway's verified credential; its cluster key is what trust-on-first-use records.</summary>
    public GatewayCredential Credential { get; }

    /// <summary>Six digits both ends can compare out of band.</summary>
    public string Sas { get; }

    /// <summary>The message that completes the handshake.</summary>
    public Confirm Confirm { get; }

    public HopKeySchedule Keys { get; }

    public RekeyResponder Rekeys { get; }

    internal byte[] TranscriptHash { get; }

    public void Dispose() => Keys.Dispose();
}

/// <summary>A gateway's established hop to one client.</summary>
public sealed class GatewaySession : IDisposable
{
    internal GatewaySession(Identity gateway, Hello hello, byte[] transcriptHash, byte[] chain0, string sas, TimeProvider time)
    {
        ClientIdentityKey = hello.IdentityKey;
        ClientFingerprint = Fingerprint.Of(hello.IdentityKey);
        Room = hello.Room;
        Alias = hello.Alias;
        Sas = sas;
        TranscriptHash = transcriptHash;
        Keys = new HopKeySchedule(HopRole.Gateway, chain0, time);
        Rekeys = new RekeyInitiator(gateway, transcriptHash, Keys);
    }

    public byte[] ClientIdentityKey { get; }

    public Fingerprint ClientFingerprint { get; }

    public string Room { get; }

    public string Alias { get; }

    public string Sas { get; }

    public HopKeySchedule Keys { get; }

    public RekeyInitiator Rekeys { get; }

    internal byte[] TranscriptHash { get; }

    public void Dispose()
    {
        Rekeys.Dispose();
        Keys.Dispose();
    }
}
