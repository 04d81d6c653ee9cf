//! Base64 as Azure uses it for keys and signatures: the standard alphabet, padding optional on
//! input and always written on output.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

/// Standard alphabet; writes padding, accepts input with or without it.
pub(crate) const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes secret base64 text into a buffer that is wiped on drop. Surrounding whitespace (a
/// trailing newline from a file or a pipe) is ignored. `None` when the text is not base64.
#[cfg(feature = "sas")]
pub(crate) fn decode_secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim();
    // Reserve the final size up front so decoding never reallocates (which would leave a copy of
    // the secret behind in freed memory).
    let mut out = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(text.len())));
    ENGINE.decode_vec(text, &mut out).ok()?;
    Some(out)
}

/// Encodes secret bytes into text that is wiped on drop.
pub(crate) fn encode_secret(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(3) * 4));
    ENGINE.encode_string(bytes, &mut out);
    out
}
