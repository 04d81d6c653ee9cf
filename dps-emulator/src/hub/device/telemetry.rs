//! Device-to-cloud messages: the property bag split into system and application properties,
//! as the hub's built-in endpoint presents them.

use std::collections::BTreeMap;

use dps_core::hub::PropertyBag;

use crate::hub::events::{HubEvent, HubEventKind};
use crate::hub::live::IdentityKey;

/// The names under which the feed shows the MQTT system properties.
const SYSTEM_NAMES: [(&str, &str); 12] = [
    ("$.mid", "messageId"),
    ("$.cid", "correlationId"),
    ("$.uid", "userId"),
    ("$.ct", "contentType"),
    ("$.ce", "contentEncoding"),
    ("$.on", "outputName"),
    ("$.ctime", "creationTimeUtc"),
    ("$.exp", "expiryTimeUtc"),
    ("$.ifid", "interfaceId"),
    ("$.sub", "componentName"),
    ("$.schema", "messageSchema"),
    ("$.to", "to"),
];

/// A telemetry event from a received message; `Err` when the bag has a malformed escape (the
/// hub closes the connection).
pub(crate) fn event(
    key: &IdentityKey,
    bag: PropertyBag<'_>,
    body: &[u8],
    retain: bool,
    auth_method: &str,
    now: &str,
) -> Result<HubEvent, String> {
    let mut system = BTreeMap::new();
    let mut application = BTreeMap::new();
    for property in bag.iter() {
        let name = property
            .decoded_key()
            .map_err(|e| format!("property name: {e}"))?;
        let value = property
            .decoded_value()
            .map_err(|e| format!("property {name:?}: {e}"))?
            .map(|v| v.into_owned())
            .unwrap_or_default();
        if name.starts_with("$.") {
            let shown = SYSTEM_NAMES
                .iter()
                .find(|(raw, _)| *raw == name)
                .map_or_else(
                    || name.clone().into_owned(),
                    |(_, shown)| (*shown).to_owned(),
                );
            system.insert(shown, value);
        } else {
            application.insert(name.into_owned(), value);
        }
    }
    if retain {
        // RETAIN is not kept by the hub: it is forwarded as this application property.
        application.insert("mqtt-retain".into(), "true".into());
    }
    system.insert("iothub-connection-device-id".into(), key.device_id.clone());
    if let Some(module_id) = &key.module_id {
        system.insert("iothub-connection-module-id".into(), module_id.clone());
    }
    system.insert(
        "iothub-connection-auth-method".into(),
        auth_method.to_owned(),
    );
    system.insert("iothub-enqueuedtime".into(), now.to_owned());
    system.insert("iothub-message-source".into(), "Telemetry".into());
    Ok(HubEvent {
        sequence_number: 0,
        hub: key.hub.clone(),
        kind: HubEventKind::Telemetry,
        device_id: key.device_id.clone(),
        module_id: key.module_id.clone(),
        enqueued_time: now.to_owned(),
        system_properties: system,
        properties: application,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_system_and_application_properties() {
        let key = IdentityKey::module("h", "d", "m");
        let bag =
            PropertyBag::new("%24.on=out1&%24.ct=application%2Fjson&%24.x=1&k%20y=v%26w&flag");
        let e = event(&key, bag, b"{}", true, "sas", "now").unwrap();
        assert_eq!(e.system_properties["outputName"], "out1");
        assert_eq!(e.system_properties["contentType"], "application/json");
        assert_eq!(e.system_properties["$.x"], "1");
        assert_eq!(e.system_properties["iothub-connection-module-id"], "m");
        assert_eq!(e.properties["k y"], "v&w");
        assert_eq!(e.properties["flag"], "");
        assert_eq!(e.properties["mqtt-retain"], "true");
        assert!(event(&key, PropertyBag::new("a=%zz"), b"", false, "sas", "now").is_err());
    }
}
