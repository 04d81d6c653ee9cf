//! Choosing a hub: allocation policies and reprovisioning.

use dps_core::dps::Substatus;

use crate::model::{AllocationPolicy, EnrollmentSettings, ReprovisionPolicy};

/// Candidate hubs for an enrollment: its `iotHubs` that are linked, else every linked hub.
pub(crate) fn candidates(settings: &EnrollmentSettings, linked: &[String]) -> Vec<String> {
    let listed: Vec<String> = settings
        .iot_hubs
        .iter()
        .flatten()
        .filter(|h| linked.iter().any(|l| l.eq_ignore_ascii_case(h)))
        .cloned()
        .collect();
    if listed.is_empty() {
        linked.to_vec()
    } else {
        listed
    }
}

/// The hub for a non-custom policy; `None` when there is no candidate.
pub(crate) fn choose(
    settings: &EnrollmentSettings,
    linked: &[String],
    registration_id: &str,
) -> Option<String> {
    let candidates = candidates(settings, linked);
    match settings.allocation_policy.unwrap_or_default() {
        AllocationPolicy::Static => settings
            .iot_hub_host_name
            .clone()
            .or_else(|| candidates.first().cloned()),
        // Every local hub is equally close, so geo-latency degenerates to hashing.
        AllocationPolicy::Hashed | AllocationPolicy::GeoLatency | AllocationPolicy::Custom => {
            let n = u64::try_from(candidates.len()).ok().filter(|&n| n > 0)?;
            let index = usize::try_from(fnv1a(&registration_id.to_ascii_lowercase()) % n).ok()?;
            candidates.get(index).cloned()
        }
    }
}

/// FNV-1a: stable across runs and platforms, so a device keeps its hub after a restart.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What happens to a device that registers again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The hub the device ends on.
    pub(crate) hub: String,
    /// The substatus to report.
    pub(crate) substatus: Substatus,
    /// The hub the device leaves: its identity there is removed, and its twin moves along
    /// unless `reset_twin` (the service removes the old hub's entry on migration and on reset).
    pub(crate) migrate_from: Option<String>,
    /// Start from the initial twin.
    pub(crate) reset_twin: bool,
}

/// Applies the reprovision policy. `previous` is the hub of the last assignment DPS knows of;
/// `known_to_hub` says whether the chosen hub already has the device without DPS knowing.
pub(crate) fn place(
    chosen: String,
    previous: Option<(&str, &Substatus)>,
    policy: ReprovisionPolicy,
    known_to_hub: bool,
) -> Placement {
    match previous {
        None if known_to_hub => Placement {
            hub: chosen,
            substatus: Substatus::ReprovisionedToInitialAssignment,
            migrate_from: None,
            reset_twin: false,
        },
        None => Placement {
            hub: chosen,
            substatus: Substatus::InitialAssignment,
            migrate_from: None,
            reset_twin: true,
        },
        Some((old, substatus))
            if old.eq_ignore_ascii_case(&chosen) || !policy.update_hub_assignment =>
        {
            Placement {
                hub: old.to_owned(),
                substatus: substatus.clone(),
                migrate_from: None,
                reset_twin: false,
            }
        }
        Some((old, _)) if policy.migrate_device_data => Placement {
            hub: chosen,
            substatus: Substatus::DeviceDataMigrated,
            migrate_from: Some(old.to_owned()),
            reset_twin: false,
        },
        Some((old, _)) => Placement {
            hub: chosen,
            substatus: Substatus::DeviceDataReset,
            migrate_from: Some(old.to_owned()),
            reset_twin: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hubs() -> Vec<String> {
        vec!["a.hub".into(), "b.hub".into(), "c.hub".into()]
    }

    #[test]
    fn hashed_spreads_and_is_stable() {
        let settings = EnrollmentSettings::default();
        let mut counts = [0usize; 3];
        for i in 0..300 {
            let hub = choose(&settings, &hubs(), &format!("device-{i}")).unwrap();
            counts[hubs().iter().position(|h| *h == hub).unwrap()] += 1;
            assert_eq!(
                Some(hub),
                choose(&settings, &hubs(), &format!("DEVICE-{i}"))
            );
        }
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
    }

    #[test]
    fn static_and_listed_hubs() {
        let settings = EnrollmentSettings {
            allocation_policy: Some(AllocationPolicy::Static),
            iot_hub_host_name: Some("b.hub".into()),
            ..EnrollmentSettings::default()
        };
        assert_eq!(choose(&settings, &hubs(), "x").as_deref(), Some("b.hub"));
        let settings = EnrollmentSettings {
            iot_hubs: Some(vec!["c.hub".into(), "unlinked.hub".into()]),
            ..EnrollmentSettings::default()
        };
        for i in 0..20 {
            assert_eq!(
                choose(&settings, &hubs(), &i.to_string()).as_deref(),
                Some("c.hub")
            );
        }
    }

    #[test]
    fn reprovision_substatus() {
        let migrate = ReprovisionPolicy::default();
        let reset = ReprovisionPolicy {
            update_hub_assignment: true,
            migrate_device_data: false,
        };
        let never = ReprovisionPolicy {
            update_hub_assignment: false,
            migrate_device_data: false,
        };
        let init = Substatus::InitialAssignment;
        assert_eq!(
            place("a".into(), None, migrate, false).substatus,
            Substatus::InitialAssignment
        );
        assert_eq!(
            place("a".into(), None, migrate, true).substatus,
            Substatus::ReprovisionedToInitialAssignment
        );
        let moved = place("b".into(), Some(("a", &init)), migrate, false);
        assert_eq!(
            (
                moved.hub.as_str(),
                moved.substatus,
                moved.migrate_from.as_deref()
            ),
            ("b", Substatus::DeviceDataMigrated, Some("a"))
        );
        let reset_to = place("b".into(), Some(("a", &init)), reset, false);
        assert_eq!(
            (
                reset_to.substatus,
                reset_to.reset_twin,
                reset_to.migrate_from.as_deref()
            ),
            (Substatus::DeviceDataReset, true, Some("a"))
        );
        let stays = place("b".into(), Some(("a", &init)), never, false);
        assert_eq!(
            (stays.hub.as_str(), stays.substatus),
            ("a", Substatus::InitialAssignment)
        );
        let same = place("a".into(), Some(("a", &init)), migrate, true);
        assert_eq!((same.hub.as_str(), same.reset_twin), ("a", false));
    }
}
