//! `dps derive-key`: a device's key from its enrollment group's key.

use dps_auth::GroupKey;

use super::{bad_key, print_line, secret_argument};
use crate::cli::DeriveKeyArgs;
use crate::exit::CliError;

/// Prints the derived key.
pub(super) fn run(args: &DeriveKeyArgs) -> Result<(), CliError> {
    let group_key = secret_argument(&args.group_key, "--group-key")?;
    let group = GroupKey::from_base64(&group_key).map_err(|e| bad_key("--group-key", e))?;
    let key = group
        .derive(&args.registration_id)
        .map_err(|e| CliError::invalid_input(format_args!("--registration-id: {e}")))?;
    print_line(&key.to_base64())
}
