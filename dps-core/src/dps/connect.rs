//! The MQTT CONNECT fields for DPS: client id, username and the SAS resource.

use alloc::string::String;
use core::fmt;

use crate::encoding::PercentEncoded;

/// The global device endpoint every DPS instance is reachable through.
pub const GLOBAL_ENDPOINT: &str = "global.azure-devices-provisioning.net";

/// The api-version the documentation and most SDKs send, and our default.
pub const DEFAULT_API_VERSION: &str = "2019-03-31";

/// The first api-version that accepts a `csr` in the registration request (certificate
/// issuance); older versions reject it.
pub const CSR_API_VERSION: &str = "2025-07-01-preview";

/// How a user-agent value is written into the username.
#[derive(Clone, PartialEq, Eq)]
enum UserAgent {
    /// Percent-encoded when written (what the C, Python, C# and Node SDKs do).
    Encode(String),
    /// Written as given (what the Embedded C SDK does with its pre-encoded agent string).
    Verbatim(String),
}

/// Connection identity for one DPS registration: everything CONNECT needs except the password.
///
/// ```
/// use dps_core::dps::DpsConnectInfo;
/// let info = DpsConnectInfo::new("0neFEEDC0DE", "myRegistrationId");
/// assert_eq!(info.client_id(), "myRegistrationId");
/// assert_eq!(
///     info.username().to_string(),
///     "0neFEEDC0DE/registrations/myRegistrationId/api-version=2019-03-31"
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DpsConnectInfo {
    id_scope: String,
    registration_id: String,
    api_version: String,
    client_version: Option<UserAgent>,
}

impl DpsConnectInfo {
    /// Identity for `registration_id` in the DPS instance `id_scope`, with the default api-version
    /// and no `ClientVersion`.
    #[must_use]
    pub fn new(id_scope: impl Into<String>, registration_id: impl Into<String>) -> Self {
        Self {
            id_scope: id_scope.into(),
            registration_id: registration_id.into(),
            api_version: String::from(DEFAULT_API_VERSION),
            client_version: None,
        }
    }

    /// Overrides the api-version (for example [`CSR_API_VERSION`] to request a certificate).
    #[must_use]
    pub fn api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = api_version.into();
        self
    }

    /// Adds `&ClientVersion={user_agent}` to the username, percent-encoded.
    #[must_use]
    pub fn client_version(mut self, user_agent: impl Into<String>) -> Self {
        self.client_version = Some(UserAgent::Encode(user_agent.into()));
        self
    }

    /// Adds `&ClientVersion={user_agent}` written exactly as given, for byte-exact compatibility
    /// with the Embedded C SDK. The caller is responsible for the value being URL-safe.
    #[must_use]
    pub fn client_version_verbatim(mut self, user_agent: impl Into<String>) -> Self {
        self.client_version = Some(UserAgent::Verbatim(user_agent.into()));
        self
    }

    /// The DPS id scope.
    #[must_use]
    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    /// The registration id, also the MQTT client id.
    #[must_use]
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    /// The api-version the username announces.
    #[must_use]
    pub fn api_version_str(&self) -> &str {
        &self.api_version
    }

    /// The MQTT client id: the registration id.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.registration_id
    }

    /// The MQTT username: `{idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion=..]`.
    ///
    /// Unlike the IoT Hub username there is no `?` before `api-version`.
    #[must_use]
    pub fn username(&self) -> DpsUsername<'_> {
        DpsUsername { info: self }
    }
}

impl fmt::Debug for DpsConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpsConnectInfo")
            .field("id_scope", &self.id_scope)
            .field("registration_id", &self.registration_id)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// The DPS MQTT username, written on demand; see [`DpsConnectInfo::username`].
#[derive(Debug, Clone, Copy)]
pub struct DpsUsername<'a> {
    info: &'a DpsConnectInfo,
}

impl fmt::Display for DpsUsername<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info;
        write!(
            f,
            "{}/registrations/{}/api-version={}",
            info.id_scope, info.registration_id, info.api_version
        )?;
        match &info.client_version {
            Some(UserAgent::Encode(ua)) => write!(f, "&ClientVersion={}", PercentEncoded::new(ua)),
            Some(UserAgent::Verbatim(ua)) => write!(f, "&ClientVersion={ua}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn client_version_is_encoded_by_default() {
        let info = DpsConnectInfo::new("scope", "dev").client_version("rust/0.1 (linux)");
        assert_eq!(
            info.username().to_string(),
            "scope/registrations/dev/api-version=2019-03-31&ClientVersion=rust%2F0.1%20%28linux%29"
        );
    }

    #[test]
    fn api_version_override() {
        let info = DpsConnectInfo::new("s", "d").api_version(CSR_API_VERSION);
        assert_eq!(
            info.username().to_string(),
            "s/registrations/d/api-version=2025-07-01-preview"
        );
    }
}
