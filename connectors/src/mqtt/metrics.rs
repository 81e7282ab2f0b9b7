//! Counters of one broker connection. Every message that does not end up in a stream is counted
//! under a reason: silent loss is a bug.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::refusal::Reason;

#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub connected: AtomicBool,
    /// The broker confirmed the subscriptions of the current connection.
    pub subscribed: AtomicBool,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    /// Messages received from the broker (redeliveries included).
    pub messages_received: AtomicU64,
    /// Messages whose records are durable in every stream they route to.
    pub messages_stored: AtomicU64,
    pub bytes_stored: AtomicU64,
    /// Records appended (a message routed to two streams makes two).
    pub records_appended: AtomicU64,
    /// Larger than the connection's `max_message_size_bytes`.
    pub rejected_oversized: AtomicU64,
    /// No route matches the topic, or the route names a stream that does not exist.
    pub rejected_unroutable: AtomicU64,
    /// Refused by the stream for good: larger than the stream, or not encodable as a record.
    pub rejected_invalid: AtomicU64,
    /// QoS 0 messages dropped because their stream refused them for now (full, or a storage
    /// error); QoS 1/2 messages wait instead (`backpressure_waits`).
    pub dropped_qos0: AtomicU64,
    /// Messages dropped because their stream was full and their route says `on_full = "drop"`.
    pub dropped_full: AtomicU64,
    /// Messages stored in their route's overflow stream because their stream was full.
    pub diverted: AtomicU64,
    /// Times a QoS 1/2 message had to wait because its stream refused it (backpressure).
    pub backpressure_waits: AtomicU64,
    /// Acks not sent because the connection they belonged to was gone; the broker redelivers.
    pub stale_acks: AtomicU64,
}

/// A point-in-time copy, for logs and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestSnapshot {
    pub connected: bool,
    pub connects: u64,
    pub disconnects: u64,
    pub messages_received: u64,
    pub messages_stored: u64,
    pub bytes_stored: u64,
    pub records_appended: u64,
    pub rejected_oversized: u64,
    pub rejected_unroutable: u64,
    pub rejected_invalid: u64,
    pub dropped_qos0: u64,
    pub dropped_full: u64,
    pub diverted: u64,
    pub backpressure_waits: u64,
    pub stale_acks: u64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl IngestMetrics {
    /// Counts a message that was not stored, under its reason.
    pub(super) fn count_refused(&self, reason: Reason) {
        inc(match reason {
            Reason::Oversized => &self.rejected_oversized,
            Reason::Unroutable => &self.rejected_unroutable,
            Reason::Invalid => &self.rejected_invalid,
            Reason::DroppedQos0 => &self.dropped_qos0,
            Reason::StreamFull => &self.dropped_full,
        });
    }

    pub fn snapshot(&self) -> IngestSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connects: g(&self.connects),
            disconnects: g(&self.disconnects),
            messages_received: g(&self.messages_received),
            messages_stored: g(&self.messages_stored),
            bytes_stored: g(&self.bytes_stored),
            records_appended: g(&self.records_appended),
            rejected_oversized: g(&self.rejected_oversized),
            rejected_unroutable: g(&self.rejected_unroutable),
            rejected_invalid: g(&self.rejected_invalid),
            dropped_qos0: g(&self.dropped_qos0),
            dropped_full: g(&self.dropped_full),
            diverted: g(&self.diverted),
            backpressure_waits: g(&self.backpressure_waits),
            stale_acks: g(&self.stale_acks),
        }
    }
}
