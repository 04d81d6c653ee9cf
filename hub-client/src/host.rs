//! What the client's handles reach through: a hub session driven on its own, or the session
//! inside the device lifecycle ([`Device`]). One [`HubClient`](crate::HubClient) type serves
//! both, through the object-safe [`Core`].

use std::sync::Arc;

use bytes::Bytes;
use dps_core::Timestamp;
use dps_core::device::Device;
use dps_core::hub::{Delivery, HubSession, Message, MessageId, SendError};
use dps_core::mqtt::Machine;
use dps_runtime::{Application, Shared};
use tokio::sync::oneshot;

use crate::app::HubApp;
use crate::completion::Accept;
use crate::method::Responder;

/// The hub side of a machine.
pub(crate) trait Host: Send {
    fn send_telemetry(&mut self, now: Timestamp, message: Message) -> Result<MessageId, SendError>;
    fn pending_telemetry(&self) -> usize;
    /// The live hub session; `None` while the device provisions.
    fn session(&mut self) -> Option<&mut HubSession>;
    fn close(&mut self, now: Timestamp);
}

impl Host for HubSession {
    fn send_telemetry(&mut self, now: Timestamp, message: Message) -> Result<MessageId, SendError> {
        Self::send_telemetry(self, now, message)
    }

    fn pending_telemetry(&self) -> usize {
        Self::pending_telemetry(self)
    }

    fn session(&mut self) -> Option<&mut HubSession> {
        Some(self)
    }

    fn close(&mut self, now: Timestamp) {
        Self::close(self, now);
    }
}

impl Host for Device {
    fn send_telemetry(&mut self, now: Timestamp, message: Message) -> Result<MessageId, SendError> {
        Self::send_telemetry(self, now, message)
    }

    fn pending_telemetry(&self) -> usize {
        Self::pending_telemetry(self)
    }

    fn session(&mut self) -> Option<&mut HubSession> {
        self.hub()
    }

    fn close(&mut self, now: Timestamp) {
        Self::close(self, now);
    }
}

/// An application state that holds the hub client's side.
pub(crate) trait HasHub {
    fn hub_app(&mut self) -> &mut HubApp;
}

impl HasHub for HubApp {
    fn hub_app(&mut self) -> &mut HubApp {
        self
    }
}

/// A shared machine with a hub side, whatever the machine.
pub(crate) trait Core: Accept + Responder + Send + Sync + 'static {
    /// Runs `f` on the hub side at the current time, then wakes the driver.
    fn with_hub(&self, f: &mut dyn FnMut(&mut dyn Host, &mut HubApp, Timestamp));
    /// Runs `f` on the hub side without waking the driver (reads).
    fn read_hub(&self, f: &mut dyn FnMut(&mut dyn Host, &mut HubApp));
}

impl<M, A> Core for Shared<M, A>
where
    M: Machine + Host + Send + 'static,
    A: Application<M> + HasHub,
{
    fn with_hub(&self, f: &mut dyn FnMut(&mut dyn Host, &mut HubApp, Timestamp)) {
        self.with(|inner, now| f(&mut inner.machine, inner.app.hub_app(), now));
    }

    fn read_hub(&self, f: &mut dyn FnMut(&mut dyn Host, &mut HubApp)) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        f(&mut inner.machine, inner.app.hub_app());
    }
}

impl dyn Core {
    /// [`with_hub`](Core::with_hub) with a result.
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut dyn Host, &mut HubApp, Timestamp) -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        self.with_hub(&mut |host, app, now| {
            if let Some(f) = f.take() {
                out = Some(f(host, app, now));
            }
        });
        out.expect("with_hub runs its closure exactly once")
    }

    /// [`read_hub`](Core::read_hub) with a result.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&mut dyn Host, &mut HubApp) -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        self.read_hub(&mut |host, app| {
            if let Some(f) = f.take() {
                out = Some(f(host, app));
            }
        });
        out.expect("read_hub runs its closure exactly once")
    }
}

impl<M, A> Accept for Shared<M, A>
where
    M: Machine + Host + Send + 'static,
    A: Application<M> + HasHub,
{
    fn accept(&self, delivery: Delivery) {
        // A delivery of an earlier connection (or of a session since replaced) is ignored by
        // the session: the hub redelivers it on the current one.
        self.with(|inner, now| {
            if let Some(session) = inner.machine.session() {
                session.accept(now, delivery);
            }
        });
    }
}

impl<M, A> Responder for Shared<M, A>
where
    M: Machine + Host + Send + 'static,
    A: Application<M> + HasHub,
{
    fn respond(
        &self,
        rid: &str,
        status: u16,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Result<(), SendError>>, SendError> {
        let (tx, rx) = oneshot::channel();
        self.with(|inner, now| {
            let session = inner.machine.session().ok_or(SendError::Closed)?;
            let id = session.respond_method(now, rid, status, payload)?;
            inner.app.hub_app().responses.insert(id, tx);
            Ok::<_, SendError>(())
        })?;
        Ok(rx)
    }
}

/// The handles a delivery needs to reach its machine again, built once per event.
pub(crate) fn back_refs<S: Core>(
    shared: &Arc<S>,
) -> (std::sync::Weak<dyn Accept>, Arc<dyn Responder>) {
    let weak: std::sync::Weak<S> = Arc::downgrade(shared);
    let responder: Arc<dyn Responder> = Arc::clone(shared) as Arc<dyn Responder>;
    (weak, responder)
}
