//! Why a hub client's configuration cannot work: every problem found, typed, in one error.

use std::fmt;

use dps_core::ids::IdError;

/// One problem with a [`HubClientBuilder`](crate::HubClientBuilder)'s configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The hub host name is empty.
    EmptyHost,
    /// The device id breaks the hub's rules.
    DeviceId(IdError),
    /// The module id breaks the hub's rules.
    ModuleId(IdError),
    /// The DPS id scope is empty (a device client).
    EmptyIdScope,
    /// The registration id breaks DPS's rules (a device client).
    RegistrationId(IdError),
    /// No credential was given (a device client).
    NoCredential,
    /// More credentials than a device client can order (255).
    TooManyCredentials {
        /// How many were given.
        count: usize,
    },
    /// The DPS payload is not JSON text (a device client).
    Payload,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyHost => f.write_str("the hub host name is empty"),
            Self::DeviceId(e) => write!(f, "the device id is not valid: {e}"),
            Self::ModuleId(e) => write!(f, "the module id is not valid: {e}"),
            Self::EmptyIdScope => f.write_str("the DPS id scope is empty"),
            Self::RegistrationId(e) => write!(f, "the registration id is not valid: {e}"),
            Self::NoCredential => f.write_str("no credential was given"),
            Self::TooManyCredentials { count } => {
                write!(
                    f,
                    "{count} credentials were given; at most 255 can be ordered"
                )
            }
            Self::Payload => f.write_str("the DPS payload is not JSON text"),
        }
    }
}

/// Every problem found in a [`HubClientBuilder`](crate::HubClientBuilder)'s configuration, in
/// one error (`Display` joins their sentences).
pub type ConfigError = dps_runtime::Problems<ConfigProblem>;
