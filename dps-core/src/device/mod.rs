//! The device lifecycle: provision once, stay connected for years.
//!
//! [`Device`] is a third sans-IO machine under the [driving contract](crate#the-driving-contract):
//! it owns one DPS [`Registration`](crate::dps::Registration) or one
//! [`HubSession`](crate::hub::HubSession) at a time and forwards the MQTT vocabulary to it. The
//! driver also reads [`Device::target`] before each [`Transmit::Connect`](crate::mqtt::Transmit)
//! (DPS or which hub, with which [`CredentialSlot`]) and performs the [`StoreAction`]s from
//! [`Device::poll_store`] on its [`AssignmentStore`]. Storage, keys and clocks stay with the driver.
//!
//! # Rules
//! - **No cache** (or an unreadable one, see [`AssignmentRecord::from_json`]): provision
//!   ([`ReprovisionReason::NoCache`]).
//! - **A valid cache**: connect to the stored hub with **no DPS call**
//!   ([`LifecycleEvent::Provisioned`] with [`Source::Cache`]).
//! - **The hub refuses the credentials** (CONNACK 4 or 5, service-behaviour.md "CONNACK
//!   codes", §3.4): try the next credential slot ([`LifecycleEvent::CredentialSwitched`]); when none is
//!   left, the device was deleted or moved: clear the cache and provision again
//!   ([`ReprovisionReason::HubRefused`]). When the hub refuses an identity DPS has just
//!   assigned, the device is disabled: stop ([`DeviceStopReason::DeviceDisabled`]), no loop.
//! - **The hub unreachable** for [`DeviceConfig::hub_attempts`] attempts or
//!   [`DeviceConfig::hub_unreachable_for`]: provision again
//!   ([`ReprovisionReason::HubUnreachable`], [`ReprovisionReason::HubUnreachableFor`]).
//! - **The assignment older than** [`DeviceConfig::max_assignment_age`]: provision again, at
//!   start or while connected ([`ReprovisionReason::AssignmentTooOld`]).
//! - **The application asks** ([`Device::reprovision`], [`ReprovisionReason::Requested`]).
//! - **Reprovisioning on the service side** follows the enrollment's policy
//!   (service-behaviour.md §1.12): the same hub for a deleted device, the new hub for a moved
//!   one; the machine simply connects where DPS says and saves that record.
//! - **DPS's own answers** are honoured by the registration as before (retry-after, 429,
//!   polling); its terminal answers: disabled enrollment stops
//!   ([`DeviceStopReason::EnrollmentDisabled`]), unauthorized moves to the next credential
//!   (key rotation survived with the secondary key), throttled waits at least its retry-after.
//! - **Identity-recovery backoff** ([`RecoveryBackoff`]): the first re-provisioning is
//!   immediate, each further one without a hub connection in between waits exponentially
//!   longer with jitter, between a floor and a ceiling (defaults 5 minutes and 1 hour); only a
//!   successful hub connection resets it; a larger DPS retry-after wins.
//! - **Certificate renewal** ([`CertificateRenewal`]): once the driver reports the validity
//!   ([`Device::certificate_validity`]), at a share of the lifetime (default 80 %, up to 5 %
//!   earlier at random) the machine asks for a CSR ([`LifecycleEvent::CsrNeeded`]; keys are the
//!   driver's). Over the hub's credentials topic (hub-device-protocol.md, "Hub certificate
//!   renewal": 202 then 200 with the chain, 409004 waits its retry-after, CSR at most
//!   [`MAX_CSR_LEN`]) or, when the hub does not offer it or refuses, by provisioning again with
//!   the CSR (service-behaviour.md §1.16). The new chain is saved in the record.
//!
//! # Example: a reboot with a stored assignment
//!
//! ```
//! use dps_core::Timestamp;
//! use dps_core::device::{AssignmentRecord, Device, DeviceConfig, Target};
//! use dps_core::dps::registration::RegistrationConfig;
//! use dps_core::hub::session::SessionConfig;
//! use dps_core::mqtt::{Machine as _, Transmit};
//!
//! let unix_now = 1_700_000_000;
//! // What the driver's store loaded (`AssignmentRecord::from_json` on the file's text).
//! let stored = AssignmentRecord::new("contoso.azure-devices.net", "dev-1", unix_now - 3600);
//! let config = DeviceConfig::new(
//!     RegistrationConfig::new("dev-1"),
//!     SessionConfig::device("dev-1"),
//! );
//! let mut device = Device::new(config, Timestamp::ZERO, unix_now, Some(stored), 42);
//!
//! // The first connection goes to the stored hub: no DPS call.
//! assert!(matches!(device.poll_transmit(), Some(Transmit::Connect { clean_session: false })));
//! assert!(matches!(device.target(), Some(Target::Hub { hub, .. }) if hub == "contoso.azure-devices.net"));
//! ```

mod machine;
mod policy;
mod record;
mod renewal;

pub use machine::{Device, Event, Target};
pub use policy::{
    CredentialSlot, DeviceConfig, DeviceStopReason, LifecycleEvent, RecoveryBackoff,
    ReprovisionReason, Source,
};
pub use record::{AssignmentRecord, AssignmentStore, RECORD_VERSION, RecordError, StoreAction};
pub use renewal::{CertificateRenewal, Issuer, MAX_CSR_LEN, REQUEST_ALREADY_ACTIVE, RenewError};
