//! The machine alone: events in, actions and status out; no runtime, no sink behind it.

use std::ops::Range;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::export::SendFuture;

/// Takes at most 100 bytes per record; encodes a body as the sequence numbers it holds.
pub(super) struct FakeSink;

impl Sink for FakeSink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: 10,
            max_bytes: 1 << 20,
            max_record_bytes: 100,
        }
    }
    fn encode(&self, records: &[Record]) -> Option<Bytes> {
        let seqs: Vec<String> = records
            .iter()
            .map(|r| r.sequence_number.to_string())
            .collect();
        Some(seqs.join(",").into())
    }
    fn send<'a>(&'a self, _batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

pub(super) fn machine(extra: Value) -> ExportMachine {
    let mut def =
        json!({"identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}});
    def.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let def: ExportDefinition = serde_json::from_value(def).unwrap();
    ExportMachine::new("s", &def, Arc::new(FakeSink))
}

pub(super) fn record(seq: u64, len: usize) -> Record {
    Record {
        sequence_number: seq,
        timestamp_ms: 0,
        metadata: Default::default(),
        payload: Bytes::from(vec![b'x'; len]),
    }
}

pub(super) fn batch_of(records: Vec<Record>) -> Batch {
    let body = FakeSink.encode(&records);
    Batch { records, body }
}

pub(super) fn batch(seqs: Range<u64>) -> Batch {
    batch_of(seqs.map(|s| record(s, 10)).collect())
}

pub(super) fn seqs_of(m: &ExportMachine, from: u64) -> Vec<u64> {
    m.batch(from)
        .expect("a batch in the window")
        .records
        .iter()
        .map(|r| r.sequence_number)
        .collect()
}

pub(super) fn seqs(m: &ExportMachine) -> Vec<u64> {
    seqs_of(m, 0)
}

pub(super) fn start_read(from: u64) -> Action {
    Action::StartRead {
        from,
        after: Duration::ZERO,
    }
}

/// Starts at `from` and reads `b`: returns the actions after the read.
pub(super) fn read(m: &mut ExportMachine, from: u64, b: Batch) -> Vec<Action> {
    assert_eq!(m.start(from), vec![start_read(from)]);
    m.handle(Event::BatchRead(b))
}

/// Reads `seqs` and brings the batch to the sink; the next read is under way.
pub(super) fn send(m: &mut ExportMachine, seqs: Range<u64>) {
    let bytes = 10 * (seqs.end - seqs.start);
    let (from, end) = (seqs.start, seqs.end);
    assert_eq!(read(m, from, batch(seqs)), vec![Action::Acquire { bytes }]);
    assert_eq!(
        m.handle(Event::Acquired),
        vec![Action::Send { from }, start_read(end)],
        "the next batch is read while this one is sent"
    );
}

pub(super) fn sent(from: u64) -> Event {
    Event::Sent { from }
}

pub(super) fn failed(from: u64, error: SinkError) -> Event {
    Event::SendFailed { from, error }
}

pub(super) fn retryable(retry_after: Option<Duration>) -> Event {
    failed(
        0,
        SinkError::Retryable {
            reason: "503".into(),
            retry_after,
        },
    )
}

/// The wait of a retry, and the probe that starts with it.
pub(super) fn waited(actions: Vec<Action>) -> Duration {
    match actions[..] {
        [Action::Wait(d), Action::Probe { after }] if after.is_zero() => d,
        _ => panic!("expected a wait and a probe, got {actions:?}"),
    }
}

#[test]
fn the_next_batch_is_read_ahead_and_the_checkpoint_waits_for_the_sink() {
    let mut m = machine(json!({}));
    send(&mut m, 5..8);
    assert_eq!(seqs_of(&m, 5), vec![5, 6, 7]);
    assert_eq!(m.status().checkpoint, 5);
    assert_eq!(m.handle(sent(5)), vec![Action::Commit(8)]);
    assert_eq!(m.status().checkpoint, 5, "not before the commit");
    assert_eq!(
        m.handle(Event::Committed),
        vec![],
        "the read ahead is under way"
    );
    let s = m.status();
    assert_eq!(s.checkpoint, 8);
    assert_eq!(s.state, ExportState::Running);
    assert_eq!((s.records_sent, s.bytes_sent, s.batches_sent), (3, 30, 1));
    assert!(s.last_success_ms.is_some());
}

#[test]
fn retries_back_off_up_to_thirty_seconds_and_a_success_ends_them() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    let mut step = BACKOFF_MIN;
    for i in 1..=12 {
        let d = waited(m.handle(retryable(None)));
        assert!(
            d >= step / 2 && d <= step,
            "retry {i}: {d:?} outside {step:?}"
        );
        assert_eq!(m.status().state, ExportState::Retrying);
        assert_eq!(m.status().retries, i);
        assert_eq!(m.status().checkpoint, 0);
        assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
        step = (step * 2).min(BACKOFF_MAX);
    }
    assert_eq!(step, Duration::from_secs(30));
    assert_eq!(m.status().last_error.as_deref(), Some("503"));
    assert_eq!(m.handle(sent(0))[0], Action::Commit(3));
    assert_eq!(m.status().state, ExportState::Running);
}

#[test]
fn the_backoff_starts_over_with_each_batch() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    for _ in 0..5 {
        waited(m.handle(retryable(None)));
        m.handle(Event::Waited);
    }
    m.handle(sent(0));
    assert_eq!(m.handle(Event::Committed), vec![]);
    assert_eq!(
        m.handle(Event::BatchRead(batch(3..4))),
        vec![Action::Acquire { bytes: 10 }]
    );
    assert_eq!(
        m.handle(Event::Acquired),
        vec![Action::Send { from: 3 }, start_read(4)]
    );
    let refused = failed(
        3,
        SinkError::Retryable {
            reason: "503".into(),
            retry_after: None,
        },
    );
    assert!(waited(m.handle(refused)) <= BACKOFF_MIN);
}

#[test]
fn the_sinks_retry_after_wins_over_a_shorter_backoff_only() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    let hint = Duration::from_secs(7);
    assert_eq!(waited(m.handle(retryable(Some(hint)))), hint);
    m.handle(Event::Waited);
    let d = waited(m.handle(retryable(Some(Duration::from_millis(1)))));
    assert!(
        d >= Duration::from_millis(200),
        "{d:?}: the backoff is longer"
    );
}

#[test]
fn a_partial_failure_resends_only_the_refused_records_in_order_after_a_backoff() {
    let mut m = machine(json!({}));
    send(&mut m, 0..5);
    let partial = |failed_records: Vec<usize>| {
        failed(
            0,
            SinkError::Partial {
                failed: failed_records,
                reason: "throttled".into(),
            },
        )
    };
    assert!(waited(m.handle(partial(vec![1, 3]))) <= BACKOFF_MIN);
    assert_eq!(seqs(&m), vec![1, 3]);
    assert_eq!(
        m.batch(0).unwrap().body.as_deref(),
        Some(&b"1,3"[..]),
        "encoded again"
    );
    let s = m.status();
    assert_eq!(
        (s.state, s.retries, s.checkpoint),
        (ExportState::Retrying, 1, 0)
    );
    assert_eq!((s.records_sent, s.bytes_sent, s.batches_sent), (3, 30, 0));
    assert_eq!(m.handle(Event::Waited), vec![Action::Send { from: 0 }]);
    let d = waited(m.handle(partial(vec![1])));
    assert!(
        d >= BACKOFF_MIN,
        "the second retry backs off further: {d:?}"
    );
    assert_eq!(seqs(&m), vec![3]);
    m.handle(Event::Waited);
    assert_eq!(m.handle(sent(0))[0], Action::Commit(5));
    let s = m.status();
    assert_eq!((s.records_sent, s.bytes_sent, s.batches_sent), (5, 50, 1));
    assert_eq!(s.retries, 2);
}

#[test]
fn a_partial_failure_that_names_no_record_of_the_batch_counts_as_sent() {
    let mut m = machine(json!({}));
    send(&mut m, 0..2);
    let refused = failed(
        0,
        SinkError::Partial {
            failed: vec![7],
            reason: "?".into(),
        },
    );
    assert_eq!(m.handle(refused), vec![Action::Commit(2)]);
    assert_eq!(m.status().records_sent, 2);
}

#[test]
fn a_permanent_error_pauses_the_export_under_pause() {
    let mut m = machine(json!({}));
    send(&mut m, 0..3);
    let refused = failed(
        0,
        SinkError::Permanent {
            reason: "400 bad".into(),
        },
    );
    assert_eq!(m.handle(refused), vec![Action::Pause]);
    let s = m.status();
    assert_eq!((s.state, s.checkpoint), (ExportState::Paused, 0));
    assert_eq!(s.last_error.as_deref(), Some("400 bad"));
    assert_eq!(m.handle(sent(0)), vec![], "nothing more once paused");
}

#[test]
fn skip_moves_past_a_refused_batch_and_counts_it() {
    let mut m = machine(json!({"on_permanent_error": "skip"}));
    send(&mut m, 0..3);
    let refused = failed(
        0,
        SinkError::Permanent {
            reason: "400 bad".into(),
        },
    );
    assert_eq!(m.handle(refused), vec![Action::Commit(3)]);
    assert_eq!(m.handle(Event::Committed), vec![]);
    let s = m.status();
    assert_eq!((s.checkpoint, s.records_skipped, s.records_sent), (3, 3, 0));
}

#[test]
fn a_record_larger_than_the_sink_takes_pauses_the_export_under_pause() {
    let mut m = machine(json!({}));
    let b = batch_of(vec![record(0, 10), record(1, 101)]);
    assert_eq!(read(&mut m, 0, b), vec![Action::Pause]);
    assert_eq!(m.status().state, ExportState::Paused);
    assert!(m
        .status()
        .last_error
        .as_ref()
        .unwrap()
        .contains("100 bytes"));
}

#[test]
fn records_larger_than_the_sink_takes_are_skipped_under_skip_and_the_rest_goes() {
    let mut m = machine(json!({"on_permanent_error": "skip"}));
    let b = batch_of(vec![record(0, 10), record(1, 101), record(2, 10)]);
    assert_eq!(read(&mut m, 0, b), vec![Action::Acquire { bytes: 20 }]);
    m.handle(Event::Acquired);
    assert_eq!(seqs(&m), vec![0, 2]);
    assert_eq!(m.batch(0).unwrap().body.as_deref(), Some(&b"0,2"[..]));
    assert_eq!(m.status().records_skipped, 1);
}

#[test]
fn a_batch_of_only_oversized_records_moves_the_checkpoint_past_them() {
    let mut m = machine(json!({"on_permanent_error": "skip"}));
    let b = batch_of(vec![record(4, 200), record(5, 300)]);
    assert_eq!(read(&mut m, 4, b), vec![Action::Commit(6), start_read(6)]);
    assert_eq!(m.handle(Event::Committed), vec![]);
    assert_eq!(m.status().checkpoint, 6);
    assert_eq!(m.status().records_skipped, 2);
}

#[test]
fn records_removed_by_retention_are_counted_and_skipped() {
    let mut m = machine(json!({}));
    assert_eq!(m.start(3), vec![start_read(3)]);
    let trimmed = Event::ReadFailed(Error::SequenceTrimmed {
        name: "s".into(),
        requested: 3,
        oldest: 10,
    });
    assert_eq!(m.handle(trimmed), vec![Action::Commit(10), start_read(10)]);
    assert_eq!(m.handle(Event::Committed), vec![]);
    let s = m.status();
    assert_eq!((s.checkpoint, s.records_dropped_by_retention), (10, 7));
}

#[test]
fn a_deleted_stream_stops_the_export() {
    let mut m = machine(json!({}));
    m.start(0);
    let gone = Event::ReadFailed(Error::StreamDeleted("s".into()));
    assert_eq!(m.handle(gone), vec![Action::Stop]);
    assert_eq!(m.status().state, ExportState::Stopped);
    assert!(m.status().last_error.is_some());
}

#[test]
fn a_failed_read_is_tried_again_after_a_pause_and_an_empty_one_at_once() {
    let mut m = machine(json!({}));
    m.start(2);
    let failed_read = Event::ReadFailed(Error::Internal("read task failed".into()));
    assert_eq!(
        m.handle(failed_read),
        vec![Action::StartRead {
            from: 2,
            after: READ_ERROR_PAUSE
        }]
    );
    assert!(m.status().last_error.is_some());
    assert_eq!(
        m.handle(Event::BatchRead(Batch::default())),
        vec![start_read(2)]
    );
}

#[test]
fn a_disabled_export_reports_its_checkpoint_and_does_nothing() {
    let mut m = machine(json!({"disabled": true}));
    assert_eq!(m.status().state, ExportState::Disabled);
    assert_eq!(m.start(7), vec![Action::Stop]);
    assert_eq!(
        (m.status().state, m.status().checkpoint),
        (ExportState::Disabled, 7)
    );
}

#[test]
fn the_batch_shape_keeps_within_the_sinks_limits() {
    let def: ExportDefinition = serde_json::from_value(
        json!({"identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}, "batch_size": 50, "batch_bytes": 10, "batch_interval_ms": 20}),
    )
    .unwrap();
    let shape = BatchShape::new(&def, FakeSink.limits());
    assert_eq!(
        shape,
        BatchShape {
            max_records: 10,
            max_bytes: 10,
            interval: Duration::from_millis(20)
        }
    );
}
