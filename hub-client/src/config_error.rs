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
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyHost => f.write_str("the hub host name is empty"),
            Self::DeviceId(e) => write!(f, "the device id is not valid: {e}"),
            Self::ModuleId(e) => write!(f, "the module id is not valid: {e}"),
        }
    }
}

/// Every problem found in a [`HubClientBuilder`](crate::HubClientBuilder)'s configuration, in
/// one error (`Display` joins their sentences).
pub type ConfigError = dps_runtime::Problems<ConfigProblem>;
