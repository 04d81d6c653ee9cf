//! `dps sas`: a SAS token in the documented form.

use dps_auth::{SasResource, SasStyle, SymmetricKey, generate_sas};

use super::{bad_key, print_line, secret_argument};
use crate::cli::SasArgs;
use crate::exit::CliError;

/// Prints the token.
pub(super) fn run(args: &SasArgs) -> Result<(), CliError> {
    if args.resource.is_empty() {
        return Err(CliError::invalid_input("--resource is empty"));
    }
    let key_text = secret_argument(&args.key, "--key")?;
    let key = SymmetricKey::from_base64(&key_text).map_err(|e| bad_key("--key", e))?;
    let resource = SasResource::custom(args.resource.as_str());
    // The documented form: upper-case encoding, order sr, sig, se, skn; skn only when asked.
    let style = match &args.key_name {
        Some(name) => SasStyle::hub().with_key_name(name.clone()),
        None => SasStyle::hub(),
    };
    let token = generate_sas(&key, &resource, &style, args.expiry)
        .map_err(|e| CliError::failure(format_args!("cannot sign the token: {e}")))?;
    print_line(token.expose())
}
