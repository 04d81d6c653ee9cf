//! What a hub session subscribes to, and its timers and limits.

use alloc::string::String;
use core::time::Duration;

use crate::hub::{DEFAULT_KEEP_ALIVE_SECS, MAX_KEEP_ALIVE_SECS};

/// Which service-to-device features the session subscribes to after connecting.
///
/// Each costs one subscription (IoT Hub allows five): C2D (devices) or inputs (modules), twin
/// responses plus desired patches, and methods. All are on by default; a telemetry-only device
/// can turn them off to save the SUBSCRIBE and the twin GET on every connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Features {
    /// Cloud-to-device messages (devices only; ignored for modules).
    pub c2d: bool,
    /// Module input messages (modules only; ignored for devices).
    pub inputs: bool,
    /// Twin: GET, reported patches, desired patches, and the re-GET after every connect.
    pub twin: bool,
    /// Direct methods (and IoT Plug and Play commands).
    pub methods: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self::ALL
    }
}

impl Features {
    /// Everything.
    pub const ALL: Self = Self {
        c2d: true,
        inputs: true,
        twin: true,
        methods: true,
    };

    /// Nothing: telemetry only, no subscription at all.
    pub const NONE: Self = Self {
        c2d: false,
        inputs: false,
        twin: false,
        methods: false,
    };
}

/// Setters, so a policy is built from a preset (`Features::default()`) outside this crate.
impl Features {
    /// Subscribes to cloud-to-device messages (devices).
    #[must_use]
    pub const fn c2d(mut self, c2d: bool) -> Self {
        self.c2d = c2d;
        self
    }

    /// Subscribes to module inputs (modules).
    #[must_use]
    pub const fn inputs(mut self, inputs: bool) -> Self {
        self.inputs = inputs;
        self
    }

    /// Subscribes to twin responses and desired-property patches.
    #[must_use]
    pub const fn twin(mut self, twin: bool) -> Self {
        self.twin = twin;
        self
    }

    /// Subscribes to direct methods.
    #[must_use]
    pub const fn methods(mut self, methods: bool) -> Self {
        self.methods = methods;
        self
    }
}

/// Proactive SAS renewal: the session reconnects with a fresh token before the hub drops it.
///
/// The reconnect is due at a random point between `(at_percent - jitter_percent)` % and
/// `at_percent` % of the token's remaining lifetime (measured at CONNACK), so a fleet that
/// connected together does not renew together. Before reconnecting, the session stops sending
/// and waits (up to [`SessionConfig::drain_timeout`]) for the hub to acknowledge what is in
/// flight, so a renewal normally duplicates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewal {
    /// When to renew, in percent of the token lifetime (default 80, as the C SDK's
    /// `SAS_REFRESH_MULTIPLIER`); values above 100 count as 100.
    pub at_percent: u8,
    /// How much earlier a renewal may randomly be, in percent of the lifetime (default 10).
    pub jitter_percent: u8,
    /// Lower bound of the time between a connect and its renewal (default 1 s), so a token that
    /// is already (nearly) expired cannot cause a reconnect loop.
    pub min_interval: Duration,
}

impl Default for Renewal {
    fn default() -> Self {
        Self {
            at_percent: 80,
            jitter_percent: 10,
            min_interval: Duration::from_secs(1),
        }
    }
}

/// Setters, so a policy is built from a preset (`Renewal::default()`) outside this crate.
impl Renewal {
    /// When to renew, in percent of the token lifetime.
    #[must_use]
    pub const fn at_percent(mut self, at_percent: u8) -> Self {
        self.at_percent = at_percent;
        self
    }

    /// How much earlier a renewal may randomly be, in percent of the lifetime.
    #[must_use]
    pub const fn jitter_percent(mut self, jitter_percent: u8) -> Self {
        self.jitter_percent = jitter_percent;
        self
    }

    /// Lower bound of the time between a connect and its renewal.
    #[must_use]
    pub const fn min_interval(mut self, min_interval: Duration) -> Self {
        self.min_interval = min_interval;
        self
    }
}

/// Reconnect policy: exponential backoff with jitter.
///
/// The n-th consecutive failure waits `min(base * 2^(n-1), max)` plus a random jitter of up to
/// `max(max_jitter, a quarter of that delay)` (the formula of `dps_core::retry`). A connection
/// that stayed up for [`reset_after`](Self::reset_after) resets the count, so a hub that drops
/// the device right after accepting it (a duplicate client elsewhere) still meets growing
/// delays instead of a reconnect storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// First delay (default 1 s).
    pub base: Duration,
    /// Largest delay before jitter (default 60 s).
    pub max: Duration,
    /// Smallest jitter bound (default 1 s).
    pub max_jitter: Duration,
    /// Give up after this many consecutive failed attempts (default: never).
    pub max_attempts: Option<u32>,
    /// A connection up at least this long resets the failure count (default 60 s).
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_jitter: Duration::from_secs(1),
            max_attempts: None,
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Setters, so a policy is built from a preset (`Backoff::default()`) outside this crate.
impl Backoff {
    /// First delay.
    #[must_use]
    pub const fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Largest delay before jitter.
    #[must_use]
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Smallest jitter bound.
    #[must_use]
    pub const fn max_jitter(mut self, max_jitter: Duration) -> Self {
        self.max_jitter = max_jitter;
        self
    }

    /// Give up after this many consecutive failed attempts (`None`: never).
    #[must_use]
    pub const fn max_attempts(mut self, max_attempts: Option<u32>) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// A connection up at least this long resets the failure count.
    #[must_use]
    pub const fn reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }
}

/// An optional heartbeat: a small telemetry message sent at a fixed interval while connected,
/// marked by an application property, so a back end can tell a live device from a silent one
/// (the identity registry's heartbeat pattern; `connectionState` is not meant for that).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Time between heartbeats.
    pub interval: Duration,
    /// The marking property's key (default `heartbeat`).
    pub key: String,
    /// The marking property's value (default `true`).
    pub value: String,
}

impl Heartbeat {
    /// A heartbeat every `interval`, marked `heartbeat=true`, with an empty body.
    #[must_use]
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            key: "heartbeat".into(),
            value: "true".into(),
        }
    }

    /// Marks heartbeats with `key=value` instead.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.key = key.into();
        self.value = value.into();
        self
    }
}

/// The identity, features, limits and timers of a [`HubSession`](super::HubSession).
///
/// ```
/// use std::time::Duration;
/// use dps_core::hub::{Features, SessionConfig};
///
/// let config = SessionConfig::device("my-device")
///     .features(Features::ALL.c2d(false))
///     .queue_capacity(10_000)
///     .request_timeout(Duration::from_secs(10));
/// assert_eq!(config.max_in_flight, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The device id.
    pub device_id: String,
    /// The module id, for a module identity.
    pub module_id: Option<String>,
    /// What to subscribe to.
    pub features: Features,
    /// Telemetry messages accepted but not yet acknowledged (queued or in flight), at most
    /// (default 1000). Beyond it [`send_telemetry`](super::HubSession::send_telemetry) fails at
    /// once with [`SendError::QueueFull`](super::SendError::QueueFull).
    pub queue_capacity: usize,
    /// Telemetry publishes awaiting PUBACK, at most (default 16; at least 1).
    pub max_in_flight: usize,
    /// Time to live of messages that set none (default: none, they wait as long as the session
    /// runs).
    pub default_ttl: Option<Duration>,
    /// MQTT keep-alive (default 240 s; at most 1177 s, the hub's limit).
    pub keep_alive: Duration,
    /// Proactive SAS renewal.
    pub renewal: Renewal,
    /// Reconnect policy.
    pub backoff: Backoff,
    /// How long a twin request may wait for its answer, counted from the call (default 30 s).
    pub request_timeout: Duration,
    /// How long to wait for SUBACK before dropping the connection (default 30 s).
    pub subscribe_timeout: Duration,
    /// How long the oldest publish may wait for its PUBACK before the connection is considered
    /// dead and replaced (default 60 s). This catches a silent connection long before the
    /// keep-alive would.
    pub ack_timeout: Duration,
    /// How long a renewal or a close waits for outstanding acknowledgements (default 5 s).
    pub drain_timeout: Duration,
    /// Re-read the twin after every connect and report how many desired versions were missed
    /// (default true; needs [`Features::twin`]).
    pub resync_twin: bool,
    /// The optional heartbeat.
    pub heartbeat: Option<Heartbeat>,
}

impl SessionConfig {
    /// A device identity with the defaults.
    #[must_use]
    pub fn device(device_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            module_id: None,
            features: Features::ALL,
            queue_capacity: 1000,
            max_in_flight: 16,
            default_ttl: None,
            keep_alive: Duration::from_secs(DEFAULT_KEEP_ALIVE_SECS as u64),
            renewal: Renewal::default(),
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(30),
            subscribe_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
            resync_twin: true,
            heartbeat: None,
        }
    }

    /// A module identity (`{device_id}/{module_id}`) with the defaults.
    #[must_use]
    pub fn module(device_id: impl Into<String>, module_id: impl Into<String>) -> Self {
        let mut config = Self::device(device_id);
        config.module_id = Some(module_id.into());
        config
    }

    /// Sets [`features`](Self::features).
    #[must_use]
    pub const fn features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// Sets [`queue_capacity`](Self::queue_capacity).
    #[must_use]
    pub const fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight).
    #[must_use]
    pub const fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Sets [`default_ttl`](Self::default_ttl).
    #[must_use]
    pub const fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Sets [`keep_alive`](Self::keep_alive) (capped at 1177 s).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive.min(Duration::from_secs(MAX_KEEP_ALIVE_SECS as u64));
        self
    }

    /// Sets [`renewal`](Self::renewal).
    #[must_use]
    pub const fn renewal(mut self, renewal: Renewal) -> Self {
        self.renewal = renewal;
        self
    }

    /// Sets [`backoff`](Self::backoff).
    #[must_use]
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    #[must_use]
    pub const fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`subscribe_timeout`](Self::subscribe_timeout).
    #[must_use]
    pub const fn subscribe_timeout(mut self, timeout: Duration) -> Self {
        self.subscribe_timeout = timeout;
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub const fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    #[must_use]
    pub const fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`resync_twin`](Self::resync_twin).
    #[must_use]
    pub const fn resync_twin(mut self, resync: bool) -> Self {
        self.resync_twin = resync;
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat).
    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Option<Heartbeat>) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Whether the identity is a module.
    #[must_use]
    pub const fn is_module(&self) -> bool {
        self.module_id.is_some()
    }
}
