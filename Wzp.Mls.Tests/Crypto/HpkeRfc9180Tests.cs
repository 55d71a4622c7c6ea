using Wzp.Mls.Crypto;
using static Wzp.Mls.Tests.Support.Vectors;

namespace Wzp.Mls.Tests.Crypto;

/// <summary>
/// RFC 9180 Appendix A known answers for the two HPKE suites MLS suites 1 and 3 use: A.1.1 (DHKEM(X25519,
/// HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode) and A.2.1 (same with ChaCha20Poly1305). Values are copied
/// from the RFC's text.
/// </summary>
public sealed class HpkeRfc9180Tests
{
    private const string Info = "4f6465206f6e2061204772656369616e2055726e";
    private const string Plaintext = "4265617574792069732074727574682c20747275746820626561757479";

    public sealed record Encryption(ulong Sequence, string Aad, string Nonce, string Ciphertext);

    public sealed record Rfc9180Case(
        string Section, AeadId Aead, string IkmE, string PkEm, string SkEm, string IkmR, string PkRm, string SkRm,
        string SharedSecret, string Key, string BaseNonce, string ExporterSecret,
        Encryption[] Encryptions, (string Context, string Value)[] Exports)
    {
        public override string ToString() => Section;
    }

    // A.1.1. DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, Base Setup Information.
    private static readonly Rfc9180Case A11 = new(
        "A.1.1", AeadId.Aes128Gcm,
        IkmE: "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
        PkEm: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        SkEm: "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
        IkmR: "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
        PkRm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
        SkRm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
        SharedSecret: "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
        Key: "4531685d41d65f03dc48f6b8302c05b0",
        BaseNonce: "56d890e5accaaf011cff4b7d",
        ExporterSecret: "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
        Encryptions:
        [
            new(0, "436f756e742d30", "56d890e5accaaf011cff4b7d", "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"),
            new(1, "436f756e742d31", "56d890e5accaaf011cff4b7c", "af2d7e9ac9ae7e270f46ba1f975be53c09f8d875bdc8535458c2494e8a6eab251c03d0c22a56b8ca42c2063b84"),
            new(2, "436f756e742d32", "56d890e5accaaf011cff4b7f", "498dfcabd92e8acedc281e85af1cb4e3e31c7dc394a1ca20e173cb72516491588d96a19ad4a683518973dcc180"),
            new(4, "436f756e742d34", "56d890e5accaaf011cff4b79", "583bd32bc67a5994bb8ceaca813d369bca7b2a42408cddef5e22f880b631215a09fc0012bc69fccaa251c0246d"),
            new(255, "436f756e742d323535", "56d890e5accaaf011cff4b82", "7175db9717964058640a3a11fb9007941a5d1757fda1a6935c805c21af32505bf106deefec4a49ac38d71c9e0a"),
            new(256, "436f756e742d323536", "56d890e5accaaf011cff4a7d", "957f9800542b0b8891badb026d79cc54597cb2d225b54c00c5238c25d05c30e3fbeda97d2e0e1aba483a2df9f2"),
        ],
        Exports:
        [
            ("", "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee"),
            ("00", "2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5"),
            ("54657374436f6e74657874", "e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931"),
        ]);

    // A.2.1. DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, Base Setup Information.
    private static readonly Rfc9180Case A21 = new(
        "A.2.1", AeadId.ChaCha20Poly1305,
        IkmE: "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b",
        PkEm: "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a",
        SkEm: "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600",
        IkmR: "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df",
        PkRm: "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
        SkRm: "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        SharedSecret: "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7",
        Key: "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91",
        BaseNonce: "5c4d98150661b848853b547f",
        ExporterSecret: "a3b010d4994890e2c6968a36f64470d3c824c8f5029942feb11e7a74b2921922",
        Encryptions:
        [
            new(0, "436f756e742d30", "5c4d98150661b848853b547f", "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"),
            new(1, "436f756e742d31", "5c4d98150661b848853b547e", "6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c"),
            new(2, "436f756e742d32", "5c4d98150661b848853b547d", "71146bd6795ccc9c49ce25dda112a48f202ad220559502cef1f34271e0cb4b02b4f10ecac6f48c32f878fae86b"),
            new(4, "436f756e742d34", "5c4d98150661b848853b547b", "63357a2aa291f5a4e5f27db6baa2af8cf77427c7c1a909e0b37214dd47db122bb153495ff0b02e9e54a50dbe16"),
            new(255, "436f756e742d323535", "5c4d98150661b848853b5480", "18ab939d63ddec9f6ac2b60d61d36a7375d2070c9b683861110757062c52b8880a5f6b3936da9cd6c23ef2a95c"),
            new(256, "436f756e742d323536", "5c4d98150661b848853b557f", "7a4a13e9ef23978e2c520fd4d2e757514ae160cd0cd05e556ef692370ca53076214c0c40d4c728d6ed9e727a5b"),
        ],
        Exports:
        [
            ("", "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e"),
            ("00", "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69"),
            ("54657374436f6e74657874", "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53"),
        ]);

    public static TheoryData<Rfc9180Case> Cases => [A11, A21];

    private static Hpke HpkeFor(AeadId aead)
        => aead == AeadId.Aes128Gcm ? CipherSuite.X25519Aes128GcmSha256Ed25519.Hpke : CipherSuite.X25519ChaCha20Poly1305Sha256Ed25519.Hpke;

    [Theory]
    [MemberData(nameof(Cases))]
    public void DeriveKeyPair_FromIkm_MatchesRfc(Rfc9180Case v)
    {
        var hpke = HpkeFor(v.Aead);
        var (skE, pkE) = hpke.DeriveKeyPair(Hex(v.IkmE));
        Equal(Hex(v.SkEm), skE, "skEm");
        Equal(Hex(v.PkEm), pkE, "pkEm");
        var (skR, pkR) = hpke.DeriveKeyPair(Hex(v.IkmR));
        Equal(Hex(v.SkRm), skR, "skRm");
        Equal(Hex(v.PkRm), pkR, "pkRm");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EncapDecap_SharedSecretAndKeySchedule_MatchRfc(Rfc9180Case v)
    {
        var hpke = HpkeFor(v.Aead);
        var sharedSecret = hpke.Encap(Hex(v.SkEm), Hex(v.PkRm), out var enc);
        Equal(Hex(v.PkEm), enc, "enc");
        Equal(Hex(v.SharedSecret), sharedSecret, "shared_secret (sender)");
        Assert.True(hpke.TryDecap(enc, Hex(v.SkRm), out var decapped));
        Equal(Hex(v.SharedSecret), decapped, "shared_secret (recipient)");

        using var context = hpke.SetupBaseSender(Hex(v.PkRm), Hex(Info), Hex(v.IkmE), out var enc2);
        Equal(Hex(v.PkEm), enc2, "enc from SetupBaseS");
        Equal(Hex(v.Key), context.Key, "key");
        Equal(Hex(v.BaseNonce), context.BaseNonce, "base_nonce");
        Equal(Hex(v.ExporterSecret), context.ExporterSecret, "exporter_secret");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SealAndOpen_AtEachRfcSequenceNumber_MatchRfcCiphertexts(Rfc9180Case v)
    {
        var hpke = HpkeFor(v.Aead);
        using var sender = hpke.SetupBaseSender(Hex(v.PkRm), Hex(Info), Hex(v.IkmE), out var enc);
        Assert.True(hpke.TrySetupBaseRecipient(enc, Hex(v.SkRm), Hex(Info), out var recipient));
        using (recipient)
        {
            foreach (var e in v.Encryptions)
            {
                sender.Sequence = e.Sequence;
                Equal(Hex(e.Ciphertext), sender.Seal(Hex(e.Aad), Hex(Plaintext)), $"ct at seq {e.Sequence}");
                recipient.Sequence = e.Sequence;
                Assert.True(recipient.TryOpen(Hex(e.Aad), Hex(e.Ciphertext), out var plaintext), $"open at seq {e.Sequence}");
                Equal(Hex(Plaintext), plaintext, $"pt at seq {e.Sequence}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Export_BothSides_MatchRfcExportedValues(Rfc9180Case v)
    {
        var hpke = HpkeFor(v.Aead);
        using var sender = hpke.SetupBaseSender(Hex(v.PkRm), Hex(Info), Hex(v.IkmE), out var enc);
        Assert.True(hpke.TrySetupBaseRecipient(enc, Hex(v.SkRm), Hex(Info), out var recipient));
        using (recipient)
        {
            foreach (var (context, value) in v.Exports)
            {
                Equal(Hex(value), sender.Export(Hex(context), 32), $"sender export '{context}'");
                Equal(Hex(value), recipient.Export(Hex(context), 32), $"recipient export '{context}'");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Open_TamperedCiphertext_ReturnsFalse(Rfc9180Case v)
    {
        var hpke = HpkeFor(v.Aead);
        var ciphertext = Hex(v.Encryptions[0].Ciphertext);
        ciphertext[3] ^= 1;
        Assert.False(hpke.TryOpenBase(Hex(v.PkEm), Hex(v.SkRm), Hex(Info), Hex(v.Encryptions[0].Aad), ciphertext, out _));
        Assert.True(hpke.TryOpenBase(Hex(v.PkEm), Hex(v.SkRm), Hex(Info), Hex(v.Encryptions[0].Aad), Hex(v.Encryptions[0].Ciphertext), out _));
    }
}
