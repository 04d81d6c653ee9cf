//! Tests of SAS formatting and parsing, including the official vectors.
use super::*;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

// Official vectors from the Embedded C SDK's unit tests (github.com/Azure/azure-sdk-for-c,
// `sdk/tests/iot/provisioning/test_az_iot_provisioning_client_sas.c` for the DPS ones and
// `sdk/tests/iot/hub/test_az_iot_hub_client_sas.c` for the hub ones). The signature is an opaque
// test string from those tests, not a real HMAC.
const TEST_SIG: &str = "cS1eHM/lDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ";
const EXPIRY: u64 = 1_578_941_692;

fn dps() -> SasResource {
    SasResource::dps("0neFEEDC0DE", "myRegistrationId")
}

#[test]
fn vector_4_2_embedded_c_dps() {
    let style = SasStyle::embedded_c();
    assert_eq!(
        string_to_sign(&dps(), &style, EXPIRY).to_string(),
        "0neFEEDC0DE%2fregistrations%2fmyRegistrationId\n1578941692"
    );
    assert_eq!(
        format_token(&dps(), &style, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=0neFEEDC0DE%2fregistrations%2fmyRegistrationId\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692"
    );
    let named = style.with_key_name("iothubowner");
    assert_eq!(
        format_token(&dps(), &named, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=0neFEEDC0DE%2fregistrations%2fmyRegistrationId\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692&skn=iothubowner"
    );
}

#[test]
fn documented_dps_form_is_the_default() {
    let style = SasStyle::for_resource(&dps());
    assert_eq!(style, SasStyle::documented_dps());
    assert_eq!(
        string_to_sign(&dps(), &style, EXPIRY).to_string(),
        "0neFEEDC0DE%2Fregistrations%2FmyRegistrationId\n1578941692"
    );
    assert_eq!(
        format_token(&dps(), &style, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=0neFEEDC0DE%2Fregistrations%2FmyRegistrationId\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692&skn=registration"
    );
}

#[test]
fn vector_4_7_hub_device_and_module() {
    let device = SasResource::hub_device("myiothub.azure-devices.net", "my_device");
    let module = SasResource::hub_module("myiothub.azure-devices.net", "my_device", "my_module");
    let style = SasStyle::for_resource(&device);
    assert_eq!(style, SasStyle::hub());
    assert_eq!(
        string_to_sign(&device, &style, EXPIRY).to_string(),
        "myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692"
    );
    assert_eq!(
        string_to_sign(&module, &style, EXPIRY).to_string(),
        "myiothub.azure-devices.net%2Fdevices%2Fmy_device%2Fmodules%2Fmy_module\n1578941692"
    );
    assert_eq!(
        format_token(&device, &style, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692"
    );
    assert_eq!(
        format_token(&module, &style, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device%2Fmodules%2Fmy_module\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692"
    );
    let named = SasStyle::hub().with_key_name("iothubowner");
    assert_eq!(
        format_token(&device, &named, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692&skn=iothubowner"
    );
    assert_eq!(
        format_token(&module, &named, TEST_SIG, EXPIRY).expose(),
        "SharedAccessSignature sr=myiothub.azure-devices.net%2Fdevices%2Fmy_device%2Fmodules%2Fmy_module\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&se=1578941692&skn=iothubowner"
    );
    // Embedded C writes hub separators in upper case: its hub form is `hub()`.
    assert_eq!(
        module.encoded(ResourceEncoding::Upper).to_string(),
        "myiothub.azure-devices.net%2Fdevices%2Fmy_device%2Fmodules%2Fmy_module"
    );
}

#[test]
fn other_sdk_forms() {
    let node = format_token(&dps(), &SasStyle::node_dps(), TEST_SIG, EXPIRY);
    assert_eq!(
        node.expose(),
        "SharedAccessSignature sr=0neFEEDC0DE/registrations/myRegistrationId\
         &sig=cS1eHM%2FlDjsRsrZV9508wOFrgmZk4g8FNg8NwHVSiSQ&skn=registration&se=1578941692"
    );
    assert_eq!(
        string_to_sign(&dps(), &SasStyle::node_dps(), EXPIRY).to_string(),
        "0neFEEDC0DE/registrations/myRegistrationId\n1578941692"
    );
    let python = format_token(&dps(), &SasStyle::python_dps(), TEST_SIG, EXPIRY);
    assert!(python.expose().ends_with("&se=1578941692"));
    // Lower-case hex everywhere vs Embedded C's lower-case separators only.
    let id = SasResource::dps("0ne00000A0A", "a:b");
    assert_eq!(
        id.encoded(ResourceEncoding::Lower).to_string(),
        "0ne00000A0A%2fregistrations%2fa%3ab"
    );
    assert_eq!(
        id.encoded(ResourceEncoding::LowerSeparators).to_string(),
        "0ne00000A0A%2fregistrations%2fa%3Ab"
    );
    assert_eq!(
        SasResource::custom("myhub.azure-devices.net")
            .encoded(ResourceEncoding::Upper)
            .to_string(),
        "myhub.azure-devices.net"
    );
    assert_eq!(
        SasResource::custom("a/b c")
            .encoded(ResourceEncoding::LowerSeparators)
            .to_string(),
        "a%2fb%20c"
    );
}

#[test]
fn display_is_the_unencoded_uri() {
    assert_eq!(
        dps().to_string(),
        "0neFEEDC0DE/registrations/myRegistrationId"
    );
    assert_eq!(
        SasResource::hub_module("h", "d", "m").to_string(),
        "h/devices/d/modules/m"
    );
    assert_eq!(SasResource::custom("x/y").to_string(), "x/y");
}

#[test]
fn token_debug_is_redacted() {
    let token = format_token(&dps(), &SasStyle::documented_dps(), TEST_SIG, EXPIRY);
    assert_eq!(format!("{token:?}"), "SasToken(<redacted>)");
    let parsed = token.parse().unwrap();
    let debug = format!("{parsed:?}");
    assert!(!debug.contains("cS1eHM"), "{debug}");
    assert_eq!(token.expiry_unix(), Some(EXPIRY));
    assert_eq!(SasToken::new("garbage".into()).expiry_unix(), None);
}

#[test]
fn parses_every_form() {
    for style in [
        SasStyle::documented_dps(),
        SasStyle::embedded_c(),
        SasStyle::embedded_c().with_key_name("iothubowner"),
        SasStyle::node_dps(),
        SasStyle::python_dps(),
    ] {
        let token = format_token(&dps(), &style, TEST_SIG, EXPIRY);
        let parsed = ParsedSas::parse(token.expose()).unwrap();
        assert_eq!(
            parsed.resource(),
            "0neFEEDC0DE/registrations/myRegistrationId"
        );
        assert_eq!(parsed.signature_base64(), TEST_SIG);
        assert_eq!(parsed.expiry(), EXPIRY);
        assert_eq!(parsed.key_name(), style.key_name());
        assert_eq!(
            parsed.signed_text(),
            string_to_sign(&dps(), &style, EXPIRY).to_string()
        );
    }
    let parsed = ParsedSas::parse(
        "SharedAccessSignature se=0012&skn=k&sig=abc%3D&sr=0ne%2fregistrations%2Fx",
    )
    .unwrap();
    assert_eq!(parsed.raw_resource(), "0ne%2fregistrations%2Fx");
    assert_eq!(parsed.resource(), "0ne/registrations/x");
    assert_eq!(parsed.signature_base64(), "abc=");
    assert_eq!(parsed.expiry(), 12);
    assert_eq!(parsed.key_name(), Some("k"));
    // The signed text keeps `se` as sent.
    assert_eq!(parsed.signed_text(), "0ne%2fregistrations%2Fx\n0012");
}

#[test]
fn parse_errors_are_typed() {
    use SasField::*;
    use SasParseError as E;
    let cases: &[(&str, SasParseError)] = &[
        ("sr=a&sig=b&se=1", E::MissingPrefix),
        ("sharedaccesssignature sr=a&sig=b&se=1", E::MissingPrefix),
        (
            "SharedAccessSignature sig=b&se=1",
            E::MissingField { field: Resource },
        ),
        (
            "SharedAccessSignature sr=a&se=1",
            E::MissingField { field: Signature },
        ),
        (
            "SharedAccessSignature sr=a&sig=b",
            E::MissingField { field: Expiry },
        ),
        (
            "SharedAccessSignature sr=&sig=b&se=1",
            E::EmptyField { field: Resource },
        ),
        (
            "SharedAccessSignature sr=a&sig&se=1",
            E::EmptyField { field: Signature },
        ),
        (
            "SharedAccessSignature sr=a&sig=b&se=1&sr=c",
            E::DuplicateField { field: Resource },
        ),
        (
            "SharedAccessSignature sr=a&skn=x&sig=b&se=1&skn=y",
            E::DuplicateField { field: KeyName },
        ),
        (
            "SharedAccessSignature sr=a&sig=b&se=1&foo=2",
            E::UnknownField { index: 3 },
        ),
        ("SharedAccessSignature sr=a&sig=b&se=+1", E::InvalidExpiry),
        ("SharedAccessSignature sr=a&sig=b&se=-1", E::InvalidExpiry),
        ("SharedAccessSignature sr=a&sig=b&se=1e3", E::InvalidExpiry),
        (
            "SharedAccessSignature sr=a&sig=b&se=18446744073709551616",
            E::InvalidExpiry,
        ),
        (
            "SharedAccessSignature sr=a%2&sig=b&se=1",
            E::InvalidEncoding {
                field: Resource,
                source: DecodeError::InvalidEscape { at: 1 },
            },
        ),
        (
            "SharedAccessSignature sr=a&sig=%FF&se=1",
            E::InvalidEncoding {
                field: Signature,
                source: DecodeError::InvalidUtf8,
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(ParsedSas::parse(text).unwrap_err(), *expected, "{text}");
    }
    assert_eq!(
        ParsedSas::parse("SharedAccessSignature sr=a&sig=b&se=18446744073709551615")
            .unwrap()
            .expiry(),
        u64::MAX
    );
}

#[test]
fn parse_error_messages_never_quote_the_token() {
    let secret = "c2VjcmV0LXNpZ25hdHVyZQ";
    for text in [
        format!("SharedAccessSignature sr=a&sig={secret}&se=x{secret}"),
        format!("SharedAccessSignature sr=a&sig={secret}&{secret}=1&se=1"),
        format!("SharedAccessSignature sr=a&sig={secret}%&se=1"),
        format!("{secret} sr=a&sig={secret}&se=1"),
    ] {
        let err = ParsedSas::parse(&text).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(secret));
    }
}

/// Any text.
const ANY_TEXT: &str = ".{0,40}";

/// Text that a raw (unencoded) resource can carry without breaking the token.
const RAW_SAFE_TEXT: &str = "[A-Za-z0-9:._/ $'()*!#?+é-]{0,40}";

fn resource_from(text: &'static str) -> impl proptest::strategy::Strategy<Value = SasResource> {
    use proptest::prelude::*;
    prop_oneof![
        (text, text).prop_map(|(s, r)| SasResource::dps(s, r)),
        (text, text).prop_map(|(h, d)| SasResource::hub_device(h, d)),
        (text, text, text).prop_map(|(h, d, m)| SasResource::hub_module(h, d, m)),
        text.prop_filter("sr must not be empty", |t| !t.is_empty())
            .prop_map(SasResource::custom),
    ]
}

fn style_with(
    encodings: Vec<ResourceEncoding>,
) -> impl proptest::strategy::Strategy<Value = SasStyle> {
    use proptest::prelude::*;
    (
        proptest::sample::select(encodings),
        any::<bool>(),
        proptest::option::of(".{0,20}"),
    )
        .prop_map(|(encoding, node_order, key_name)| {
            let order = if node_order {
                FieldOrder::SigSknSe
            } else {
                FieldOrder::SigSeSkn
            };
            let style = SasStyle::hub()
                .with_encoding(encoding)
                .with_field_order(order);
            match key_name {
                Some(name) => style.with_key_name(name),
                None => style,
            }
        })
}

fn check_round_trip(
    resource: &SasResource,
    style: &SasStyle,
    signature: &str,
    expiry: u64,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let token = format_token(resource, style, signature, expiry);
    let parsed = ParsedSas::parse(token.expose())
        .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}")))?;
    proptest::prop_assert_eq!(parsed.resource(), resource.to_string());
    proptest::prop_assert_eq!(parsed.signature_base64(), signature);
    proptest::prop_assert_eq!(parsed.expiry(), expiry);
    proptest::prop_assert_eq!(parsed.key_name(), style.key_name());
    proptest::prop_assert_eq!(
        parsed.signed_text(),
        string_to_sign(resource, style, expiry).to_string()
    );
    proptest::prop_assert_eq!(token.expiry_unix(), Some(expiry));
    Ok(())
}

proptest::proptest! {
    #[test]
    fn encoded_forms_round_trip(
        resource in resource_from(ANY_TEXT),
        style in style_with(alloc::vec![
            ResourceEncoding::Upper,
            ResourceEncoding::Lower,
            ResourceEncoding::LowerSeparators,
        ]),
        signature in ".{1,60}",
        expiry in proptest::prelude::any::<u64>(),
    ) {
        check_round_trip(&resource, &style, &signature, expiry)?;
    }

    #[test]
    fn raw_form_round_trips(
        resource in resource_from(RAW_SAFE_TEXT),
        style in style_with(alloc::vec![ResourceEncoding::Raw]),
        signature in "[A-Za-z0-9+/=]{1,60}",
        expiry in proptest::prelude::any::<u64>(),
    ) {
        check_round_trip(&resource, &style, &signature, expiry)?;
    }

    #[test]
    fn parser_never_panics(text in ".*") {
        let _ = ParsedSas::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_near_tokens(fields in "((sr|sig|se|skn|x)(=[a-zA-Z0-9%/+]{0,8})?&?){0,6}") {
        let text = format!("{TOKEN_PREFIX}{fields}");
        if let Ok(parsed) = ParsedSas::parse(&text) {
            let _ = parsed.signed_text();
        }
    }
}
