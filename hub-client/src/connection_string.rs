//! Device and module connection strings.

use std::fmt;

use dps_auth::{SymmetricKey, Zeroizing};

use crate::error::HubError;

/// A parsed device (or module) connection string:
/// `HostName=..;DeviceId=..;SharedAccessKey=..[;ModuleId=..][;GatewayHostName=..]`.
///
/// Keys are matched case-insensitively; values are taken verbatim (a base64 key keeps its `=`
/// padding). `Debug` never shows the key.
///
/// ```
/// use hub_client::ConnectionString;
///
/// let cs: ConnectionString =
///     "HostName=myhub.azure-devices.net;DeviceId=dev-1;SharedAccessKey=a2V5MQ==".parse()?;
/// assert_eq!(cs.host_name(), "myhub.azure-devices.net");
/// assert_eq!(cs.device_id(), "dev-1");
/// assert_eq!(cs.module_id(), None);
/// assert!(!format!("{cs:?}").contains("a2V5"));
/// # Ok::<(), hub_client::HubError>(())
/// ```
#[derive(Clone)]
pub struct ConnectionString {
    host_name: String,
    device_id: String,
    module_id: Option<String>,
    gateway_host_name: Option<String>,
    key: SymmetricKey,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("host_name", &self.host_name)
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("gateway_host_name", &self.gateway_host_name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ConnectionString {
    /// The hub host name (`HostName`): in the MQTT user name and the SAS resource.
    #[must_use]
    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The module id, for a module connection string.
    #[must_use]
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// The gateway (`GatewayHostName`, an IoT Edge hub) to connect to instead of the hub.
    #[must_use]
    pub fn gateway_host_name(&self) -> Option<&str> {
        self.gateway_host_name.as_deref()
    }

    /// The device's (or module's) key.
    #[must_use]
    pub const fn key(&self) -> &SymmetricKey {
        &self.key
    }
}

impl std::str::FromStr for ConnectionString {
    type Err = HubError;

    fn from_str(text: &str) -> Result<Self, HubError> {
        let bad = |message: &str| HubError::ConnectionString(message.to_owned());
        let mut host_name = None;
        let mut device_id = None;
        let mut module_id = None;
        let mut gateway = None;
        let mut key: Option<Zeroizing<String>> = None;
        for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(bad("every part must be Name=Value"));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "hostname" => host_name = Some(value.to_owned()),
                "deviceid" => device_id = Some(value.to_owned()),
                "moduleid" => module_id = Some(value.to_owned()),
                "gatewayhostname" => gateway = Some(value.to_owned()),
                "sharedaccesskey" => key = Some(Zeroizing::new(value.to_owned())),
                "sharedaccesskeyname" => {
                    return Err(bad(
                        "SharedAccessKeyName marks a service (policy) connection string; use the device's own connection string",
                    ));
                }
                "sharedaccesssignature" => {
                    return Err(bad(
                        "SharedAccessSignature (a fixed token) is not supported: it cannot be renewed; use the device key",
                    ));
                }
                "x509" => {
                    return Err(bad(
                        "x509 connection strings carry no key: use HubClient::builder with an X509Identity",
                    ));
                }
                _ => {}
            }
        }
        let non_empty = |v: Option<String>, name: &str| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| HubError::ConnectionString(format!("{name} is missing")))
        };
        let host_name = non_empty(host_name, "HostName")?;
        let device_id = non_empty(device_id, "DeviceId")?;
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("SharedAccessKey is missing"))?;
        let key = SymmetricKey::from_base64(&key)
            .map_err(|e| HubError::ConnectionString(format!("SharedAccessKey: {e}")))?;
        Ok(Self {
            host_name,
            device_id,
            module_id: module_id.filter(|m| !m.is_empty()),
            gateway_host_name: gateway.filter(|g| !g.is_empty()),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        let cs: ConnectionString = "hostname=h.azure-devices.net; DeviceId=d;SharedAccessKey=a2V5MQ==;ModuleId=m;GatewayHostName=edge.local;".parse().unwrap();
        assert_eq!(cs.host_name(), "h.azure-devices.net");
        assert_eq!(cs.module_id(), Some("m"));
        assert_eq!(cs.gateway_host_name(), Some("edge.local"));
        assert_eq!(cs.key().to_base64().as_str(), "a2V5MQ==");
    }

    #[test]
    fn errors_never_quote_the_key() {
        for (text, needle) in [
            ("DeviceId=d;SharedAccessKey=c2VjcmV0", "HostName"),
            ("HostName=h;SharedAccessKey=c2VjcmV0", "DeviceId"),
            ("HostName=h;DeviceId=d", "SharedAccessKey"),
            ("HostName=h;DeviceId=d;SharedAccessKey=!!secret!!", "base64"),
            (
                "HostName=h;SharedAccessKeyName=owner;SharedAccessKey=c2VjcmV0",
                "service",
            ),
            ("HostName=h;DeviceId=d;x509=true", "X509Identity"),
            ("HostName=h;DeviceId", "Name=Value"),
        ] {
            let error = text.parse::<ConnectionString>().unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
            assert!(
                !error.contains("c2VjcmV0") && !error.contains("secret"),
                "{error}"
            );
        }
    }
}
