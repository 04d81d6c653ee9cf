//! Twin documents: merge patches, versions, and the device-side and service-side views.
//!
//! A stored twin is `{tags, properties: {desired, reported}}` (the shape DPS writes for an
//! initial twin); versions and update times live in [`TwinMeta`] beside it.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::model::TwinMeta;

/// The largest desired or reported section, serialized (the service's 32 KB limit).
pub(crate) const MAX_SECTION_SIZE: usize = 32 * 1024;
/// The largest tags section, serialized (8 KB).
pub(crate) const MAX_TAGS_SIZE: usize = 8 * 1024;
/// The deepest nesting of objects in a patch (the service allows 10 levels).
const MAX_DEPTH: usize = 10;

/// Why a patch was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PatchError(pub(crate) String);

/// The twin etag for a version: base64 of the version as 8 big-endian bytes, as the service
/// writes it (`"AAAAAAAAAAE="` for version 1).
pub(crate) fn etag(version: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(version.to_be_bytes())
}

/// Makes `twin` the stored shape (`{tags, properties: {desired, reported}}`), keeping the
/// sections that are there (twins are small: at most 72 KB).
pub(crate) fn normalize(twin: &mut Value) {
    let shaped = json!({
        "tags": tags(twin),
        "properties": { "desired": section(twin, "desired"), "reported": section(twin, "reported") },
    });
    *twin = shaped;
}

/// A copy of `properties.{name}` (empty when absent).
pub(crate) fn section(twin: &Value, name: &str) -> Map<String, Value> {
    twin.pointer(&format!("/properties/{name}"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A copy of the tags (empty when absent).
pub(crate) fn tags(twin: &Value) -> Map<String, Value> {
    twin.get("tags")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// What the device gets for `$iothub/twin/GET`: both sections with their `$version`.
pub(crate) fn device_view(twin: &Value, meta: &TwinMeta) -> Value {
    let mut desired = section(twin, "desired");
    desired.insert("$version".into(), meta.desired_version.into());
    let mut reported = section(twin, "reported");
    reported.insert("$version".into(), meta.reported_version.into());
    json!({ "desired": desired, "reported": reported })
}

/// Checks a patch: a JSON object whose member names are not reserved (`$...`) and whose
/// nesting is within the service's limit. Returns its members.
pub(crate) fn validate_patch(patch: &Value) -> Result<&Map<String, Value>, PatchError> {
    let map = patch
        .as_object()
        .ok_or_else(|| PatchError("a twin patch must be a JSON object".into()))?;
    check_members(map, 1)?;
    Ok(map)
}

fn check_members(map: &Map<String, Value>, depth: usize) -> Result<(), PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError(format!(
            "twin properties nest deeper than {MAX_DEPTH} levels"
        )));
    }
    for (name, value) in map {
        if name.is_empty() || name.starts_with('$') || name.contains(['.', ' ']) {
            return Err(PatchError(format!(
                "invalid twin property name {name:?}: names may not be empty, start with '$' \
                 or contain '.' or ' '"
            )));
        }
        if let Value::Object(inner) = value {
            check_members(inner, depth + 1)?;
        }
    }
    Ok(())
}

/// Applies a JSON merge patch: `null` deletes a member, objects merge recursively, anything
/// else replaces.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (name, value) in patch {
        match value {
            Value::Null => {
                // `shift_remove` keeps the order of the members that stay (`remove` would
                // swap the last member into the hole).
                target.shift_remove(name);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge(existing, inner);
                }
            }
            other => {
                target.insert(name.clone(), other.clone());
            }
        }
    }
}

/// Which section a patch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Desired,
    Reported,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Self::Desired => "desired",
            Self::Reported => "reported",
        }
    }
}

/// Merges `patch` into a section, bumps its `$version` and the twin version, and returns the
/// new section version. Nothing changes when the result would be over the size limit.
pub(crate) fn apply(
    twin: &mut Value,
    meta: &mut TwinMeta,
    section_kind: Section,
    patch: &Map<String, Value>,
    now: &str,
) -> Result<u64, PatchError> {
    normalize(twin);
    let mut updated = section(twin, section_kind.name());
    merge(&mut updated, patch);
    let size = serde_json::to_vec(&updated).map_or(usize::MAX, |v| v.len());
    if size > MAX_SECTION_SIZE {
        return Err(PatchError(format!(
            "the {} properties would be {size} bytes, over the {MAX_SECTION_SIZE}-byte limit",
            section_kind.name()
        )));
    }
    if let Some(properties) = twin.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(section_kind.name().into(), Value::Object(updated));
    }
    meta.version += 1;
    let version = match section_kind {
        Section::Desired => {
            meta.desired_version += 1;
            meta.desired_updated = Some(now.to_owned());
            meta.desired_version
        }
        Section::Reported => {
            meta.reported_version += 1;
            meta.reported_updated = Some(now.to_owned());
            meta.reported_version
        }
    };
    Ok(version)
}

/// Merges `patch` into the tags and bumps the twin version.
pub(crate) fn apply_tags(
    twin: &mut Value,
    meta: &mut TwinMeta,
    patch: &Map<String, Value>,
) -> Result<(), PatchError> {
    normalize(twin);
    let mut updated = tags(twin);
    merge(&mut updated, patch);
    let size = serde_json::to_vec(&updated).map_or(usize::MAX, |v| v.len());
    if size > MAX_TAGS_SIZE {
        return Err(PatchError(format!(
            "the tags would be {size} bytes, over the {MAX_TAGS_SIZE}-byte limit"
        )));
    }
    if let Some(root) = twin.as_object_mut() {
        root.insert("tags".into(), Value::Object(updated));
    }
    meta.version += 1;
    Ok(())
}

/// Replaces a whole section (a twin `PUT`): the result as a patch that turns the old section
/// into the new one (members removed are `null`), for the device's desired notification.
pub(crate) fn replace_patch(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = new.clone();
    for name in old.keys() {
        if !new.contains_key(name) {
            patch.insert(name.clone(), Value::Null);
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matches_the_service_form() {
        assert_eq!(etag(1), "AAAAAAAAAAE=");
    }

    #[test]
    fn merge_deletes_nulls_and_merges_objects() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .cloned()
            .unwrap();
        let patch = json!({"a": null, "b": {"c": null, "x": 9}, "e": {"f": 1}, "g": [1]});
        merge(&mut target, patch.as_object().unwrap());
        assert_eq!(
            Value::Object(target),
            json!({"b": {"d": 3, "x": 9}, "e": {"f": 1}, "g": [1]})
        );
    }

    #[test]
    fn apply_bumps_versions_and_keeps_limits() {
        let mut twin = Value::Null;
        let mut meta = TwinMeta::default();
        let patch = json!({"temp": 21});
        let v = apply(
            &mut twin,
            &mut meta,
            Section::Reported,
            patch.as_object().unwrap(),
            "t",
        )
        .unwrap();
        assert_eq!((v, meta.version, meta.desired_version), (2, 2, 1));
        assert_eq!(
            device_view(&twin, &meta),
            json!({"desired": {"$version": 1}, "reported": {"temp": 21, "$version": 2}})
        );
        let big = json!({ "blob": "x".repeat(MAX_SECTION_SIZE) });
        assert!(
            apply(
                &mut twin,
                &mut meta,
                Section::Desired,
                big.as_object().unwrap(),
                "t"
            )
            .is_err()
        );
        assert_eq!(meta.version, 2, "a refused patch changes nothing");
    }

    #[test]
    fn reserved_and_deep_names_are_refused() {
        assert!(validate_patch(&json!({"$version": 3})).is_err());
        assert!(validate_patch(&json!({"a.b": 3})).is_err());
        assert!(validate_patch(&json!([1])).is_err());
        let mut deep = json!(1);
        for _ in 0..11 {
            deep = json!({ "n": deep });
        }
        assert!(validate_patch(&deep).is_err());
        assert!(validate_patch(&json!({"ok": {"fine": null}})).is_ok());
    }

    #[test]
    fn replace_patch_nulls_removed_members() {
        let old = json!({"a": 1, "b": 2}).as_object().cloned().unwrap();
        let new = json!({"b": 3}).as_object().cloned().unwrap();
        assert_eq!(
            Value::Object(replace_patch(&old, &new)),
            json!({"a": null, "b": 3})
        );
    }
}
