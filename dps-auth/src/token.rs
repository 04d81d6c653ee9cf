//! Minting SAS tokens with any [`Signer`].

use dps_core::sas::{SasResource, SasStyle, SasToken, format_token, string_to_sign};

use crate::b64;
use crate::error::SignError;
use crate::signer::Signer;

/// Mints the SAS token for `resource`, valid until `expiry_unix` (seconds since the Unix
/// epoch), in the given style.
///
/// The signer signs `string_to_sign(resource, style, expiry)`; the token is written by
/// [`format_token`]. Use [`SasStyle::for_resource`] for the documented form.
///
/// # Errors
/// The signer's [`SignError`].
pub fn generate_sas<S: Signer + ?Sized>(
    signer: &S,
    resource: &SasResource,
    style: &SasStyle,
    expiry_unix: u64,
) -> Result<SasToken, SignError> {
    let to_sign = string_to_sign(resource, style, expiry_unix).to_string();
    let signature = b64::encode_secret(&signer.sign(to_sign.as_bytes())?);
    tracing::debug!(%resource, expiry_unix, key_name = style.key_name(), "minted SAS token");
    Ok(format_token(resource, style, &signature, expiry_unix))
}
