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

/// Every problem found in a client's configuration, in the order the builder met them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// An error with these problems; `None` when there is none.
    pub(crate) fn from_problems(problems: Vec<ConfigProblem>) -> Option<Self> {
        (!problems.is_empty()).then_some(Self { problems })
    }

    /// The problems, at least one.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
