//! The decisions of one export, without I/O: given what happened (a batch was read, the sink
//! confirmed or refused it, a wait is over, ...), what to do next and what the status says.
//! The loop in `task.rs` performs the actions and reports their outcomes back.
//!
//! The order it enforces: the checkpoint moves only after the sink confirmed a batch (or the
//! batch was skipped, or retention removed it); one batch is in flight at a time, while the
//! next one is read ahead; every retry of a batch goes through one capped backoff.

use std::sync::Arc;
use std::time::Duration;

use super::status::{ExportState, ExportStatus};
use super::{Batch, Sink, SinkError, SinkLimits};
use crate::backoff::Backoff;
use crate::definition::{ExportDefinition, PermanentErrorPolicy};
use crate::error::Error;
use crate::record::Record;
use crate::time::now_ms;

const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(1000);
/// Before reading again after a read failed for another reason than retention or deletion.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

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

/// The outcome of the last [`Action`].
pub enum Event {
    /// The read asked for by [`Action::StartRead`] is under way.
    ReadStarted,
    BatchRead(Batch),
    ReadFailed(Error),
    Acquired,
    Sent,
    SendFailed(SinkError),
    /// The [`Action::Wait`] is over.
    Waited,
    Committed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start reading (and encoding) the batch from `from` in the background; report
    /// [`Event::ReadStarted`] at once.
    StartRead { from: u64 },
    /// Wait for the read under way; report [`Event::BatchRead`] or [`Event::ReadFailed`].
    AwaitRead,
    /// Wait for the bandwidth to send `bytes`; report [`Event::Acquired`].
    Acquire { bytes: u64 },
    /// Send [`ExportMachine::batch`]; report [`Event::Sent`] or [`Event::SendFailed`].
    Send,
    /// Report [`Event::Waited`] after this long.
    Wait(Duration),
    /// Store this checkpoint; report [`Event::Committed`].
    Commit(u64),
    /// Nothing more until shutdown; the status says why.
    Pause,
    /// The export is over (stopped, or disabled).
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading from `next`, nothing else under way.
    Reading,
    /// Waiting before reading from `next` again.
    ReadPause,
    /// Sending (or backing off to send again) the batch that ends before `end`, while the read
    /// from `end` runs ahead.
    Sending {
        end: u64,
    },
    /// Storing `end` as the checkpoint; `read_ahead`: the read from `end` is under way.
    Committing {
        end: u64,
        read_ahead: bool,
    },
    Done,
}

pub struct ExportMachine {
    status: ExportStatus,
    policy: PermanentErrorPolicy,
    disabled: bool,
    max_record_bytes: u64,
    /// Only to encode a request body again after records were taken out of a batch.
    sink: Arc<dyn Sink>,
    /// Everything before it is confirmed, skipped or gone: the checkpoint once committed.
    next: u64,
    phase: Phase,
    batch: Batch,
    backoff: Backoff,
}

impl ExportMachine {
    pub fn new(stream: &str, def: &ExportDefinition, sink: Arc<dyn Sink>) -> Self {
        let status = ExportStatus {
            stream: stream.to_owned(),
            identifier: def.identifier.clone(),
            kind: kind_name(def),
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
            sink,
            next: 0,
            phase: Phase::Reading,
            batch: Batch::default(),
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
        }
    }

    pub fn status(&self) -> &ExportStatus {
        &self.status
    }

    /// The batch to send on [`Action::Send`].
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// Begins at the stored checkpoint (or the definition's start).
    pub fn start(&mut self, checkpoint: u64) -> Action {
        self.next = checkpoint;
        self.status.checkpoint = checkpoint;
        if self.disabled {
            self.phase = Phase::Done;
            return Action::Stop;
        }
        self.status.state = ExportState::Running;
        self.read_next()
    }

    /// Shutdown, or the export could not start (`reason`).
    pub fn stop(&mut self, reason: Option<String>) {
        self.status.state = ExportState::Stopped;
        if reason.is_some() {
            self.status.last_error = reason;
        }
        self.phase = Phase::Done;
    }

    pub fn handle(&mut self, event: Event) -> Action {
        match event {
            Event::ReadStarted => match self.phase {
                Phase::Sending { end } if self.batch.records.is_empty() => self.commit(end, true),
                Phase::Sending { .. } => Action::Acquire {
                    bytes: payload_bytes(&self.batch.records),
                },
                _ => Action::AwaitRead,
            },
            Event::BatchRead(batch) => self.on_batch(batch),
            Event::ReadFailed(e) => self.on_read_failed(e),
            Event::Acquired => Action::Send,
            Event::Sent => self.on_sent(),
            Event::SendFailed(e) => self.on_send_failed(e),
            Event::Waited => match self.phase {
                Phase::Sending { .. } => Action::Send,
                _ => self.read_next(),
            },
            Event::Committed => match self.phase {
                Phase::Committing { end, read_ahead } => {
                    self.next = end;
                    self.status.checkpoint = end;
                    self.phase = Phase::Reading;
                    if read_ahead {
                        Action::AwaitRead
                    } else {
                        Action::StartRead { from: end }
                    }
                }
                _ => self.read_next(),
            },
        }
    }

    fn read_next(&mut self) -> Action {
        self.phase = Phase::Reading;
        Action::StartRead { from: self.next }
    }

    fn commit(&mut self, end: u64, read_ahead: bool) -> Action {
        self.phase = Phase::Committing { end, read_ahead };
        Action::Commit(end)
    }

    fn on_batch(&mut self, mut batch: Batch) -> Action {
        let Some(last) = batch.records.last() else {
            return self.read_next(); // nothing within the interval: wait for records again
        };
        // Computed before any record is taken out, so that skipped records stay skipped.
        let end = last.sequence_number + 1;
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
                return self.pause(reason);
            }
            self.skipped(too_big, reason);
            batch.records.retain(|r| r.payload.len() as u64 <= limit);
            batch.body = self.sink.encode(&batch.records);
        }
        self.batch = batch;
        self.backoff.reset();
        self.phase = Phase::Sending { end };
        Action::StartRead { from: end }
    }

    fn on_read_failed(&mut self, e: Error) -> Action {
        match e {
            Error::SequenceTrimmed { oldest, .. } => {
                let oldest = oldest.max(self.next);
                let lost = oldest - self.next;
                tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, records = lost, "retention removed records before they were exported");
                self.status.records_dropped_by_retention += lost;
                self.commit(oldest, false)
            }
            Error::StreamDeleted(_) | Error::StreamNotFound(_) => {
                self.stop(Some(e.to_string()));
                Action::Stop
            }
            e => {
                self.status.last_error = Some(e.to_string());
                self.phase = Phase::ReadPause;
                Action::Wait(READ_ERROR_PAUSE)
            }
        }
    }

    fn on_sent(&mut self) -> Action {
        let Phase::Sending { end } = self.phase else {
            return self.read_next();
        };
        let batch = std::mem::take(&mut self.batch);
        let s = &mut self.status;
        s.state = ExportState::Running;
        s.records_sent += batch.records.len() as u64;
        s.bytes_sent += payload_bytes(&batch.records);
        s.batches_sent += 1;
        s.last_success_ms = Some(now_ms());
        self.commit(end, true)
    }

    fn on_send_failed(&mut self, e: SinkError) -> Action {
        let Phase::Sending { end } = self.phase else {
            return self.read_next();
        };
        match e {
            SinkError::Retryable {
                reason,
                retry_after,
            } => self.retry(reason, retry_after),
            SinkError::Partial { failed, reason } => {
                let (confirmed, again) =
                    split_failed(std::mem::take(&mut self.batch).records, &failed);
                if again.is_empty() {
                    // No index named a record of the batch: the sink took all of it.
                    self.batch.records = confirmed;
                    return self.on_sent();
                }
                self.status.records_sent += confirmed.len() as u64;
                self.status.bytes_sent += payload_bytes(&confirmed);
                self.batch = Batch {
                    body: self.sink.encode(&again),
                    records: again,
                };
                self.retry(reason, None)
            }
            SinkError::Permanent { reason } => {
                if self.policy == PermanentErrorPolicy::Pause {
                    return self.pause(reason);
                }
                let batch = std::mem::take(&mut self.batch);
                self.skipped(batch.records.len() as u64, reason);
                self.commit(end, true)
            }
        }
    }

    /// The batch (what is left of it) goes again after the backoff, or the sink's own hint if
    /// that is longer.
    fn retry(&mut self, reason: String, retry_after: Option<Duration>) -> Action {
        let delay = self
            .backoff
            .next_delay()
            .max(retry_after.unwrap_or_default());
        if self.status.state != ExportState::Retrying {
            tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, error = %reason, "sink unavailable; retrying with backoff, the stream keeps buffering");
        }
        self.status.state = ExportState::Retrying;
        self.status.retries += 1;
        self.status.last_error = Some(reason);
        Action::Wait(delay)
    }

    fn pause(&mut self, reason: String) -> Action {
        tracing::error!(stream = %self.status.stream, export = %self.status.identifier, error = %reason, "sink refused a batch for good; export paused (on_permanent_error = pause)");
        self.status.state = ExportState::Paused;
        self.status.last_error = Some(reason);
        self.phase = Phase::Done;
        Action::Pause
    }

    fn skipped(&mut self, records: u64, reason: String) {
        tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, records, error = %reason, "sink refused records for good; skipped (on_permanent_error = skip)");
        self.status.records_skipped += records;
        self.status.last_error = Some(reason);
    }
}

/// The export's kind as the status shows it.
fn kind_name(def: &ExportDefinition) -> String {
    def.kind.name().to_string()
}

fn payload_bytes(records: &[Record]) -> u64 {
    records.iter().map(|r| r.payload.len() as u64).sum()
}

/// Splits records into those the sink confirmed and those it refused (`failed`: indices,
/// ascending as [`SinkError::Partial`] promises; sorted again all the same), both in order.
fn split_failed(records: Vec<Record>, failed: &[usize]) -> (Vec<Record>, Vec<Record>) {
    let mut failed = failed.to_vec();
    failed.sort_unstable();
    let (mut confirmed, mut again) = (Vec::new(), Vec::new());
    for (i, r) in records.into_iter().enumerate() {
        if failed.binary_search(&i).is_ok() {
            again.push(r);
        } else {
            confirmed.push(r);
        }
    }
    (confirmed, again)
}

#[cfg(test)]
mod tests;
