//! What the machine makes of the sink's answers: a confirmation settles a batch; a refusal
//! worth retrying (all of the batch, or some records of it) goes to the retry; a permanent one
//! pauses the export or skips the batch, as the definition says.

use super::{payload_bytes, Action, ExportMachine, ExportState};
use crate::definition::PermanentErrorPolicy;
use crate::export::{Batch, SinkError};
use crate::record::Record;
use crate::time::now_ms;

impl ExportMachine {
    pub(super) fn on_sent(&mut self, from: u64, out: &mut Vec<Action>) {
        if !self.window.is_in_flight(from) {
            return; // an answer for a batch already settled
        }
        let batch = self.window.settle(from).unwrap_or_default();
        let s = &mut self.status;
        s.records_sent += batch.records.len() as u64;
        s.bytes_sent += payload_bytes(&batch.records);
        s.batches_sent += 1;
        s.last_success_ms = Some(now_ms());
        self.answered(from, out);
        if self.retry.is_idle() {
            self.status.state = ExportState::Running;
        }
    }

    pub(super) fn on_send_failed(&mut self, from: u64, error: SinkError, out: &mut Vec<Action>) {
        if !self.window.is_in_flight(from) {
            return;
        }
        match error {
            SinkError::Retryable {
                reason,
                retry_after,
            } => self.failed(from, reason, retry_after, out),
            SinkError::Partial { failed, reason } => {
                let (confirmed, again) =
                    split_failed(self.window.take_batch(from).records, &failed);
                if again.is_empty() {
                    // No index named a record of the batch: the sink took all of it.
                    let batch = Batch {
                        records: confirmed,
                        body: None,
                    };
                    self.window.put_back(from, batch);
                    return self.on_sent(from, out);
                }
                self.status.records_sent += confirmed.len() as u64;
                self.status.bytes_sent += payload_bytes(&confirmed);
                let batch = Batch {
                    body: self.sink.encode(&again),
                    records: again,
                };
                self.window.put_back(from, batch);
                self.failed(from, reason, None, out)
            }
            SinkError::Permanent { reason } => {
                if self.policy == PermanentErrorPolicy::Pause {
                    return self.pause(reason, out);
                }
                let batch = self.window.settle(from).unwrap_or_default();
                self.skipped(batch.records.len() as u64, reason);
                self.answered(from, out);
            }
        }
    }

    pub(super) fn pause(&mut self, reason: String, out: &mut Vec<Action>) {
        tracing::error!(stream = %self.status.stream, export = %self.status.identifier, error = %reason, "sink refused a batch for good; export paused (on_permanent_error = pause)");
        self.status.state = ExportState::Paused;
        self.status.last_error = Some(reason);
        self.done = true;
        out.push(Action::Pause);
    }

    pub(super) fn skipped(&mut self, records: u64, reason: String) {
        tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, records, error = %reason, "sink refused records for good; skipped (on_permanent_error = skip)");
        self.status.records_skipped += records;
        self.status.last_error = Some(reason);
    }
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
