//! Minting and verifying SAS tokens in every SDK's form.
#![cfg(feature = "sas")]

use dps_auth::{
    FieldOrder, ResourceEncoding, SasResource, SasStyle, SasVerifyError, Signer, SymmetricKey,
    generate_sas, verify_sas,
};

const EXPIRY: u64 = 1_578_941_692;
/// The bytes 0, 1, …, 31.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn key() -> SymmetricKey {
    SymmetricKey::from_base64(KEY).unwrap()
}

fn dps() -> SasResource {
    SasResource::dps("0neFEEDC0DE", "myRegistrationId")
}

fn every_style() -> Vec<SasStyle> {
    vec![
        SasStyle::documented_dps(),
        SasStyle::hub(),
        SasStyle::embedded_c(),
        SasStyle::embedded_c().with_key_name("iothubowner"),
        SasStyle::python_dps(),
        SasStyle::node_dps(),
        SasStyle::hub().with_encoding(ResourceEncoding::Lower),
        SasStyle::documented_dps().with_field_order(FieldOrder::SigSknSe),
    ]
}

#[test]
fn known_answer_tokens() {
    // Computed independently once with Python's standard library:
    //   key = bytes(range(32)); sr = urllib.parse.quote(resource, safe='')
    //   sig = base64.b64encode(hmac.new(key, f"{sr}\n1578941692".encode(), hashlib.sha256).digest())
    //   token = f"SharedAccessSignature sr={sr}&sig={quote(sig, safe='')}&se=1578941692[&skn=registration]"
    let token = generate_sas(&key(), &dps(), &SasStyle::documented_dps(), EXPIRY).unwrap();
    assert_eq!(
        token.expose(),
        "SharedAccessSignature sr=0neFEEDC0DE%2Fregistrations%2FmyRegistrationId\
         &sig=Gti2tuTqhiuiedFGQi0xxKUP1qh%2Bw19p%2BRw4Rzv7naA%3D&se=1578941692&skn=registration"
    );
    let device = SasResource::hub_device("myiothub.azure-devices.net", "my_device");
    let token = generate_sas(&key(), &device, &SasStyle::hub(), EXPIRY).unwrap();
    assert_eq!(
        token.expose(),
        "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device\
         &sig=6BQpP0VpyZ0mTIlMbvjlP%2FxyeadWxB24Mp9J8uADz8w%3D&se=1578941692"
    );
}

#[test]
fn every_style_verifies() {
    let resources = [
        dps(),
        SasResource::dps("0ne00000A0A", "a:b.c_d-"),
        SasResource::hub_device("myiothub.azure-devices.net", "my_device"),
        SasResource::hub_module("myiothub.azure-devices.net", "my_device", "my_module"),
    ];
    for resource in &resources {
        for style in every_style() {
            let token = generate_sas(&key(), resource, &style, EXPIRY).unwrap();
            let verified = verify_sas(token.expose(), &key(), resource, EXPIRY - 10)
                .unwrap_or_else(|e| panic!("{resource} {style:?}: {e}"));
            assert_eq!(verified.resource, resource.to_string());
            assert_eq!(verified.expiry_unix, EXPIRY);
            assert_eq!(verified.key_name.as_deref(), style.key_name());
        }
    }
}

#[test]
fn node_style_raw_resource_signed_by_hand_verifies() {
    // Built without format_token: Node signs and sends the un-encoded URI.
    let raw = "0neFEEDC0DE/registrations/myRegistrationId";
    let sig = key().sign(format!("{raw}\n{EXPIRY}").as_bytes()).unwrap();
    let sig = base64_encode(&sig)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let token = format!("SharedAccessSignature sr={raw}&sig={sig}&skn=registration&se={EXPIRY}");
    let verified = verify_sas(&token, &key(), &dps(), EXPIRY).unwrap();
    assert_eq!(verified.key_name.as_deref(), Some("registration"));
}

#[test]
fn resource_is_compared_ignoring_case_and_signature_may_be_unpadded() {
    let upper = SasResource::dps("0NEFEEDC0DE", "MYREGISTRATIONID");
    let token = generate_sas(&key(), &upper, &SasStyle::documented_dps(), EXPIRY).unwrap();
    assert!(verify_sas(token.expose(), &key(), &dps(), EXPIRY).is_ok());

    let token = generate_sas(&key(), &dps(), &SasStyle::hub(), EXPIRY).unwrap();
    let unpadded = token.expose().replace("%3D", "");
    assert!(verify_sas(&unpadded, &key(), &dps(), EXPIRY).is_ok());
    // Lower-case escapes in the signature (the sr text is signed as sent, so it stays).
    let (head, sig_and_rest) = token.expose().split_once("&sig=").unwrap();
    assert!(sig_and_rest.contains("%2B"));
    let lower = sig_and_rest.replace("%2B", "%2b").replace("%3D", "%3d");
    let lower_escapes = format!("{head}&sig={lower}");
    assert!(verify_sas(&lower_escapes, &key(), &dps(), EXPIRY).is_ok());
}

#[test]
fn failures_are_distinct() {
    let token = generate_sas(&key(), &dps(), &SasStyle::documented_dps(), EXPIRY).unwrap();
    let other_key = SymmetricKey::from_base64("a2V5MQ==").unwrap();
    assert!(matches!(
        verify_sas(token.expose(), &other_key, &dps(), EXPIRY),
        Err(SasVerifyError::BadSignature)
    ));
    assert!(matches!(
        verify_sas(token.expose(), &key(), &dps(), EXPIRY + 1),
        Err(SasVerifyError::Expired { expiry_unix: EXPIRY, now_unix }) if now_unix == EXPIRY + 1
    ));
    let other = SasResource::dps("0neFEEDC0DE", "someoneElse");
    assert!(matches!(
        verify_sas(token.expose(), &key(), &other, EXPIRY),
        Err(SasVerifyError::ResourceMismatch { .. })
    ));
    assert!(matches!(
        verify_sas("SharedAccessSignature sr=x", &key(), &dps(), EXPIRY),
        Err(SasVerifyError::Malformed(_))
    ));
    // A token whose expiry was pushed forward after signing no longer verifies.
    let extended = token.expose().replace("se=1578941692", "se=1578941693");
    assert!(matches!(
        verify_sas(&extended, &key(), &dps(), EXPIRY),
        Err(SasVerifyError::BadSignature)
    ));
    // A signature that is not base64 at all.
    let garbage = token.expose().replace("sig=", "sig=%21%21");
    assert!(matches!(
        verify_sas(&garbage, &key(), &dps(), EXPIRY),
        Err(SasVerifyError::BadSignature)
    ));
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

proptest::proptest! {
    #[test]
    fn generated_tokens_verify(
        scope in "[A-Za-z0-9]{1,12}",
        id in "[A-Za-z0-9]([A-Za-z0-9:._-]{0,20}[A-Za-z0-9-])?",
        expiry in 0u64..u64::MAX,
        key_bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..80),
        style_index in 0usize..8,
    ) {
        let key = SymmetricKey::from_bytes(&key_bytes).unwrap();
        let resource = SasResource::dps(scope, id);
        let style = every_style().swap_remove(style_index);
        let token = generate_sas(&key, &resource, &style, expiry).unwrap();
        proptest::prop_assert!(verify_sas(token.expose(), &key, &resource, expiry).is_ok());
    }

    #[test]
    fn verify_never_panics(text in ".*") {
        let _ = verify_sas(&text, &key(), &dps(), 0);
    }
}
