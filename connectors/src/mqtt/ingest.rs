//! The ingest task: routes each received message to its streams and appends it, in batches.
//!
//! Everything the event loop has handed over (up to [`MAX_BATCH`] messages) is grouped by
//! stream and appended with one call per stream: one write and one fsync request for the lot,
//! instead of one per message. A stream that refuses a batch is retried message by message, so
//! that what fits is stored and the rest is held back (QoS 1/2) or dropped and counted (QoS 0).
//! Ack jobs leave in the order the messages arrived, as MQTT requires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_stream_manager::{Error as StreamError, NewRecord, PendingAppend, Stream, StreamManager};
use rumqttc::{Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::{inc, IngestMetrics};
use super::topic::Router;
use crate::backoff::Backoff;

const MAX_BATCH: usize = 512;

pub(super) struct Incoming {
    pub publish: Publish,
    pub generation: u64,
}

pub(super) enum AckJob {
    /// Acknowledge at once (rejected messages: redelivery cannot help them).
    Now(Publish, u64),
    /// Acknowledge once every append is durable.
    AfterDurable {
        publish: Publish,
        generation: u64,
        pending: Vec<PendingAppend>,
    },
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
    Dropped,
}

struct Slot {
    publish: Publish,
    generation: u64,
    routed: bool,
    pending: Vec<PendingAppend>,
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
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let router = self.router.clone();
        for Incoming {
            publish,
            generation,
        } in msgs
        {
            let targets = router.streams_for(&publish.topic);
            let routed = self.accept(&publish, !targets.is_empty());
            if routed {
                for target in targets {
                    match groups.iter_mut().find(|g| g.0 == target) {
                        Some(g) => g.1.push(slots.len()),
                        None => groups.push((target.to_owned(), vec![slots.len()])),
                    }
                }
            }
            slots.push(Slot {
                publish,
                generation,
                routed,
                pending: Vec::new(),
            });
        }
        for (name, idxs) in groups {
            let records: Vec<NewRecord> =
                idxs.iter().map(|&i| record_of(&slots[i].publish)).collect();
            if let Some(stream) = self.stream(&name) {
                if let Ok(p) = stream.append_nowait(&records) {
                    for &i in &idxs {
                        slots[i].pending.push(p.clone());
                    }
                    continue;
                }
            }
            // Refused as a whole: one by one, holding back or dropping what does not fit.
            for (&i, record) in idxs.iter().zip(&records) {
                if let Outcome::Stored(p) =
                    self.append_one(&name, record, &slots[i].publish).await?
                {
                    slots[i].pending.push(p);
                }
            }
        }
        Some(
            slots
                .into_iter()
                .map(|s| match s.routed {
                    true => AckJob::AfterDurable {
                        publish: s.publish,
                        generation: s.generation,
                        pending: s.pending,
                    },
                    false => AckJob::Now(s.publish, s.generation),
                })
                .collect(),
        )
    }

    /// Whether a message can be stored at all; counts and logs the ones that cannot.
    fn accept(&mut self, publish: &Publish, has_route: bool) -> bool {
        let topic = &publish.topic;
        if publish.payload.len() > self.max_message {
            inc(&self.metrics.rejected_oversized);
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
            inc(&self.metrics.rejected_unroutable);
            if self.limiter.allow() {
                tracing::warn!(topic, "message rejected: no route matches its topic");
            }
            return false;
        }
        true
    }

    fn stream(&mut self, name: &str) -> Option<Stream> {
        if let Some(s) = self.streams.get(name) {
            return Some(s.clone());
        }
        let s = self.manager.stream(name).ok()?;
        self.streams.insert(name.to_owned(), s.clone());
        Some(s)
    }

    /// Appends one record, waiting out refusals for QoS 1/2. `None` means shutdown.
    async fn append_one(
        &mut self,
        name: &str,
        record: &NewRecord,
        publish: &Publish,
    ) -> Option<Outcome> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut held = false;
        loop {
            let Some(stream) = self.stream(name) else {
                return Some(self.reject_unroutable(
                    name,
                    &publish.topic,
                    &StreamError::StreamNotFound(name.to_owned()),
                ));
            };
            let err = match stream.append_nowait(std::slice::from_ref(record)) {
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
            match err {
                StreamError::StreamFull { .. }
                | StreamError::Io { .. }
                | StreamError::StorageFailed { .. } => {
                    if publish.qos == QoS::AtMostOnce {
                        inc(&self.metrics.dropped_qos0);
                        if self.limiter.allow() {
                            tracing::warn!(stream = name, topic = %publish.topic, error = %err, "QoS 0 message dropped: the stream refused it");
                        }
                        return Some(Outcome::Dropped);
                    }
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
                StreamError::StreamDeleted(_) | StreamError::StreamNotFound(_) => {
                    self.streams.remove(name);
                    return Some(self.reject_unroutable(name, &publish.topic, &err));
                }
                other => {
                    // Refused for good (e.g. larger than the stream): retrying cannot help.
                    inc(&self.metrics.rejected_oversized);
                    if self.limiter.allow() {
                        tracing::warn!(stream = name, topic = %publish.topic, error = %other, "message rejected by the stream");
                    }
                    return Some(Outcome::Dropped);
                }
            }
        }
    }

    fn reject_unroutable(&mut self, name: &str, topic: &str, e: &StreamError) -> Outcome {
        inc(&self.metrics.rejected_unroutable);
        if self.limiter.allow() {
            tracing::warn!(stream = name, topic, error = %e, "message not stored: its route names a stream that does not exist");
        }
        Outcome::Dropped
    }
}
