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

/// Every problem found in a hub client's configuration.
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
