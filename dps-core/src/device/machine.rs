//! The lifecycle machine: one [`Registration`] or one [`HubSession`] at a time, behind the
//! [`Machine`] contract, with the re-provisioning rules on top.

use alloc::collections::VecDeque;
use alloc::string::String;
use core::time::Duration;

use super::policy::{
    CredentialSlot, DeviceConfig, DeviceStopReason, LifecycleEvent, ReprovisionReason, Source,
};
use super::record::{AssignmentRecord, StoreAction};
use super::renewal::{self, Issuer, RENEWAL_ID_BASE, RenewError, Reply};
use crate::dps::registration::{self, Registration, RegistrationError};
use crate::hub::credentials::CREDENTIALS_RESPONSE_SUBSCRIPTION;
use crate::hub::message::Message;
use crate::hub::session::{
    self, ConnectionState, Handoff, HubSession, MessageId, SendError, StopReason,
};
use crate::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine, PublishId, Transmit,
};
use crate::retry::JitterSource;
use crate::time::{Timer as TimerKind, TimerTable, Timestamp};

/// What the device reports: its own steps, and everything the inner machines report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A lifecycle step.
    Lifecycle(LifecycleEvent),
    /// An event of the DPS registration in progress.
    Dps(registration::Event),
    /// An event of the hub session.
    Hub(session::Event),
}

/// Where the next [`Transmit::Connect`] goes, and with which credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// The DPS endpoint.
    Dps {
        /// The credential to present.
        credential: CredentialSlot,
    },
    /// The assigned hub.
    Hub {
        /// The hub host name.
        hub: String,
        /// The device id.
        device_id: String,
        /// The credential to present.
        credential: CredentialSlot,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The identity-recovery wait before a DPS registration.
    Recover,
    /// The assignment reaches its largest age.
    Age,
    /// The certificate is due for renewal.
    Renew,
    /// A deferred credentials request is sent again.
    RenewRetry,
}

impl TimerKind for Timer {
    const ALL: &'static [Self] = &[Self::Recover, Self::Age, Self::Renew, Self::RenewRetry];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one inner machine per device, moved rarely"
)]
enum Inner {
    Dps(Registration),
    Hub(HubSession),
    Waiting,
    Stopped,
}

/// The device lifecycle machine. Drive it like any [`Machine`]; before performing a
/// [`Transmit::Connect`], read [`target`](Self::target); after every input also drain
/// [`poll_store`](Self::poll_store) into the [`AssignmentStore`](super::AssignmentStore).
#[derive(Debug)]
pub struct Device {
    config: DeviceConfig,
    inner: Inner,
    record: Option<AssignmentRecord>,
    /// Index into `config.credentials` of the credential in use.
    slot: usize,
    /// Consecutive re-provisionings since the last hub connection.
    recoveries: u32,
    /// Whether the current record came from DPS with no hub connection since.
    fresh_from_dps: bool,
    /// The first failed hub attempt since the last connection.
    unreachable_since: Option<Timestamp>,
    /// Unix seconds minus monotonic seconds, to place the record's age on the timer clock.
    unix_at_zero: u64,
    seed: u64,
    jitter: JitterSource,
    /// The CSR of the renewal in progress: sent over the hub, or carried by the next DPS
    /// registration.
    csr: Option<String>,
    /// The `$rid` of the credentials request in progress over the hub, once sent.
    renew_rid: Option<u64>,
    next_rid: u64,
    /// Whether the credentials filter went out on the current hub connection.
    credentials_subscribed: bool,
    /// Telemetry waiting for the next hub session: queued while provisioning, or left
    /// unacknowledged by the previous session.
    parked: Handoff,
    timers: TimerTable<Timer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    store: VecDeque<StoreAction>,
}

impl Device {
    /// Starts at `now` (the wall clock being `unix_now`) with the record the driver loaded,
    /// if any. A valid, young enough record connects to its hub with no DPS call. `seed` feeds
    /// every jitter (a random one per device; a fixed one in tests).
    #[must_use]
    pub fn new(
        config: DeviceConfig,
        now: Timestamp,
        unix_now: u64,
        loaded: Option<AssignmentRecord>,
        seed: u64,
    ) -> Self {
        let mut this = Self {
            config,
            inner: Inner::Waiting,
            record: None,
            slot: 0,
            recoveries: 0,
            fresh_from_dps: false,
            unreachable_since: None,
            unix_at_zero: unix_now.saturating_sub(now.as_duration().as_secs()),
            seed,
            jitter: JitterSource::new(seed),
            csr: None,
            renew_rid: None,
            next_rid: 1,
            credentials_subscribed: false,
            parked: Handoff::default(),
            timers: TimerTable::new(now),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            store: VecDeque::new(),
        };
        match loaded {
            Some(record) if !this.too_old(&record, unix_now) => {
                this.lifecycle(LifecycleEvent::Provisioned {
                    source: Source::Cache,
                    hub: record.assigned_hub.clone(),
                    device_id: record.device_id.clone(),
                });
                this.start_hub(now, record);
            }
            Some(_) => this.reprovision_now(now, ReprovisionReason::AssignmentTooOld, None),
            None => this.reprovision_now(now, ReprovisionReason::NoCache, None),
        }
        this
    }

    /// Where the pending [`Transmit::Connect`] goes; `None` while waiting or stopped.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        let credential = self.credential();
        match (&self.inner, &self.record) {
            (Inner::Dps(_), _) => Some(Target::Dps { credential }),
            (Inner::Hub(_), Some(r)) => Some(Target::Hub {
                hub: r.assigned_hub.clone(),
                device_id: r.device_id.clone(),
                credential,
            }),
            _ => None,
        }
    }

    /// The hub session, while there is one: twin and method calls go through it, then drain
    /// this machine (which collects what the session produced). Send telemetry with
    /// [`send_telemetry`](Self::send_telemetry) instead, which also queues while there is no
    /// session.
    pub fn hub(&mut self) -> Option<&mut HubSession> {
        match &mut self.inner {
            Inner::Hub(s) => Some(s),
            _ => None,
        }
    }

    /// Queues a telemetry message with the rules of [`HubSession::send_telemetry`]. Without a
    /// hub session (provisioning, waiting to provision again) it waits for the next one; the
    /// telemetry a session leaves unacknowledged when the device moves to another hub, another
    /// credential or provisions again goes on with the next session, ids unchanged. Only a
    /// stop of the device abandons it ([`session::Event::TelemetryAbandoned`]).
    ///
    /// # Errors
    /// As [`HubSession::send_telemetry`]; [`SendError::Closed`] once the device stopped.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<MessageId, SendError> {
        let now = self.timers.advance(now);
        match &mut self.inner {
            Inner::Hub(s) => s.send_telemetry(now, message),
            Inner::Stopped => Err(SendError::Closed),
            Inner::Dps(_) | Inner::Waiting => {
                self.parked
                    .send_telemetry(now, message, &self.config.session)
            }
        }
    }

    /// Telemetry accepted and not yet acknowledged by the hub, in the session or waiting for
    /// the next one.
    #[must_use]
    pub fn pending_telemetry(&self) -> usize {
        match &self.inner {
            Inner::Hub(s) => s.pending_telemetry(),
            _ => self.parked.len(),
        }
    }

    /// The current assignment, when there is one.
    #[must_use]
    pub const fn record(&self) -> Option<&AssignmentRecord> {
        self.record.as_ref()
    }

    /// The next store action for the driver.
    pub fn poll_store(&mut self) -> Option<StoreAction> {
        self.store.pop_front()
    }

    /// The application asks to provision again.
    pub fn reprovision(&mut self, now: Timestamp) {
        let now = self.timers.advance(now);
        if !matches!(self.inner, Inner::Stopped) {
            self.reprovision_now(now, ReprovisionReason::Requested, None);
        }
    }

    /// The driver read the validity of the device certificate (Unix seconds): schedules its
    /// renewal when a [`CertificateRenewal`](super::CertificateRenewal) is configured.
    pub fn certificate_validity(&mut self, now: Timestamp, not_before: u64, not_after: u64) {
        let now = self.timers.advance(now);
        let Some(policy) = self.config.renewal else {
            return;
        };
        let at = policy.renew_at(not_before, not_after, &mut self.jitter);
        let in_secs = at.saturating_sub(self.unix_at_zero);
        let at = Timestamp::from_duration(Duration::from_secs(in_secs)).max(now);
        self.timers.set(Timer::Renew, at);
    }

    /// Renews the certificate with `csr` (base64 DER, generated by the driver for a new key):
    /// over the hub when it offers it and the device is connected, by provisioning again
    /// otherwise.
    pub fn renew_with_csr(&mut self, now: Timestamp, csr: String) -> Result<(), RenewError> {
        let now = self.timers.advance(now);
        renewal::check_csr(&csr)?;
        if matches!(self.inner, Inner::Stopped) {
            return Err(RenewError::Stopped);
        }
        self.timers.stop(Timer::Renew);
        self.csr = Some(csr);
        // Over the hub only with a policy that says so: its replies need the credentials
        // filter, which only such a policy subscribes.
        let over_hub = self.config.renewal.is_some_and(|r| r.over_hub);
        if over_hub && matches!(&self.inner, Inner::Hub(_)) {
            self.send_renewal();
        } else {
            self.reprovision_now(now, ReprovisionReason::CertificateRenewal, None);
        }
        Ok(())
    }

    /// Stops the device for good. Connected to the hub, the session first sends what is queued
    /// (up to its drain timeout), as [`HubSession::close`] does.
    pub fn close(&mut self, now: Timestamp) {
        let now = self.timers.advance(now);
        match &mut self.inner {
            Inner::Stopped => {}
            Inner::Hub(s) if s.is_connected() => {
                s.close(now);
                self.pump(now);
            }
            _ => self.stop(DeviceStopReason::Closed),
        }
    }

    fn credential(&self) -> CredentialSlot {
        self.config
            .credentials
            .get(self.slot)
            .copied()
            .unwrap_or(CredentialSlot(0))
    }

    fn too_old(&self, record: &AssignmentRecord, unix_now: u64) -> bool {
        self.config
            .max_assignment_age
            .is_some_and(|max| record.age(unix_now) >= max)
    }

    fn lifecycle(&mut self, event: LifecycleEvent) {
        self.events.push_back(Event::Lifecycle(event));
    }

    /// Drops the inner machine, closing its connection when it has one. A hub session hands
    /// its unacknowledged telemetry over to the next one.
    fn drop_inner(&mut self) {
        let finished = match &self.inner {
            Inner::Dps(r) => r.is_finished(),
            Inner::Hub(s) => s.is_stopped(),
            Inner::Waiting | Inner::Stopped => true,
        };
        if !finished {
            self.transmits.push_back(Transmit::Disconnect);
        }
        if let Inner::Hub(mut s) = core::mem::replace(&mut self.inner, Inner::Waiting) {
            self.park(&mut s);
            // Its own disconnect is the one above; what it failed (twin requests, method
            // responses) still reaches the application. Its end is not the device's.
            while s.poll_transmit().is_some() {}
            while let Some(event) = s.poll_event() {
                if !matches!(
                    event,
                    session::Event::ConnectionState(_) | session::Event::Stopped(_)
                ) {
                    self.events.push_back(Event::Hub(event));
                }
            }
        }
    }

    /// Takes the unacknowledged telemetry of `session` for the next one.
    fn park(&mut self, session: &mut HubSession) {
        let handoff = session.hand_off();
        debug_assert_eq!(self.parked.len(), 0, "one session at a time");
        self.parked = handoff;
    }

    fn stop(&mut self, reason: DeviceStopReason) {
        self.drop_inner();
        self.inner = Inner::Stopped;
        self.timers.stop_all();
        let abandoned: alloc::vec::Vec<MessageId> = self.parked.abandon().collect();
        for id in abandoned {
            self.events
                .push_back(Event::Hub(session::Event::TelemetryAbandoned { id }));
        }
        self.lifecycle(LifecycleEvent::Stopped(reason));
    }

    fn start_hub(&mut self, now: Timestamp, record: AssignmentRecord) {
        self.drop_inner();
        let mut config = self.config.session.clone();
        config.device_id.clone_from(&record.device_id);
        config.backoff.max_attempts = Some(self.config.hub_attempts.max(1));
        if let Some(max) = self.config.max_assignment_age {
            let expires = record.provisioned_at.saturating_add(max.as_secs());
            let in_secs = expires.saturating_sub(self.unix_at_zero);
            self.timers.set(
                Timer::Age,
                Timestamp::from_duration(Duration::from_secs(in_secs)).max(now),
            );
        }
        self.record = Some(record);
        self.unreachable_since = None;
        self.seed = self.seed.wrapping_add(1);
        let parked = core::mem::take(&mut self.parked);
        let mut session = HubSession::resume(config, now, self.seed, parked);
        session.keep_telemetry_on_stop();
        self.inner = Inner::Hub(session);
        self.pump(now);
    }

    /// Schedules a DPS registration: at once for the first since a hub connection, after the
    /// recovery backoff (or a larger DPS retry-after) otherwise.
    fn reprovision_now(
        &mut self,
        now: Timestamp,
        reason: ReprovisionReason,
        retry_after: Option<Duration>,
    ) {
        self.drop_inner();
        self.timers.stop(Timer::Age);
        self.recoveries = self.recoveries.saturating_add(1);
        let mut delay = self
            .config
            .recovery
            .delay(self.recoveries, &mut self.jitter);
        if let Some(after) = retry_after {
            delay = delay.max(after);
        }
        self.slot = 0;
        self.lifecycle(LifecycleEvent::Reprovisioning {
            reason,
            delay,
            attempt: self.recoveries,
        });
        self.timers.set(Timer::Recover, now + delay);
        if delay.is_zero() {
            self.start_dps(now);
        }
    }

    fn start_dps(&mut self, now: Timestamp) {
        self.timers.stop(Timer::Recover);
        self.seed = self.seed.wrapping_add(1);
        let mut config = self.config.registration.clone();
        if let Some(csr) = &self.csr {
            config = config.csr(csr.clone());
        }
        self.inner = Inner::Dps(Registration::new(config, now, self.seed));
        self.pump(now);
    }

    /// Sends the credentials request for the pending CSR when the session is connected; a
    /// disconnected session sends it at its next connection.
    fn send_renewal(&mut self) {
        let connected = matches!(&self.inner, Inner::Hub(s) if s.is_connected());
        let (Some(csr), Some(record), true) = (&self.csr, &self.record, connected) else {
            return;
        };
        let rid = self.next_rid;
        self.next_rid += 1;
        self.renew_rid = Some(rid);
        self.transmits
            .push_back(renewal::request(rid, &record.device_id, csr));
    }

    /// A publish on the credentials topic: acknowledged here, never seen by the session.
    fn on_credentials(&mut self, now: Timestamp, publish: &IncomingPublish) {
        if let Some(packet_id) = publish.packet_id {
            self.transmits.push_back(Transmit::Ack { packet_id });
        }
        let Some(rid) = self.renew_rid else { return };
        match renewal::parse_reply(&publish.topic, &publish.payload, rid) {
            None | Some(Reply::Accepted) => {}
            Some(Reply::Issued(chain)) => {
                self.renew_rid = None;
                self.csr = None;
                if let Some(record) = &mut self.record {
                    record.issued_certificate_chain = chain;
                    self.store.push_back(StoreAction::Save(record.clone()));
                }
                self.lifecycle(LifecycleEvent::CertificateRenewed { via: Issuer::Hub });
                // The driver installs the new certificate on that event; the connection moves
                // to it now, its in-flight telemetry sent again on the new one.
                if let Inner::Hub(s) = &mut self.inner {
                    s.reconnect();
                }
            }
            Some(Reply::AlreadyActive(retry_in)) => {
                self.renew_rid = None;
                self.timers.set(Timer::RenewRetry, now + retry_in);
                self.lifecycle(LifecycleEvent::RenewalDeferred { retry_in });
            }
            Some(Reply::Failed) => {
                // The hub will not issue: DPS issues with the same CSR (service-behaviour.md
                // §1.16).
                self.renew_rid = None;
                self.reprovision_now(now, ReprovisionReason::CertificateRenewal, None);
            }
        }
    }

    /// Moves to the next credential; false when there is none left.
    fn next_credential(&mut self) -> bool {
        if self.slot + 1 >= self.config.credentials.len() {
            return false;
        }
        let from = self.credential();
        self.slot += 1;
        let to = self.credential();
        self.lifecycle(LifecycleEvent::CredentialSwitched { from, to });
        true
    }

    /// Forwards the inner machine's output and applies the rules to its events.
    fn pump(&mut self, now: Timestamp) {
        loop {
            let event = match &mut self.inner {
                Inner::Dps(r) => {
                    while let Some(t) = r.poll_transmit() {
                        self.transmits.push_back(t);
                    }
                    r.poll_event().map(Event::Dps)
                }
                Inner::Hub(s) => {
                    let over_hub = self.config.renewal.is_some_and(|r| r.over_hub);
                    while let Some(t) = s.poll_transmit() {
                        self.transmits.push_back(match t {
                            // The credentials replies need their filter in the session's one
                            // SUBSCRIBE.
                            Transmit::Subscribe { mut filters } if over_hub => {
                                filters.push(CREDENTIALS_RESPONSE_SUBSCRIPTION.into());
                                self.credentials_subscribed = true;
                                Transmit::Subscribe { filters }
                            }
                            Transmit::Connect { clean_session } => {
                                self.credentials_subscribed = false;
                                Transmit::Connect { clean_session }
                            }
                            other => other,
                        });
                    }
                    s.poll_event().map(Event::Hub)
                }
                Inner::Waiting | Inner::Stopped => None,
            };
            let Some(event) = event else { return };
            match event {
                Event::Dps(registration::Event::Finished(outcome)) => {
                    self.events
                        .push_back(Event::Dps(registration::Event::Finished(outcome.clone())));
                    self.on_registered(now, outcome);
                }
                Event::Hub(session::Event::ConnectionState(state)) => {
                    self.events
                        .push_back(Event::Hub(session::Event::ConnectionState(state)));
                    self.on_hub_state(now, state);
                }
                Event::Hub(session::Event::Stopped(reason)) => {
                    self.events
                        .push_back(Event::Hub(session::Event::Stopped(reason)));
                    self.on_hub_stopped(now, reason);
                }
                other => self.events.push_back(other),
            }
        }
    }

    fn on_registered(&mut self, now: Timestamp, outcome: registration::Outcome) {
        self.inner = Inner::Waiting;
        match outcome {
            Ok(assignment) => {
                let unix = self.unix_at_zero + now.as_duration().as_secs();
                let record = AssignmentRecord::from_assignment(&assignment, unix);
                self.store.push_back(StoreAction::Save(record.clone()));
                self.lifecycle(LifecycleEvent::Provisioned {
                    source: Source::Dps,
                    hub: record.assigned_hub.clone(),
                    device_id: record.device_id.clone(),
                });
                self.fresh_from_dps = true;
                // A CSR in the registration template is the first issuance: one-shot, like a
                // renewal's.
                let first = self.config.registration.request.csr.take().is_some();
                if (self.csr.take().is_some() || first)
                    && !record.issued_certificate_chain.is_empty()
                {
                    self.lifecycle(LifecycleEvent::CertificateRenewed { via: Issuer::Dps });
                }
                self.start_hub(now, record);
            }
            Err(RegistrationError::Disabled { .. }) => {
                self.store.push_back(StoreAction::Clear);
                self.stop(DeviceStopReason::EnrollmentDisabled);
            }
            Err(
                RegistrationError::Unauthorized { .. }
                | RegistrationError::ConnectionRefused { .. },
            ) => {
                if self.next_credential() {
                    self.start_dps(now);
                } else {
                    self.stop(DeviceStopReason::CredentialsRefused);
                }
            }
            Err(RegistrationError::Unrecoverable) => self.stop(DeviceStopReason::Unrecoverable),
            Err(RegistrationError::Throttled { retry_after, .. }) => {
                self.reprovision_now(now, ReprovisionReason::ProvisioningFailed, retry_after);
            }
            Err(_) => self.reprovision_now(now, ReprovisionReason::ProvisioningFailed, None),
        }
    }

    fn on_hub_state(&mut self, now: Timestamp, state: ConnectionState) {
        match state {
            ConnectionState::Connected => {
                self.recoveries = 0;
                self.fresh_from_dps = false;
                self.unreachable_since = None;
                self.lifecycle(LifecycleEvent::Connected {
                    credential: self.credential(),
                });
                if self.config.renewal.is_some_and(|r| r.over_hub) && !self.credentials_subscribed {
                    // A session with no feature subscribes to nothing: the credentials filter
                    // goes out alone. Its SUBACK reaches the connected session, which ignores
                    // it.
                    self.credentials_subscribed = true;
                    self.transmits.push_back(Transmit::Subscribe {
                        filters: alloc::vec![CREDENTIALS_RESPONSE_SUBSCRIPTION.into()],
                    });
                }
                if self.csr.is_some() && self.timers.get(Timer::RenewRetry).is_none() {
                    self.send_renewal();
                }
            }
            ConnectionState::Disconnected { attempt, .. } if attempt > 0 => {
                let since = *self.unreachable_since.get_or_insert(now);
                if let Some(limit) = self.config.hub_unreachable_for {
                    let down = now.saturating_duration_since(since);
                    if down >= limit {
                        self.reprovision_now(
                            now,
                            ReprovisionReason::HubUnreachableFor { duration: down },
                            None,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn on_hub_stopped(&mut self, now: Timestamp, reason: StopReason) {
        if let Inner::Hub(mut s) = core::mem::replace(&mut self.inner, Inner::Waiting) {
            // Stopped already (its events are drained): this only takes its telemetry.
            self.park(&mut s);
        }
        match reason {
            StopReason::Refused { code } => {
                if self.next_credential() {
                    if let Some(record) = self.record.clone() {
                        self.start_hub(now, record);
                    }
                } else if self.fresh_from_dps {
                    // DPS just assigned this very identity and the hub still refuses it: the
                    // device is disabled on the hub (service-behaviour.md, CONNACK codes).
                    // Provisioning again would loop.
                    self.stop(DeviceStopReason::DeviceDisabled { code });
                } else {
                    self.store.push_back(StoreAction::Clear);
                    self.reprovision_now(now, ReprovisionReason::HubRefused { code }, None);
                }
            }
            StopReason::RetriesExhausted { .. } => {
                let attempts = self.config.hub_attempts;
                self.reprovision_now(now, ReprovisionReason::HubUnreachable { attempts }, None);
            }
            StopReason::Unrecoverable => self.stop(DeviceStopReason::Unrecoverable),
            _ => self.stop(DeviceStopReason::Closed),
        }
    }
}

macro_rules! forward {
    ($self:ident, $now:ident, $m:ident => $call:expr) => {{
        let $now = $self.timers.advance($now);
        match &mut $self.inner {
            Inner::Dps($m) => $call,
            Inner::Hub($m) => $call,
            Inner::Waiting | Inner::Stopped => return,
        }
        $self.pump($now);
    }};
}

impl Machine for Device {
    type Event = Event;

    fn handle_connected(&mut self, now: Timestamp, connected: Connected) {
        forward!(self, now, m => m.handle_connected(now, connected));
    }

    fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure) {
        forward!(self, now, m => m.handle_connect_failed(now, failure));
    }

    fn handle_subscribed(&mut self, now: Timestamp, granted: bool) {
        forward!(self, now, m => m.handle_subscribed(now, granted));
    }

    fn handle_publish(&mut self, now: Timestamp, publish: IncomingPublish) {
        if matches!(self.inner, Inner::Hub(_))
            && publish.topic.starts_with("$iothub/credentials/res/")
        {
            let now = self.timers.advance(now);
            self.on_credentials(now, &publish);
            return;
        }
        forward!(self, now, m => m.handle_publish(now, publish));
    }

    fn handle_puback(&mut self, now: Timestamp, id: PublishId) {
        if id.get() >= RENEWAL_ID_BASE {
            // The hub has the request; its answer comes on the credentials topic.
            return;
        }
        forward!(self, now, m => m.handle_puback(now, id));
    }

    fn handle_publish_failed(&mut self, now: Timestamp, id: PublishId) {
        if id.get() >= RENEWAL_ID_BASE {
            // Lost with the connection: sent again at the next connection.
            self.renew_rid = None;
            return;
        }
        forward!(self, now, m => m.handle_publish_failed(now, id));
    }

    fn handle_disconnected(&mut self, now: Timestamp, loss: ConnectionLoss) {
        forward!(self, now, m => m.handle_disconnected(now, loss));
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.timers.advance(now);
        if self.timers.is_expired(Timer::Recover, now) && matches!(self.inner, Inner::Waiting) {
            self.start_dps(now);
            return;
        }
        if self.timers.is_expired(Timer::Renew, now) {
            self.timers.stop(Timer::Renew);
            self.lifecycle(LifecycleEvent::CsrNeeded);
        }
        if self.timers.is_expired(Timer::RenewRetry, now) {
            self.timers.stop(Timer::RenewRetry);
            self.send_renewal();
        }
        if self.timers.is_expired(Timer::Age, now) && matches!(self.inner, Inner::Hub(_)) {
            self.reprovision_now(now, ReprovisionReason::AssignmentTooOld, None);
            return;
        }
        forward!(self, now, m => m.handle_timeout(now));
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        // The application may have called the session directly (through `hub()`) since the
        // last input: collect what that produced first.
        self.pump(self.timers.now());
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.pump(self.timers.now());
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let inner = match &self.inner {
            Inner::Dps(r) => r.poll_timeout(),
            Inner::Hub(s) => s.poll_timeout(),
            Inner::Waiting | Inner::Stopped => None,
        };
        let own = match &self.inner {
            Inner::Waiting => self.timers.get(Timer::Recover),
            Inner::Hub(_) => self.timers.get(Timer::Age),
            _ => None,
        };
        let renew = match &self.inner {
            Inner::Stopped => None,
            _ => [Timer::Renew, Timer::RenewRetry]
                .iter()
                .filter_map(|t| self.timers.get(*t))
                .min(),
        };
        [inner, own, renew].into_iter().flatten().min()
    }

    fn is_finished(&self) -> bool {
        matches!(self.inner, Inner::Stopped)
    }
}
