//! IoT Plug and Play conventions: components in reported properties, writable properties and
//! their acknowledgement (the IoT Plug and Play conventions article, "Read-only properties" and
//! "Writable properties"; commands are [`split_command`](super::split_command) and component
//! telemetry is [`MessageProperties::component`](super::MessageProperties::component)).
//!
//! - A component's properties sit under the component's name with the marker
//!   `"__t": "c"` first: `{"thermostat1":{"__t":"c","temperature":21.3}}`.
//! - A writable property set by the service is acknowledged with a reported property
//!   `{"value":..,"ac":<code>,"av":<desired $version>,"ad":".."}` ([`PropertyAck`]).
//! - After (re)connecting, a device reads the whole twin and acknowledges what changed while it
//!   was away, once ([`unacknowledged`]), instead of replaying every missed patch.
//!
//! The JSON is written in the order the conventions article shows it (marker first, then
//! `value`, `ac`, `av`, `ad`), byte for byte as its examples once their whitespace is removed.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use serde::ser::{Serialize, SerializeMap as _, Serializer};
use serde_json::{Map, Value};

/// The key of the component marker.
pub const COMPONENT_MARKER_KEY: &str = "__t";
/// The value of the component marker.
pub const COMPONENT_MARKER_VALUE: &str = "c";

/// The acknowledgement codes of the conventions' table ("Acknowledgment responses").
pub mod ack_code {
    /// The desired value was accepted and applied.
    pub const COMPLETED: u16 = 200;
    /// The desired value was accepted; the update is in progress (should end with 200).
    pub const IN_PROGRESS: u16 = 202;
    /// The device set the value itself, not reflecting any desired value (`av` is 0).
    pub const SET_BY_DEVICE: u16 = 203;
    /// The desired value was not accepted.
    pub const REJECTED: u16 = 400;
    /// Applying the desired value failed.
    pub const FAILED: u16 = 500;
}

/// A writable property as the service set it: where it belongs, its value, and the desired
/// `$version` an acknowledgement must name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WritableProperty {
    /// The component, or `None` for the default component.
    pub component: Option<String>,
    /// The property name.
    pub name: String,
    /// The desired value.
    pub value: Value,
    /// The desired properties' `$version` it arrived with.
    pub version: u64,
}

impl WritableProperty {
    /// Acknowledges the property with `code`, echoing the desired value (the usual answer:
    /// [`ack_code::COMPLETED`]).
    #[must_use]
    pub fn ack(&self, code: u16) -> PropertyAck {
        PropertyAck::new(
            self.component.clone(),
            self.name.clone(),
            self.value.clone(),
        )
        .code(code)
        .version(self.version)
    }

    /// Acknowledges the property with `code` and the value the device actually uses (after a
    /// rejection or a clamp, for example).
    #[must_use]
    pub fn ack_with_value(&self, code: u16, value: Value) -> PropertyAck {
        PropertyAck::new(self.component.clone(), self.name.clone(), value)
            .code(code)
            .version(self.version)
    }
}

/// The acknowledgement of a writable property: `{"value":..,"ac":..,"av":..,"ad":..}` under the
/// property's name (and component). Put it in a [`ReportedPatch`] to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyAck {
    component: Option<String>,
    name: String,
    value: Value,
    code: u16,
    version: u64,
    description: Option<String>,
}

impl PropertyAck {
    /// An acknowledgement of `name` (in `component`) reporting `value`; code 200 and version 0
    /// until set.
    #[must_use]
    pub fn new(component: Option<String>, name: impl Into<String>, value: Value) -> Self {
        Self {
            component,
            name: name.into(),
            value,
            code: ack_code::COMPLETED,
            version: 0,
            description: None,
        }
    }

    /// A value the device sets itself with no desired value to answer (`ac` 203, `av` 0), as
    /// on a first start.
    #[must_use]
    pub fn set_by_device(component: Option<String>, name: impl Into<String>, value: Value) -> Self {
        Self::new(component, name, value).code(ack_code::SET_BY_DEVICE)
    }

    /// The acknowledgement code (`ac`), an HTTP status ([`ack_code`]).
    #[must_use]
    pub const fn code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }

    /// The desired `$version` acknowledged (`av`).
    #[must_use]
    pub const fn version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The optional description (`ad`).
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The component, if any.
    #[must_use]
    pub fn component_name(&self) -> Option<&str> {
        self.component.as_deref()
    }

    /// The property name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The `{"value","ac","av","ad"}` object, in the article's order.
struct AckBody<'a>(&'a PropertyAck);

impl Serialize for AckBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ack = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &ack.value)?;
        map.serialize_entry("ac", &ack.code)?;
        map.serialize_entry("av", &ack.version)?;
        if let Some(description) = &ack.description {
            map.serialize_entry("ad", description)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Value(Value),
    Ack(PropertyAck),
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(value) => value.serialize(serializer),
            Self::Ack(ack) => AckBody(ack).serialize(serializer),
        }
    }
}

/// A reported-properties patch under the conventions: root properties and each component's
/// properties (with the marker), in the order they were added. Serialize it (or call
/// [`to_json`](Self::to_json)) and send it as a reported-properties update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportedPatch {
    root: Vec<(String, Entry)>,
    components: Vec<(String, Vec<(String, Entry)>)>,
}

impl ReportedPatch {
    /// An empty patch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A read-only property of the default component.
    #[must_use]
    pub fn property(mut self, name: impl Into<String>, value: Value) -> Self {
        self.root.push((name.into(), Entry::Value(value)));
        self
    }

    /// A read-only property of `component`.
    #[must_use]
    pub fn component_property(
        mut self,
        component: impl Into<String>,
        name: impl Into<String>,
        value: Value,
    ) -> Self {
        let entry = (name.into(), Entry::Value(value));
        self.component_mut(component.into()).push(entry);
        self
    }

    /// A writable property's acknowledgement, under its component if it has one.
    #[must_use]
    pub fn ack(mut self, ack: PropertyAck) -> Self {
        let entry = (ack.name.clone(), Entry::Ack(ack.clone()));
        match ack.component {
            Some(component) => self.component_mut(component).push(entry),
            None => self.root.push(entry),
        }
        self
    }

    /// Whether nothing was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.root.is_empty() && self.components.is_empty()
    }

    /// The patch as compact JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing strings, numbers and `Value`s into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn component_mut(&mut self, component: String) -> &mut Vec<(String, Entry)> {
        let at = match self.components.iter().position(|(c, _)| *c == component) {
            Some(at) => at,
            None => {
                self.components.push((component, Vec::new()));
                self.components.len() - 1
            }
        };
        &mut self.components[at].1
    }
}

/// A component's object: the marker, then its properties.
struct ComponentBody<'a>(&'a [(String, Entry)]);

impl Serialize for ComponentBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len() + 1))?;
        map.serialize_entry(COMPONENT_MARKER_KEY, COMPONENT_MARKER_VALUE)?;
        for (name, entry) in self.0 {
            map.serialize_entry(name, entry)?;
        }
        map.end()
    }
}

impl Serialize for ReportedPatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.root.len() + self.components.len()))?;
        for (name, entry) in &self.root {
            map.serialize_entry(name, entry)?;
        }
        for (component, entries) in &self.components {
            map.serialize_entry(component, &ComponentBody(entries))?;
        }
        map.end()
    }
}

/// Whether `value` is a component's object: it carries the marker.
fn has_marker(value: &Value) -> bool {
    value.get(COMPONENT_MARKER_KEY).and_then(Value::as_str) == Some(COMPONENT_MARKER_VALUE)
}

/// Service metadata inside a properties document (`$version`, `$metadata`), not a property.
fn is_metadata(key: &str) -> bool {
    key.starts_with('$') || key == COMPONENT_MARKER_KEY
}

/// The writable properties in a desired-properties document: a patch pushed by the hub or the
/// twin's whole `desired` section. A top-level object is a component when it carries the marker
/// or is named in `components` (the model's components); everything else is a property of the
/// default component. `$version` and `$metadata` are skipped. Returns nothing for a document
/// that is not an object.
#[must_use]
pub fn writable_properties(desired: &Value, components: &[&str]) -> Vec<WritableProperty> {
    let Some(doc) = desired.as_object() else {
        return Vec::new();
    };
    let top_version = doc.get("$version").and_then(Value::as_u64);
    let mut found = Vec::new();
    for (key, value) in doc {
        if is_metadata(key) {
            continue;
        }
        match value {
            Value::Object(inner) if has_marker(value) || components.contains(&key.as_str()) => {
                // The article's component sample puts `$version` inside the component; the
                // service puts it at the top.
                let version = top_version
                    .or_else(|| inner.get("$version").and_then(Value::as_u64))
                    .unwrap_or(0);
                push_properties(&mut found, Some(key), inner, version);
            }
            _ => found.push(WritableProperty {
                component: None,
                name: key.clone(),
                value: value.clone(),
                version: top_version.unwrap_or(0),
            }),
        }
    }
    found
}

fn push_properties(
    found: &mut Vec<WritableProperty>,
    component: Option<&str>,
    properties: &Map<String, Value>,
    version: u64,
) {
    for (name, value) in properties {
        if !is_metadata(name) {
            found.push(WritableProperty {
                component: component.map(ToOwned::to_owned),
                name: name.clone(),
                value: value.clone(),
                version,
            });
        }
    }
}

/// The writable properties of a whole twin that the reported side has not yet acknowledged at
/// the current desired `$version` with the current value: what a device handles once after it
/// connects ("When a device starts up, it should request the device twin, and check for any
/// writable property updates").
#[must_use]
pub fn unacknowledged(
    desired: &Value,
    reported: &Value,
    components: &[&str],
) -> Vec<WritableProperty> {
    writable_properties(desired, components)
        .into_iter()
        .filter(|property| {
            let acked = match &property.component {
                Some(component) => reported.get(component).and_then(|c| c.get(&property.name)),
                None => reported.get(&property.name),
            };
            let Some(acked) = acked else {
                return true;
            };
            let version = acked.get("av").and_then(Value::as_u64);
            let value = acked.get("value");
            version != Some(property.version) || value != Some(&property.value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use serde_json::json;

    use super::*;

    /// An example of the conventions article with its whitespace removed (outside strings).
    fn compact(text: &str) -> String {
        let mut out = String::new();
        let mut in_string = false;
        let mut escaped = false;
        for c in text.chars() {
            if in_string {
                out.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if !c.is_whitespace() {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn read_only_component_property_matches_the_article() {
        let patch =
            ReportedPatch::new().component_property("thermostat1", "temperature", json!(21.3));
        let article = r#"{
          "thermostat1": {
            "__t": "c",
            "temperature": 21.3
          }
        }"#;
        assert_eq!(patch.to_json(), compact(article));
        let root = ReportedPatch::new().property("temperature", json!(21.3));
        assert_eq!(root.to_json(), compact(r#"{ "temperature" : 21.3 }"#));
    }

    #[test]
    fn writable_acks_match_the_article() {
        // "Sample no component writable property": the desired payload and the first answer.
        let desired: Value = serde_json::from_str(
            r#"{ "targetTemperature" : 21.3, "targetHumidity" : 80, "$version" : 3 }"#,
        )
        .unwrap();
        let properties = writable_properties(&desired, &[]);
        assert_eq!(properties.len(), 2);
        let temperature = properties
            .iter()
            .find(|p| p.name == "targetTemperature")
            .unwrap();
        assert_eq!(
            (temperature.component.as_deref(), temperature.version),
            (None, 3)
        );
        let patch = ReportedPatch::new().ack(temperature.ack(200).description("complete"));
        let article = r#"{
          "targetTemperature": {
            "value": 21.3,
            "ac": 200,
            "av": 3,
            "ad": "complete"
          }
        }"#;
        assert_eq!(patch.to_json(), compact(article));

        // The error and in-progress examples.
        let error = PropertyAck::new(None, "targetTemperature", json!(120.0))
            .code(ack_code::FAILED)
            .version(3)
            .description("Target temperature out of range. Valid range is 10 to 99.");
        let article = r#"{
          "targetTemperature": {
            "value": 120.0,
            "ac": 500,
            "av": 3,
            "ad": "Target temperature out of range. Valid range is 10 to 99."
          }
        }"#;
        assert_eq!(ReportedPatch::new().ack(error).to_json(), compact(article));
        let initial = PropertyAck::set_by_device(None, "targetTemperature", json!(20.0))
            .description("initialize");
        let article = r#"{
          "targetTemperature": {
            "value": 20.0,
            "ac": 203,
            "av": 0,
            "ad": "initialize"
          }
        }"#;
        assert_eq!(
            ReportedPatch::new().ack(initial).to_json(),
            compact(article)
        );
    }

    #[test]
    fn component_writable_acks_match_the_article() {
        // "Sample multiple components writable property" (with `$version` where the article
        // puts it, inside the component).
        let desired: Value = serde_json::from_str(
            r#"{
              "thermostat1": {
                "__t": "c",
                "targetTemperature": 21.3,
                "targetHumidity": 80,
                "$version" : 3
              }
            }"#,
        )
        .unwrap();
        let properties = writable_properties(&desired, &[]);
        let humidity = properties
            .iter()
            .find(|p| p.name == "targetHumidity")
            .unwrap();
        assert_eq!(humidity.component.as_deref(), Some("thermostat1"));
        assert_eq!(humidity.version, 3);
        let article = r#"{
          "thermostat1": {
            "__t": "c",
            "targetHumidity": {
              "value": 80,
              "ac": 200,
              "av": 3,
              "ad": "complete"
            }
          }
        }"#;
        let patch = ReportedPatch::new().ack(humidity.ack(200).description("complete"));
        assert_eq!(patch.to_json(), compact(article));
        // The device may report another value than the desired one.
        let temperature = properties
            .iter()
            .find(|p| p.name == "targetTemperature")
            .unwrap();
        let article = r#"{
          "thermostat1": {
            "__t": "c",
            "targetTemperature": {
              "value": 23,
              "ac": 200,
              "av": 3,
              "ad": "complete"
            }
          }
        }"#;
        let patch = ReportedPatch::new().ack(
            temperature
                .ack_with_value(200, json!(23))
                .description("complete"),
        );
        assert_eq!(patch.to_json(), compact(article));
    }

    #[test]
    fn object_acks_keep_the_object() {
        let value = json!({"count": 100, "errorCount": 5});
        let ack = PropertyAck::new(None, "samplingRange", value)
            .version(5)
            .description("Weighing status updated");
        assert_eq!(
            ReportedPatch::new().ack(ack).to_json(),
            r#"{"samplingRange":{"value":{"count":100,"errorCount":5},"ac":200,"av":5,"ad":"Weighing status updated"}}"#
        );
    }

    #[test]
    fn components_are_told_by_marker_or_by_name_and_metadata_is_skipped() {
        let desired = json!({
            "thermostat1": {"__t": "c", "targetTemperature": 21},
            "thermostat2": {"targetTemperature": 22},
            "settings": {"mode": "eco"},
            "$version": 7,
            "$metadata": {"$lastUpdated": "2026-01-01T00:00:00Z"}
        });
        let mut found = writable_properties(&desired, &["thermostat2"]);
        found.sort_by(|a, b| (&a.component, &a.name).cmp(&(&b.component, &b.name)));
        let summary: Vec<_> = found
            .iter()
            .map(|p| (p.component.as_deref(), p.name.as_str(), p.version))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, "settings", 7),
                (Some("thermostat1"), "targetTemperature", 7),
                (Some("thermostat2"), "targetTemperature", 7),
            ]
        );
        assert!(writable_properties(&json!([1, 2]), &[]).is_empty());
    }

    #[test]
    fn several_acks_share_one_component_object() {
        let patch = ReportedPatch::new()
            .ack(PropertyAck::new(Some("t1".into()), "a", json!(1)).version(2))
            .property("serialNumber", json!("X1"))
            .ack(PropertyAck::new(Some("t1".into()), "b", json!(2)).version(2));
        assert_eq!(
            patch.to_json(),
            r#"{"serialNumber":"X1","t1":{"__t":"c","a":{"value":1,"ac":200,"av":2},"b":{"value":2,"ac":200,"av":2}}}"#
        );
        assert!(!patch.is_empty());
        assert!(ReportedPatch::new().is_empty());
    }

    #[test]
    fn only_what_changed_since_the_last_ack_is_pending() {
        let desired = json!({
            "targetTemperature": 21,
            "thermostat1": {"__t": "c", "targetTemperature": 30, "targetHumidity": 40},
            "$version": 9
        });
        let reported = json!({
            // Acknowledged at this version and value: done.
            "targetTemperature": {"value": 21, "ac": 200, "av": 9},
            "thermostat1": {
                "__t": "c",
                // Acknowledged at an older version: changed while offline.
                "targetTemperature": {"value": 25, "ac": 200, "av": 8}
                // targetHumidity never acknowledged.
            },
            "$version": 4
        });
        let mut pending: Vec<_> = unacknowledged(&desired, &reported, &[])
            .into_iter()
            .map(|p| (p.component, p.name))
            .collect();
        pending.sort();
        assert_eq!(
            pending,
            vec![
                (Some("thermostat1".into()), "targetHumidity".into()),
                (Some("thermostat1".into()), "targetTemperature".into()),
            ]
        );
    }
}
