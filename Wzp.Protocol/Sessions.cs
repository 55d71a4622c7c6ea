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
    internal GatewaySession(Identity gateway, Hello hello, byte[] transcriptHash, byte[] chain0, string sas, TimeProvider time,
        Grants.Grant? grant = null)
    {
        ClientIdentityKey = hello.IdentityKey;
        ClientFingerprint = Fingerprint.Of(hello.IdentityKey);
        Room = hello.Room;
        // The grant's name wins over whatever alias the client asked for: the issuer decides what others see.
        Alias = grant?.Name ?? hello.Alias;
        Grant = grant;
        Sas = sas;
        TranscriptHash = transcriptHash;
        Keys = new HopKeySchedule(HopRole.Gateway, chain0, time);
        Rekeys = new RekeyInitiator(gateway, transcriptHash, Keys);
    }

    public byte[] ClientIdentityKey { get; }

    public Fingerprint ClientFingerprint { get; }

    public string Room { get; }

    /// <summary>The member's alias: the grant's <c>name</c> when it has one, else the hello's.</summary>
    public string Alias { get; }

    /// <summary>The grant the member joined with; null when the gateway requires none (every permission).</summary>
    public Grants.Grant? Grant { get; }

    /// <summary>False for a listen-only member (a grant without <c>publish</c>): its uplink media is dropped.</summary>
    public bool SendsMedia => Grant?.Publish ?? true;

    /// <summary>False for a member whose grant lacks <c>subscribe</c>: nothing is forwarded to it.</summary>
    public bool ReceivesMedia => Grant?.Subscribe ?? true;

    /// <summary>True only with a grant that has <c>admin</c>: without grants nobody administers a room.</summary>
    public bool IsAdmin => Grant?.Admin ?? false;

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
