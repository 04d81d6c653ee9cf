//! The telemetry workload of this SDK's client, shared by `loadgen` and `allocs_e2e`: the
//! message every client sends and the window it keeps in flight.

use std::collections::VecDeque;

use hub_client::{HubClient, Message, SendError, SendReceipt};

use crate::fixtures::with_typical_properties;

/// The telemetry message of every client: a 256-byte payload with
/// [the benchmarks' properties](crate::fixtures::with_typical_properties) and a message id each.
/// Its building is counted, as the raw client's topic is.
#[must_use]
pub fn sdk_message(payload: &bytes::Bytes, n: usize) -> Message {
    with_typical_properties(Message::new(payload.clone()), format!("msg-{n:06}"))
}

/// Sends messages `first..first + count` keeping `window` in flight, as the raw client does:
/// queue with [`HubClient::try_send`] while the window has room, then wait for the oldest
/// receipt. Returns how many were acknowledged and the errors of the others.
///
/// The receipts wait in a queue, oldest first (the hub acknowledges in order): a stream
/// combinator such as `buffer_unordered` would allocate a task per message and wake it
/// through its own waker, costs of the harness rather than of the SDK.
pub async fn send_windowed(
    client: &HubClient,
    payload: &bytes::Bytes,
    first: usize,
    count: usize,
    window: usize,
) -> (usize, Vec<SendError>) {
    let window = window.max(1);
    let mut receipts: VecDeque<SendReceipt> = VecDeque::with_capacity(window);
    let (mut next, mut acknowledged, mut errors) = (0, 0, Vec::new());
    while next < count || !receipts.is_empty() {
        while next < count && receipts.len() < window {
            match client.try_send(sdk_message(payload, first + next)) {
                Ok(receipt) => receipts.push_back(receipt),
                // The window is within the client's queue: a full queue is an error here.
                Err(error) => errors.push(error),
            }
            next += 1;
        }
        if let Some(oldest) = receipts.pop_front() {
            match oldest.await {
                Ok(()) => acknowledged += 1,
                Err(error) => errors.push(error),
            }
        }
    }
    (acknowledged, errors)
}
