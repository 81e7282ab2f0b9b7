//! The ingest task: routes each received message to its streams and appends it, in batches.
//!
//! Everything the event loop has handed over (up to [`MAX_BATCH`] messages) is grouped by
//! stream and appended with one call per stream: one write and one fsync request for the lot,
//! instead of one per message. A stream that refuses a batch is retried message by message, so
//! that what fits is stored and the rest is held back while the refusal may pass (QoS 1/2), or
//! given up, acknowledged and counted under its reason (refusal.rs says which is which).
//! Ack jobs leave in the order the messages arrived, as MQTT requires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_stream_manager::{Error as StreamError, NewRecord, PendingAppend, Stream, StreamManager};
use rumqttc::Publish;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::{inc, IngestMetrics};
use super::refusal::{verdict, Reason, Verdict};
use super::topic::OnFull;
use super::topic::Router;
use crate::backoff::Backoff;

const MAX_BATCH: usize = 512;

pub(super) struct Incoming {
    pub publish: Publish,
    pub generation: u64,
}

/// The ack of one message, in arrival order: sent once its appends are durable.
pub(super) struct AckJob {
    pub publish: Publish,
    pub generation: u64,
    /// The appends to wait for; none: acknowledge at once (a message given up).
    pub pending: Vec<PendingAppend>,
    /// Every stream the message routes to took it, so once durable it counts as stored. A
    /// message given up somewhere was counted under its reason instead.
    pub stored: bool,
}

/// At most a burst of warnings per window, then one line saying how many were suppressed.
struct LogLimiter {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl LogLimiter {
    fn new() -> Self {
        LogLimiter {
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    fn allow(&mut self) -> bool {
        if self.window_start.elapsed() > Duration::from_secs(10) {
            if self.suppressed > 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "similar warnings suppressed in the last 10 s"
                );
            }
            *self = LogLimiter::new();
        }
        self.in_window += 1;
        let ok = self.in_window <= 20;
        if !ok {
            self.suppressed += 1;
        }
        ok
    }
}

enum Outcome {
    Stored(PendingAppend),
    GivenUp,
}

struct Slot {
    publish: Publish,
    generation: u64,
    pending: Vec<PendingAppend>,
    /// Given up, in every stream or in some: acknowledged, but not counted as stored.
    given_up: bool,
}

fn record_of(publish: &Publish) -> NewRecord {
    NewRecord::new(publish.payload.clone()).with_meta("topic", publish.topic.clone())
}

pub(super) struct Ingest {
    /// Shared so a batch can hold the routes while the rest of `self` is borrowed mutably.
    router: Arc<Router>,
    manager: Arc<StreamManager>,
    metrics: Arc<IngestMetrics>,
    max_message: usize,
    streams: HashMap<String, Stream>,
    limiter: LogLimiter,
    shutdown: CancellationToken,
}

impl Ingest {
    pub(super) fn new(
        router: Router,
        manager: Arc<StreamManager>,
        metrics: Arc<IngestMetrics>,
        max_message: usize,
        shutdown: CancellationToken,
    ) -> Self {
        Ingest {
            router: Arc::new(router),
            manager,
            metrics,
            max_message,
            streams: HashMap::new(),
            limiter: LogLimiter::new(),
            shutdown,
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Incoming>,
        acks: mpsc::Sender<AckJob>,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // `None`: shutdown while held back; those messages stay unacknowledged (redelivered).
            let Some(jobs) = self.handle_batch(std::mem::take(&mut batch)).await else {
                return;
            };
            for job in jobs {
                if acks.send(job).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn handle_batch(&mut self, msgs: Vec<Incoming>) -> Option<Vec<AckJob>> {
        let mut slots = Vec::with_capacity(msgs.len());
        let mut groups: Vec<(String, OnFull, Vec<usize>)> = Vec::new();
        let router = self.router.clone();
        for Incoming {
            publish,
            generation,
        } in msgs
        {
            let targets = router.streams_for(&publish.topic);
            let given_up = !self.accept(&publish, !targets.is_empty());
            if !given_up {
                for (target, on_full) in targets {
                    match groups.iter_mut().find(|g| g.0 == target) {
                        Some(g) => g.2.push(slots.len()),
                        None => {
                            groups.push((target.to_owned(), on_full.clone(), vec![slots.len()]))
                        }
                    }
                }
            }
            slots.push(Slot {
                publish,
                generation,
                pending: Vec::new(),
                given_up,
            });
        }
        for (name, on_full, idxs) in groups {
            let records: Vec<NewRecord> =
                idxs.iter().map(|&i| record_of(&slots[i].publish)).collect();
            if let Ok(p) = self.append(&name, &records) {
                for &i in &idxs {
                    slots[i].pending.push(p.clone());
                }
                continue;
            }
            // Refused as a whole: one by one, holding back or giving up what does not fit.
            for (&i, record) in idxs.iter().zip(&records) {
                match self
                    .append_one(&name, &on_full, record, &slots[i].publish)
                    .await?
                {
                    Outcome::Stored(p) => slots[i].pending.push(p),
                    Outcome::GivenUp => slots[i].given_up = true,
                }
            }
        }
        Some(
            slots
                .into_iter()
                .map(|s| AckJob {
                    publish: s.publish,
                    generation: s.generation,
                    pending: s.pending,
                    stored: !s.given_up,
                })
                .collect(),
        )
    }

    /// Whether a message can be stored at all; counts and logs the ones that cannot.
    fn accept(&mut self, publish: &Publish, has_route: bool) -> bool {
        let topic = &publish.topic;
        if publish.payload.len() > self.max_message {
            self.metrics.count_refused(Reason::Oversized);
            if self.limiter.allow() {
                tracing::warn!(
                    topic,
                    size_bytes = publish.payload.len(),
                    limit_bytes = self.max_message,
                    "message rejected: larger than max_message_size_bytes"
                );
            }
            return false;
        }
        if !has_route {
            self.metrics.count_refused(Reason::Unroutable);
            if self.limiter.allow() {
                tracing::warn!(topic, "message rejected: no route matches its topic");
            }
            return false;
        }
        true
    }

    /// Appends to the stream called `name`, looking it up unless a handle is cached. A refused
    /// append forgets the handle, so that a stream deleted (or re-created) is looked up again.
    fn append(&mut self, name: &str, records: &[NewRecord]) -> Result<PendingAppend, StreamError> {
        let stream = match self.streams.get(name) {
            Some(s) => s.clone(),
            None => {
                let s = self.manager.stream(name)?;
                self.streams.insert(name.to_owned(), s.clone());
                s
            }
        };
        stream.append_nowait(records).inspect_err(|_| {
            self.streams.remove(name);
        })
    }

    /// Appends one record, waiting out refusals that may pass (for QoS 1/2; see refusal.rs).
    /// `None` means shutdown.
    async fn append_one(
        &mut self,
        name: &str,
        on_full: &OnFull,
        record: &NewRecord,
        publish: &Publish,
    ) -> Option<Outcome> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut held = false;
        loop {
            let err = match self.append(name, std::slice::from_ref(record)) {
                Ok(p) => {
                    if held {
                        tracing::info!(
                            stream = name,
                            "stream accepts data again; ingestion resumes"
                        );
                    }
                    return Some(Outcome::Stored(p));
                }
                Err(e) => e,
            };
            let verdict = verdict(&err, publish.qos, on_full);
            if let Verdict::Divert(to) = &verdict {
                if let Ok(p) = self.append(to, std::slice::from_ref(record)) {
                    inc(&self.metrics.diverted);
                    return Some(Outcome::Stored(p));
                }
            }
            match verdict {
                Verdict::GiveUp(reason) => {
                    self.give_up(reason, name, &publish.topic, &err);
                    return Some(Outcome::GivenUp);
                }
                // A diverted message whose overflow stream refuses too waits for either.
                Verdict::HoldBack | Verdict::Divert(_) => {
                    if !held {
                        tracing::warn!(stream = name, topic = %publish.topic, error = %err, "stream refuses data; holding the MQTT ack back until it accepts (backpressure)");
                        held = true;
                    }
                    inc(&self.metrics.backpressure_waits);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = self.shutdown.cancelled() => return None,
                    }
                }
            }
        }
    }

    fn give_up(&mut self, reason: Reason, name: &str, topic: &str, e: &StreamError) {
        self.metrics.count_refused(reason);
        if !self.limiter.allow() {
            return;
        }
        match reason {
            Reason::Unroutable => {
                tracing::warn!(stream = name, topic, error = %e, "message not stored: its route names a stream that does not exist")
            }
            Reason::DroppedQos0 => {
                tracing::warn!(stream = name, topic, error = %e, "QoS 0 message dropped: the stream refused it")
            }
            Reason::Invalid | Reason::Oversized => {
                tracing::warn!(stream = name, topic, error = %e, "message rejected by the stream")
            }
            Reason::StreamFull => {
                tracing::warn!(stream = name, topic, error = %e, "message dropped: its stream is full (on_full = \"drop\"; other streams keep flowing)")
            }
        }
    }
}

#[cfg(test)]
mod tests;
