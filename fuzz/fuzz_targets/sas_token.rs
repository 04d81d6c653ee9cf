//! SAS token parsing: any text, no panic; a parsed token's signed text is well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    if let Ok(parsed) = dps_core::sas::ParsedSas::parse(token) {
        let signed = parsed.signed_text();
        assert!(signed.ends_with(&parsed.expiry().to_string()));
        let _ = parsed.key_name();
    }
});
