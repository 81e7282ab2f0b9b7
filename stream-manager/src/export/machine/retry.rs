//! The export's retry: one capped backoff for all its batches, one request per backoff step,
//! and reachability probes that end the wait as soon as an unreachable sink is back.
//!
//! A probe (a TCP connect, for the HTTP sink) costs almost nothing, but it only says whether
//! the sink takes connections. So it is trusted only for a failure it can explain: the probe
//! started right after the failure must find the sink unreachable. A sink that answered 503 or
//! throttled is reachable: its backoff (or `Retry-After`) runs its course.

use std::time::Duration;

use super::{Action, ExportMachine, ExportState};

pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Between the starts of two probes of an unreachable sink; a probe that takes longer counts
/// as unreachable. The first batch leaves at most this long after the sink is back.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing refused, or the last refusal was made good.
    Idle,
    /// Waiting out the backoff before sending the oldest refused batch again.
    BackingOff { probing: Probing },
    /// The oldest refused batch (from `from`) went again: its answer ends the retry or starts
    /// the next step. Nothing else is sent meanwhile.
    Resending { from: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// The probe started with the wait has not answered yet.
    First,
    /// The sink was unreachable at the last probe: probing goes on.
    Unreachable,
    /// The sink was reachable right after it failed: the probe cannot tell when it is well
    /// again; only the backoff can.
    Off,
}

impl Retry {
    pub fn is_idle(&self) -> bool {
        *self == Retry::Idle
    }
}

impl ExportMachine {
    /// The batch from `from` was refused for a reason worth retrying (all of it, or what is
    /// left of it after a partial failure).
    pub(super) fn failed(
        &mut self,
        from: u64,
        reason: String,
        retry_after: Option<Duration>,
        out: &mut Vec<Action>,
    ) {
        self.window.mark_failed(from);
        if self.status.state != ExportState::Retrying {
            tracing::warn!(stream = %self.status.stream, export = %self.status.identifier, error = %reason, "sink unavailable; retrying with backoff, the stream keeps buffering");
        }
        self.status.state = ExportState::Retrying;
        self.status.retries += 1;
        self.status.last_error = Some(reason);
        match self.retry {
            Retry::Idle => self.back_off(retry_after, out),
            Retry::Resending { from: resent } if resent == from => self.back_off(retry_after, out),
            // Sent before the retry began, or already waiting: it goes again with the others.
            Retry::Resending { .. } | Retry::BackingOff { .. } => {}
        }
    }

    /// The next backoff step, or the sink's own hint if that is longer, with a probe at once.
    fn back_off(&mut self, retry_after: Option<Duration>, out: &mut Vec<Action>) {
        let delay = self
            .backoff
            .next_delay()
            .max(retry_after.unwrap_or_default());
        self.retry = Retry::BackingOff {
            probing: Probing::First,
        };
        out.push(Action::Wait(delay));
        out.push(Action::Probe {
            after: Duration::ZERO,
        });
    }

    /// The sink answered the batch from `from` (confirmed or refused it for good): if that was
    /// the batch sent again, the retry is over and every other refused batch goes again.
    pub(super) fn answered(&mut self, from: u64, out: &mut Vec<Action>) {
        if self.retry != (Retry::Resending { from }) {
            return;
        }
        self.retry = Retry::Idle;
        self.backoff.reset();
        self.status.state = ExportState::Running;
        for again in self.window.failed() {
            self.window.mark_in_flight(again);
            out.push(Action::Send { from: again });
        }
    }

    pub(super) fn on_waited(&mut self, out: &mut Vec<Action>) {
        // Otherwise stale: the wait was cut short by a probe.
        if matches!(self.retry, Retry::BackingOff { .. }) {
            self.resend_oldest(out);
        }
    }

    pub(super) fn on_probed(&mut self, reachable: bool, took: Duration, out: &mut Vec<Action>) {
        let Retry::BackingOff { probing } = self.retry else {
            return; // stale: the wait is over
        };
        let probing = match (probing, reachable) {
            (Probing::Off, _) => Probing::Off,
            (Probing::First, true) => Probing::Off,
            (Probing::Unreachable, true) => {
                tracing::info!(stream = %self.status.stream, export = %self.status.identifier, "sink reachable again; sending without waiting out the backoff");
                return self.resend_oldest(out);
            }
            (_, false) => {
                out.push(Action::Probe {
                    after: PROBE_INTERVAL.saturating_sub(took),
                });
                Probing::Unreachable
            }
        };
        self.retry = Retry::BackingOff { probing };
    }

    fn resend_oldest(&mut self, out: &mut Vec<Action>) {
        match self.window.failed().first() {
            Some(&from) => {
                self.window.mark_in_flight(from);
                self.retry = Retry::Resending { from };
                out.push(Action::Send { from });
            }
            None => {
                // Everything refused was settled meanwhile (skipped): nothing to wait for.
                self.retry = Retry::Idle;
                self.backoff.reset();
            }
        }
    }
}
