//! The decisions of one export, without I/O: given what happened (a batch was read, the sink
//! confirmed or refused one, a wait is over, a probe answered, ...), what to start next and
//! what the status says. The loop in `task.rs` runs the actions concurrently and reports their
//! outcomes back, one event at a time.
//!
//! The order it enforces:
//! - Up to `max_in_flight_batches` batches are with the sink at once (the [`Window`]); batch k
//!   is first sent only after the sink confirmed every batch up to k − limit, and one more
//!   batch is read ahead.
//! - The checkpoint moves only over the contiguous prefix of settled batches (confirmed,
//!   skipped, or removed by retention), so a crash sends at most the window again.
//! - A refused batch waits out one capped backoff shared by the export; meanwhile nothing new
//!   is sent. When the wait is over only the oldest refused batch goes (one request per
//!   backoff step, not one per batch); once it is confirmed the others follow and the window
//!   fills again.
//! - While the sink is unreachable (the reachability probe right after the failure says so),
//!   it is probed every [`PROBE_INTERVAL`]: the first probe that reaches it ends the wait,
//!   whatever is left of the backoff.

mod answers;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use super::status::{ExportState, ExportStatus};
use super::window::Window;
use super::{Batch, Sink, SinkError, SinkLimits};
use crate::backoff::Backoff;
use crate::definition::{ExportDefinition, PermanentErrorPolicy};
use crate::error::Error;
use crate::record::Record;
pub use retry::PROBE_INTERVAL;
use retry::{Retry, BACKOFF_MAX, BACKOFF_MIN};

const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(1000);
/// Before reading again after a read failed for another reason than retention or deletion.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What one read asks for: the definition's batch settings within the sink's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub max_records: usize,
    pub max_bytes: u64,
    /// How long a read waits for a full batch before taking what there is.
    pub interval: Duration,
}

impl BatchShape {
    pub fn new(def: &ExportDefinition, limits: SinkLimits) -> Self {
        BatchShape {
            max_records: def
                .batch_size
                .map_or(limits.max_records, |b| (b as usize).min(limits.max_records))
                .max(1),
            max_bytes: def
                .batch_bytes
                .map_or(limits.max_bytes, |b| b.min(limits.max_bytes)),
            interval: def
                .batch_interval_ms
                .map_or(DEFAULT_BATCH_INTERVAL, Duration::from_millis),
        }
    }
}

/// The outcome of an [`Action`] started earlier.
pub enum Event {
    BatchRead(Batch),
    ReadFailed(Error),
    Acquired,
    /// The sink confirmed the batch sent from `from`.
    Sent {
        from: u64,
    },
    SendFailed {
        from: u64,
        error: SinkError,
    },
    /// The [`Action::Wait`] is over.
    Waited,
    /// The [`Action::Probe`] is over: whether the sink took a connection, and how long the
    /// probe took (at most [`PROBE_INTERVAL`]: a slower one counts as unreachable).
    Probed {
        reachable: bool,
        took: Duration,
    },
    Committed,
}

/// Something to start. Each runs beside the others and reports its [`Event`] when done;
/// [`Action::Commit`] alone is awaited before anything else happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// After `after`, read (and encode) the batch from `from`; report [`Event::BatchRead`] or
    /// [`Event::ReadFailed`]. One read at a time.
    StartRead { from: u64, after: Duration },
    /// Wait for the bandwidth to send `bytes`; report [`Event::Acquired`].
    Acquire { bytes: u64 },
    /// Send [`ExportMachine::batch`]`(from)`; report [`Event::Sent`] or [`Event::SendFailed`].
    Send { from: u64 },
    /// Report [`Event::Waited`] after this long, instead of any earlier wait.
    Wait(Duration),
    /// After `after`, probe whether the sink is reachable (if the sink can tell), instead of
    /// any earlier probe; report [`Event::Probed`].
    Probe { after: Duration },
    /// Store this checkpoint; report [`Event::Committed`] before any other event.
    Commit(u64),
    /// Nothing more until shutdown; the status says why.
    Pause,
    /// The export is over (stopped, or disabled).
    Stop,
}

/// A batch read and not yet in the window.
struct Ready {
    from: u64,
    end: u64,
    batch: Batch,
    /// Its bandwidth is granted.
    acquired: bool,
}

pub struct ExportMachine {
    status: ExportStatus,
    policy: PermanentErrorPolicy,
    disabled: bool,
    max_record_bytes: u64,
    max_in_flight: usize,
    /// Only to encode a request body again after records were taken out of a batch.
    sink: Arc<dyn Sink>,
    window: Window,
    /// Where the next read starts: the end of everything read so far.
    read_from: u64,
    reading: bool,
    ready: Option<Ready>,
    acquiring: bool,
    retry: Retry,
    backoff: Backoff,
    /// The checkpoint last asked for; `committing`: its commit is under way.
    commit_asked: u64,
    committing: bool,
    done: bool,
}

impl ExportMachine {
    pub fn new(stream: &str, def: &ExportDefinition, sink: Arc<dyn Sink>) -> Self {
        let status = ExportStatus {
            stream: stream.to_owned(),
            identifier: def.identifier.clone(),
            kind: def.kind.name().to_string(),
            priority: def.priority,
            state: if def.disabled {
                ExportState::Disabled
            } else {
                ExportState::Starting
            },
            ..ExportStatus::default()
        };
        ExportMachine {
            status,
            policy: def.on_permanent_error,
            disabled: def.disabled,
            max_record_bytes: sink.limits().max_record_bytes,
            max_in_flight: def.in_flight_limit(),
            sink,
            window: Window::new(0),
            read_from: 0,
            reading: false,
            ready: None,
            acquiring: false,
            retry: Retry::Idle,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            commit_asked: 0,
            committing: false,
            done: false,
        }
    }

    pub fn status(&self) -> &ExportStatus {
        &self.status
    }

    /// The batch to send on [`Action::Send`].
    pub fn batch(&self, from: u64) -> Option<Arc<Batch>> {
        self.window.batch(from)
    }

    /// Begins at the stored checkpoint (or the definition's start).
    pub fn start(&mut self, checkpoint: u64) -> Vec<Action> {
        self.window = Window::new(checkpoint);
        self.read_from = checkpoint;
        self.commit_asked = checkpoint;
        self.status.checkpoint = checkpoint;
        if self.disabled {
            self.done = true;
            return vec![Action::Stop];
        }
        self.status.state = ExportState::Running;
        let mut out = Vec::new();
        self.pump(&mut out);
        out
    }

    /// Shutdown, or the export could not start (`reason`).
    pub fn stop(&mut self, reason: Option<String>) {
        self.status.state = ExportState::Stopped;
        if reason.is_some() {
            self.status.last_error = reason;
        }
        self.done = true;
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        match event {
            Event::BatchRead(batch) => self.on_batch(batch, &mut out),
            Event::ReadFailed(e) => self.on_read_failed(e, &mut out),
            Event::Acquired => {
                self.acquiring = false;
                if let Some(r) = &mut self.ready {
                    r.acquired = true;
                }
            }
            Event::Sent { from } => self.on_sent(from, &mut out),
            Event::SendFailed { from, error } => self.on_send_failed(from, error, &mut out),
            Event::Waited => self.on_waited(&mut out),
            Event::Probed { reachable, took } => self.on_probed(reachable, took, &mut out),
            Event::Committed => {
                self.committing = false;
                self.status.checkpoint = self.commit_asked;
            }
        }
        if !self.done {
            self.commit_settled(&mut out);
            self.pump(&mut out);
        }
        out
    }

    /// Asks to store the end of the settled prefix, one commit at a time.
    fn commit_settled(&mut self, out: &mut Vec<Action>) {
        let next = self.window.start();
        if next > self.commit_asked && !self.committing {
            self.commit_asked = next;
            self.committing = true;
            out.push(Action::Commit(next));
        }
    }

    /// Fills the window from the batch read ahead, and reads the next one.
    fn pump(&mut self, out: &mut Vec<Action>) {
        let room = self.window.sent_batches() < self.max_in_flight;
        if self.retry.is_idle() && room {
            match self.ready.take() {
                Some(r) if r.acquired => {
                    self.window.push_sent(r.from, r.end, Arc::new(r.batch));
                    out.push(Action::Send { from: r.from });
                }
                Some(r) => {
                    if !self.acquiring {
                        self.acquiring = true;
                        out.push(Action::Acquire {
                            bytes: payload_bytes(&r.batch.records),
                        });
                    }
                    self.ready = Some(r);
                }
                None => {}
            }
        }
        if !self.reading && self.ready.is_none() {
            self.reading = true;
            out.push(Action::StartRead {
                from: self.read_from,
                after: Duration::ZERO,
            });
        }
    }

    fn on_batch(&mut self, mut batch: Batch, out: &mut Vec<Action>) {
        self.reading = false;
        let Some(last) = batch.records.last() else {
            return; // nothing within the interval: `pump` waits for records again
        };
        let from = self.read_from;
        // Computed before any record is taken out, so that skipped records stay skipped.
        let end = last.sequence_number + 1;
        self.read_from = end;
        let limit = self.max_record_bytes;
        let too_big = batch
            .records
            .iter()
            .filter(|r| r.payload.len() as u64 > limit)
            .count() as u64;
        if too_big > 0 {
            // A record the sink can never take: a permanent error of its own.
            let reason =
                format!("{too_big} record(s) larger than the sink's {limit} bytes per record");
            if self.policy == PermanentErrorPolicy::Pause {
                return self.pause(reason, out);
            }
            self.skipped(too_big, reason);
            batch.records.retain(|r| r.payload.len() as u64 <= limit);
            if batch.records.is_empty() {
                return self.window.push_settled(from, end);
            }
            batch.body = self.sink.encode(&batch.records);
        }
        self.ready = Some(Ready {
            from,
            end,
            batch,
            acquired: false,
        });
    }

    fn on_read_failed(&mut self, e: Error, out: &mut Vec<Action>) {
        self.reading = false;
        match e {
            Error::SequenceTrimmed { oldest, .. } => {
                // Batches already read are still delivered from memory; what follows is gone.
                let oldest = oldest.max(self.read_from);
                let lost = oldest - self.read_from;
                tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, records = lost, "retention removed records before they were exported");
                self.status.records_dropped_by_retention += lost;
                self.window.push_settled(self.read_from, oldest);
                self.read_from = oldest;
            }
            Error::StreamDeleted(_) | Error::StreamNotFound(_) => {
                self.stop(Some(e.to_string()));
                out.push(Action::Stop);
            }
            e => {
                self.status.last_error = Some(e.to_string());
                self.reading = true;
                out.push(Action::StartRead {
                    from: self.read_from,
                    after: READ_ERROR_PAUSE,
                });
            }
        }
    }
}

fn payload_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.payload.len() as u64).sum()
}

#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod tests;
