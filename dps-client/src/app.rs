//! The application's side of a registration: log what happens, keep the outcome.

use std::sync::Arc;

use dps_core::Timestamp;
use dps_core::dps::Registration;
use dps_core::dps::registration::{Event, Outcome};
use dps_runtime::{Application, Shared};

/// Keeps the outcome of one registration.
#[derive(Debug, Default)]
pub(crate) struct DpsApp {
    pub(crate) outcome: Option<Outcome>,
}

impl Application<Registration> for DpsApp {
    fn on_event(
        &mut self,
        _: &mut Registration,
        _: Timestamp,
        event: Event,
        _: &Arc<Shared<Registration, Self>>,
    ) {
        match event {
            Event::RequestSent { kind, rid } => tracing::debug!(?kind, rid, "request sent"),
            Event::Assigning {
                operation_id,
                retry_in,
            } => {
                tracing::debug!(operation_id = %operation_id, ?retry_in, "assigning");
            }
            Event::Retrying {
                reason,
                attempt,
                retry_in,
            } => {
                tracing::info!(%reason, attempt, ?retry_in, "retrying");
            }
            Event::Ignored { reason, rid } => {
                let rid = rid.as_deref().unwrap_or("none");
                tracing::warn!(%reason, rid, "ignored a message");
            }
            Event::Finished(outcome) => {
                match &outcome {
                    Ok(assignment) => tracing::info!(
                        hub = assignment.assigned_hub(),
                        device_id = assignment.device_id(),
                        "assigned"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "registration ended without an assignment");
                    }
                }
                self.outcome = Some(outcome);
            }
            other => tracing::debug!(?other, "event"),
        }
    }
}
