//! The MQTT CONNECT fields for IoT Hub: client id and user name.
//!
//! The password is a SAS token (see [`crate::sas`]) or empty for X.509 authentication; it is not
//! built here.

use core::fmt;

use crate::encoding::PercentEncoded;

/// The api-version a device sends when it does not choose one: the version the IoT Hub MQTT
/// documentation uses and the Node SDK sends.
///
/// The Embedded C and C SDKs send `2020-09-30`; the certificate renewal preview needs
/// [`CREDENTIALS_API_VERSION`](super::credentials::CREDENTIALS_API_VERSION).
pub const DEFAULT_API_VERSION: &str = "2021-04-12";

/// How the `DeviceClientType` value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType<'a> {
    Encode(&'a str),
    Verbatim(&'a str),
}

/// The identity and options a device presents when it connects to IoT Hub.
///
/// Build it once per connection with the assigned hub host and device (or module) id, then write
/// [`client_id`](Self::client_id) and [`username`](Self::username) into the CONNECT packet. Both
/// are [`Display`](fmt::Display) values, so they can be written into any buffer or turned into a
/// `String` with `to_string()`.
///
/// The host, device id and module id are written verbatim, as the service and every official
/// SDK expect; the model id is always percent-encoded.
///
/// ```
/// use dps_core::hub::HubConnectInfo;
///
/// let info = HubConnectInfo::new("myhub.azure-devices.net", "my_device")
///     .model_id("dtmi:com:example:Thermostat;1");
/// assert_eq!(info.client_id().to_string(), "my_device");
/// assert_eq!(
///     info.username().to_string(),
///     "myhub.azure-devices.net/my_device/?api-version=2021-04-12\
///      &model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
/// );
///
/// let module = HubConnectInfo::new("myhub.azure-devices.net", "my_device")
///     .module("filter")
///     .device_client_type("my-app/1.0");
/// assert_eq!(module.client_id().to_string(), "my_device/filter");
/// assert_eq!(
///     module.username().to_string(),
///     "myhub.azure-devices.net/my_device/filter/?api-version=2021-04-12\
///      &DeviceClientType=my-app%2F1.0"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConnectInfo<'a> {
    host: &'a str,
    device_id: &'a str,
    module_id: Option<&'a str>,
    api_version: &'a str,
    client_type: Option<ClientType<'a>>,
    model_id: Option<&'a str>,
}

impl<'a> HubConnectInfo<'a> {
    /// Connect information for a device identity on the hub `host` (for example the hub that DPS
    /// assigned), using [`DEFAULT_API_VERSION`].
    #[must_use]
    pub const fn new(host: &'a str, device_id: &'a str) -> Self {
        Self {
            host,
            device_id,
            module_id: None,
            api_version: DEFAULT_API_VERSION,
            client_type: None,
            model_id: None,
        }
    }

    /// Connects as the module `module_id` of the device instead of as the device itself.
    #[must_use]
    pub const fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }

    /// Overrides the api-version, for example `2020-09-30` to match the C SDKs or
    /// `2025-08-01-preview` for certificate renewal.
    #[must_use]
    pub const fn api_version(mut self, api_version: &'a str) -> Self {
        self.api_version = api_version;
        self
    }

    /// Sends `DeviceClientType` (the user agent the hub records), percent-encoded: `my-app/1.0`
    /// becomes `my-app%2F1.0`.
    #[must_use]
    pub const fn device_client_type(mut self, client_type: &'a str) -> Self {
        self.client_type = Some(ClientType::Encode(client_type));
        self
    }

    /// Sends `DeviceClientType` exactly as given, for a value that is already percent-encoded
    /// (the Embedded C SDK's `azsdk-c%2F1.6.0-beta.1`), so the user name can match another
    /// SDK's byte for byte.
    #[must_use]
    pub const fn device_client_type_preencoded(mut self, client_type: &'a str) -> Self {
        self.client_type = Some(ClientType::Verbatim(client_type));
        self
    }

    /// Announces an IoT Plug and Play model id (a DTMI); it is percent-encoded in the user name.
    #[must_use]
    pub const fn model_id(mut self, model_id: &'a str) -> Self {
        self.model_id = Some(model_id);
        self
    }

    /// The hub host name.
    #[must_use]
    pub const fn host(&self) -> &'a str {
        self.host
    }

    /// The device id.
    #[must_use]
    pub const fn device_id(&self) -> &'a str {
        self.device_id
    }

    /// The module id, when connecting as a module.
    #[must_use]
    pub const fn module_id(&self) -> Option<&'a str> {
        self.module_id
    }

    /// The MQTT client id: `{device_id}` or `{device_id}/{module_id}`.
    #[must_use]
    pub const fn client_id(&self) -> ClientId<'a> {
        ClientId {
            device_id: self.device_id,
            module_id: self.module_id,
        }
    }

    /// The MQTT user name:
    /// `{host}/{device_id}[/{module_id}]/?api-version={v}[&DeviceClientType={t}][&model-id={m}]`.
    #[must_use]
    pub const fn username(&self) -> Username<'a> {
        Username { info: *self }
    }
}

/// The MQTT client id, written by its [`Display`](fmt::Display) implementation; see
/// [`HubConnectInfo::client_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
}

impl fmt::Display for ClientId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.device_id)?;
        if let Some(module_id) = self.module_id {
            write!(f, "/{module_id}")?;
        }
        Ok(())
    }
}

/// The MQTT user name, written by its [`Display`](fmt::Display) implementation; see
/// [`HubConnectInfo::username`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Username<'a> {
    info: HubConnectInfo<'a>,
}

impl fmt::Display for Username<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        write!(
            f,
            "{}/{}/?api-version={}",
            info.host,
            info.client_id(),
            info.api_version
        )?;
        match info.client_type {
            Some(ClientType::Encode(t)) => {
                write!(f, "&DeviceClientType={}", PercentEncoded::new(t))?
            }
            Some(ClientType::Verbatim(t)) => write!(f, "&DeviceClientType={t}")?,
            None => {}
        }
        if let Some(model_id) = info.model_id {
            write!(f, "&model-id={}", PercentEncoded::new(model_id))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn defaults() {
        let info = HubConnectInfo::new("h", "d");
        assert_eq!(info.username().to_string(), "h/d/?api-version=2021-04-12");
        assert_eq!(info.client_id().to_string(), "d");
        assert_eq!(info.host(), "h");
        assert_eq!(info.device_id(), "d");
        assert_eq!(info.module_id(), None);
    }

    #[test]
    fn every_option() {
        let info = HubConnectInfo::new("h", "d")
            .module("m")
            .api_version("2020-09-30")
            .device_client_type("a b/c")
            .model_id("dtmi:x;1");
        assert_eq!(info.client_id().to_string(), "d/m");
        assert_eq!(
            info.username().to_string(),
            "h/d/m/?api-version=2020-09-30&DeviceClientType=a%20b%2Fc&model-id=dtmi%3Ax%3B1"
        );
        let verbatim = info.device_client_type_preencoded("a%20b");
        assert!(
            verbatim
                .username()
                .to_string()
                .contains("&DeviceClientType=a%20b&")
        );
    }
}
