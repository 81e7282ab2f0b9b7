//! The whole loop against a memory stream and a scripted sink, on tokio's paused clock: the
//! times the sink sees are exact, and no test waits in real time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

use super::*;
use crate::definition::{Persistence, StreamDefinition};
use crate::export::{ExportState, ExportStatus, ProbeFuture, SendFuture, SinkError, SinkLimits};
use crate::manager::ManagerOptions;
use crate::record::{NewRecord, Record};

/// One call to `send`: when, which records, and the body it carried.
pub(super) struct Attempt {
    pub at: Instant,
    pub seqs: Vec<u64>,
    pub body: Option<Bytes>,
}

/// Answers sends with `outcomes` in turn (then success), after a permit of `gate` if any and
/// the batch's `delays` (by first sequence number) if any. Until `down_until` it is
/// unreachable: sends fail, and probes (if `can_probe`) say so.
#[derive(Default)]
pub(super) struct ScriptedSink {
    pub outcomes: Mutex<VecDeque<Result<(), SinkError>>>,
    pub attempts: Mutex<Vec<Attempt>>,
    pub gate: Option<Semaphore>,
    pub delays: HashMap<u64, Duration>,
    pub down_until: Option<Instant>,
    pub can_probe: bool,
    pub probes: Mutex<Vec<Instant>>,
}

impl ScriptedSink {
    pub fn new(outcomes: Vec<Result<(), SinkError>>, gate: Option<Semaphore>) -> Self {
        ScriptedSink {
            outcomes: Mutex::new(outcomes.into()),
            gate,
            ..ScriptedSink::default()
        }
    }

    fn is_down(&self) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
    }
}

impl Sink for ScriptedSink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: 100,
            max_bytes: 1 << 20,
            max_record_bytes: 1000,
        }
    }
    fn encode(&self, records: &[Record]) -> Option<Bytes> {
        let seqs: Vec<String> = records
            .iter()
            .map(|r| r.sequence_number.to_string())
            .collect();
        Some(seqs.join(",").into())
    }
    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            lock(&self.attempts).push(Attempt {
                at: Instant::now(),
                seqs: batch.records.iter().map(|r| r.sequence_number).collect(),
                body: batch.body.clone(),
            });
            if self.is_down() {
                return Err(SinkError::Retryable {
                    reason: "connection refused".into(),
                    retry_after: None,
                });
            }
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            let first = batch.records.first().map(|r| r.sequence_number);
            if let Some(d) = first.and_then(|s| self.delays.get(&s)) {
                tokio::time::sleep(*d).await;
            }
            lock(&self.outcomes).pop_front().unwrap_or(Ok(()))
        })
    }
    fn probe(&self) -> Option<ProbeFuture<'_>> {
        if !self.can_probe {
            return None;
        }
        Some(Box::pin(async move {
            lock(&self.probes).push(Instant::now());
            !self.is_down()
        }))
    }
}

pub(super) struct Harness {
    _dir: tempfile::TempDir,
    pub manager: Arc<StreamManager>,
    pub sink: Arc<ScriptedSink>,
    pub status: ExportStatusHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A memory stream "s" with `records` records of 10 bytes, exported in batches of 5 by
/// export "e" (its definition extended by `extra`) to a sink answering with `outcomes`.
async fn start(
    records: usize,
    extra: Value,
    outcomes: Vec<Result<(), SinkError>>,
    gate: Option<Semaphore>,
) -> Harness {
    start_with(records, extra, ScriptedSink::new(outcomes, gate)).await
}

/// [`start`] with a sink set up by the caller.
pub(super) async fn start_with(records: usize, extra: Value, sink: ScriptedSink) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let manager = Arc::new(StreamManager::open(dir.path(), ManagerOptions::default()).unwrap());
    let mut def = StreamDefinition::new("s");
    def.persistence = Persistence::Memory;
    let stream = manager.create_stream(def).unwrap();
    let batch: Vec<NewRecord> = (0..records)
        .map(|_| NewRecord::new(vec![b'x'; 10]))
        .collect();
    stream.append(batch).await.unwrap();
    let mut export = json!({"identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}, "batch_size": 5, "batch_interval_ms": 50});
    export
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let sink = Arc::new(sink);
    let status = ExportStatusHandle::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_export(
        manager.clone(),
        "s".into(),
        serde_json::from_value(export).unwrap(),
        sink.clone(),
        Bandwidth::new(None),
        status.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    Harness {
        _dir: dir,
        manager,
        sink,
        status,
        stop: Some(stop),
        task,
    }
}

impl Harness {
    pub(super) async fn until(&self, what: &str, cond: impl Fn(&ExportStatus) -> bool) {
        let wait = async {
            while !cond(&lock(&self.status)) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(3600), wait)
            .await
            .is_err()
        {
            panic!("never {what}: {:?}", lock(&self.status));
        }
    }

    pub(super) fn stored_checkpoint(&self) -> Option<u64> {
        self.manager
            .with_catalog("s", |c, id| c.checkpoint(id, "e"))
            .unwrap()
    }

    pub(super) fn attempts(&self) -> Vec<(Instant, Vec<u64>)> {
        let a = lock(&self.sink.attempts);
        a.iter().map(|a| (a.at, a.seqs.clone())).collect()
    }

    pub(super) async fn shut_down(mut self) -> ExportStatus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the export did not stop")
            .unwrap();
        let status = lock(&self.status).clone();
        status
    }
}

fn retryable(retry_after: Option<Duration>) -> Result<(), SinkError> {
    Err(SinkError::Retryable {
        reason: "503".into(),
        retry_after,
    })
}

fn permanent() -> Result<(), SinkError> {
    Err(SinkError::Permanent {
        reason: "400".into(),
    })
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_retried_with_backoff_and_counted() {
    let h = start(5, json!({}), vec![retryable(None); 3], None).await;
    h.until("sent", |s| s.checkpoint == 5).await;
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 4);
    assert!(attempts
        .iter()
        .all(|(_, seqs)| *seqs == vec![0, 1, 2, 3, 4]));
    for (i, step_ms) in [200, 400, 800].into_iter().enumerate() {
        let gap = attempts[i + 1].0 - attempts[i].0;
        let step = Duration::from_millis(step_ms);
        assert!(
            gap >= step / 2 && gap <= step + Duration::from_millis(1),
            "retry {i} after {gap:?}, step {step:?}"
        );
    }
    let s = h.shut_down().await;
    assert_eq!((s.retries, s.records_sent, s.batches_sent), (3, 5, 1));
    assert_eq!(s.last_error.as_deref(), Some("503"));
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_sink_is_honoured() {
    let hint = Duration::from_secs(5);
    let h = start(5, json!({}), vec![retryable(Some(hint))], None).await;
    h.until("sent", |s| s.checkpoint == 5).await;
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 2);
    let gap = attempts[1].0 - attempts[0].0;
    assert!(
        gap >= hint && gap <= hint + Duration::from_millis(1),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_checkpoint_moves_only_after_the_sink_confirmed() {
    let one = json!({"max_in_flight_batches": 1});
    let h = start(10, one, vec![], Some(Semaphore::new(0))).await;
    let in_flight = async {
        while h.attempts().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), in_flight)
        .await
        .expect("nothing sent");
    // However long the sink takes, nothing moves meanwhile, and nothing else is sent.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.stored_checkpoint(), None);
    assert_eq!(lock(&h.status).checkpoint, 0);
    assert_eq!(h.attempts().len(), 1, "one batch in flight");
    h.sink.gate.as_ref().unwrap().add_permits(1);
    h.until("first batch confirmed", |s| s.checkpoint == 5)
        .await;
    assert_eq!(h.stored_checkpoint(), Some(5));
    h.sink.gate.as_ref().unwrap().add_permits(1);
    h.until("second batch confirmed", |s| s.checkpoint == 10)
        .await;
    assert_eq!(h.stored_checkpoint(), Some(10));
    assert_eq!(h.shut_down().await.batches_sent, 2);
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_refuses_some_records_once_gets_only_those_again_in_order() {
    let partial = Err(SinkError::Partial {
        failed: vec![1, 3],
        reason: "throttled".into(),
    });
    let h = start(5, json!({}), vec![partial], None).await;
    h.until("sent", |s| s.checkpoint == 5).await;
    let attempts = lock(&h.sink.attempts)
        .iter()
        .map(|a| (a.seqs.clone(), a.body.clone()))
        .collect::<Vec<_>>();
    assert_eq!(
        attempts,
        vec![
            (vec![0, 1, 2, 3, 4], Some(Bytes::from("0,1,2,3,4"))),
            (vec![1, 3], Some(Bytes::from("1,3"))),
        ]
    );
    let s = h.shut_down().await;
    assert_eq!((s.retries, s.records_sent, s.bytes_sent), (1, 5, 50));
    assert_eq!(s.batches_sent, 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_pauses_the_export_under_pause() {
    let h = start(10, json!({}), vec![permanent()], None).await;
    h.until("paused", |s| s.state == ExportState::Paused).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.attempts().len(), 1, "nothing sent while paused");
    assert_eq!(h.stored_checkpoint(), None);
    let s = h.shut_down().await;
    assert_eq!((s.state, s.checkpoint), (ExportState::Paused, 0));
    assert_eq!(s.last_error.as_deref(), Some("400"));
}

#[tokio::test(start_paused = true)]
async fn skip_moves_past_a_refused_batch_and_counts_it() {
    let h = start(
        10,
        json!({"on_permanent_error": "skip"}),
        vec![permanent()],
        None,
    )
    .await;
    h.until("done", |s| s.checkpoint == 10).await;
    assert_eq!(h.stored_checkpoint(), Some(10));
    let s = h.shut_down().await;
    assert_eq!((s.records_skipped, s.records_sent), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_retrying_stops_the_export() {
    let h = start(
        5,
        json!({}),
        vec![retryable(Some(Duration::from_secs(3600)))],
        None,
    )
    .await;
    h.until("retrying", |s| s.state == ExportState::Retrying)
        .await;
    let s = h.shut_down().await;
    assert_eq!((s.state, s.checkpoint), (ExportState::Stopped, 0));
}

#[tokio::test(start_paused = true)]
async fn deleting_the_stream_stops_the_export() {
    let h = start(5, json!({}), vec![], None).await;
    h.until("caught up", |s| s.checkpoint == 5).await;
    h.manager.delete_stream("s").unwrap();
    h.until("stopped", |s| s.state == ExportState::Stopped)
        .await;
    assert!(lock(&h.status).last_error.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_disabled_export_sends_nothing() {
    let h = start(
        5,
        json!({"disabled": true, "start_sequence_number": 2}),
        vec![],
        None,
    )
    .await;
    h.until("reported", |s| s.checkpoint == 2).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.attempts().is_empty());
    let s = h.shut_down().await;
    assert_eq!(s.state, ExportState::Disabled);
}
