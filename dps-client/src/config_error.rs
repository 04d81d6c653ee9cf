//! Why a client's configuration cannot work: every problem found, typed, in one error.

use std::fmt;

/// One problem with a [`ProvisioningClient`](crate::ProvisioningClient)'s configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The custom payload could not be serialized, or its JSON text is not valid JSON.
    Payload {
        /// What the JSON parser or serializer said (never the payload itself).
        reason: String,
    },
    /// The registration id breaks DPS's rules (lower-case alphanumerics and `-._:`, at most
    /// 128 characters).
    RegistrationId {
        /// Which rule it breaks.
        reason: String,
    },
    /// The id scope is empty.
    EmptyIdScope,
    /// The endpoint is empty.
    EmptyEndpoint,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payload { reason } => write!(f, "the custom payload is not valid JSON: {reason}"),
            Self::RegistrationId { reason } => {
                write!(f, "the registration id is not valid: {reason}")
            }
            Self::EmptyIdScope => f.write_str("the id scope is empty"),
            Self::EmptyEndpoint => f.write_str("the endpoint is empty"),
        }
    }
}

/// Every problem found in a [`ProvisioningClient`](crate::ProvisioningClient)'s configuration,
/// in one error (`Display` joins their sentences).
pub type ConfigError = dps_runtime::Problems<ConfigProblem>;
