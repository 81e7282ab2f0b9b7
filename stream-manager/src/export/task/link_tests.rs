//! The loop with several batches in flight and a sink that goes away, on tokio's paused clock:
//! what a slow or broken link does to the window, the checkpoint and the first batch after
//! the sink is back.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::tests::{start_with, Harness, ScriptedSink};
use super::*;
use crate::export::ExportState;

/// How often each record reached the sink, successful or not.
fn attempts_per_record(h: &Harness) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for (_, seqs) in h.attempts() {
        for s in seqs {
            *out.entry(s).or_insert(0) += 1;
        }
    }
    out
}

async fn until_attempts(h: &Harness, n: usize) {
    let wait = async {
        while h.attempts().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("never {n} sends: {}", h.attempts().len()));
}

#[tokio::test(start_paused = true)]
async fn up_to_the_limit_batches_are_with_the_sink_at_once_and_each_record_arrives_once() {
    let sink = ScriptedSink {
        gate: Some(Semaphore::new(0)),
        ..ScriptedSink::default()
    };
    let h = start_with(50, json!({"max_in_flight_batches": 3}), sink).await;
    until_attempts(&h, 3).await;
    // However long the sink takes, no fourth batch goes and the checkpoint stays.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.attempts().len(), 3);
    assert_eq!(h.stored_checkpoint(), None);
    h.sink.gate.as_ref().unwrap().add_permits(100);
    h.until("drained", |s| s.checkpoint == 50).await;
    let per_record = attempts_per_record(&h);
    assert_eq!(
        per_record.keys().copied().collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(per_record.values().all(|&n| n == 1), "{per_record:?}");
    assert_eq!(h.stored_checkpoint(), Some(50));
    assert_eq!(h.shut_down().await.batches_sent, 10);
}

#[tokio::test(start_paused = true)]
async fn batches_confirmed_out_of_order_move_the_checkpoint_only_once_the_gap_is_filled() {
    // The first batch takes ten seconds, the two after it one second.
    let sink = ScriptedSink {
        delays: HashMap::from([
            (0, Duration::from_secs(10)),
            (5, Duration::from_secs(1)),
            (10, Duration::from_secs(1)),
        ]),
        ..ScriptedSink::default()
    };
    let h = start_with(15, json!({"max_in_flight_batches": 3}), sink).await;
    h.until("two batches confirmed", |s| s.batches_sent == 2)
        .await;
    assert_eq!(h.stored_checkpoint(), None, "the first batch is still open");
    assert_eq!(lock(&h.status).checkpoint, 0);
    h.until("all confirmed", |s| s.checkpoint == 15).await;
    let first_done = h.attempts()[0].0 + Duration::from_secs(10);
    assert!(Instant::now() >= first_done);
    assert_eq!(h.stored_checkpoint(), Some(15));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_batches_in_flight_stops_at_once_and_keeps_the_checkpoint_before_them() {
    let sink = ScriptedSink {
        gate: Some(Semaphore::new(0)),
        ..ScriptedSink::default()
    };
    let h = start_with(50, json!({"max_in_flight_batches": 4}), sink).await;
    until_attempts(&h, 4).await;
    let stored = h.stored_checkpoint();
    let s = h.shut_down().await;
    assert_eq!((s.state, s.checkpoint), (ExportState::Stopped, 0));
    assert_eq!(stored, None);
}

#[tokio::test(start_paused = true)]
async fn a_sink_down_for_a_minute_gets_the_first_batch_within_a_second_of_its_return() {
    let back_at = Instant::now() + Duration::from_secs(60);
    let sink = ScriptedSink {
        down_until: Some(back_at),
        can_probe: true,
        ..ScriptedSink::default()
    };
    let h = start_with(20, json!({}), sink).await;
    h.until("caught up", |s| s.checkpoint == 20).await;
    let attempts = h.attempts();
    let first_after = attempts.iter().find(|(at, _)| *at >= back_at).unwrap().0;
    assert!(
        first_after - back_at <= Duration::from_secs(1),
        "the first batch left {:?} after the sink was back",
        first_after - back_at
    );
    // The outage cost one request per backoff step (not one per probe, nor one per batch in
    // flight), and a probe a second, plus one right after each failed request.
    let during = attempts.iter().filter(|(at, _)| *at < back_at).count();
    assert!(
        (4..=12).contains(&during),
        "{during} requests during the outage"
    );
    let probes = lock(&h.sink.probes).clone();
    assert!(
        (55..=61 + during).contains(&probes.len()),
        "{} probes",
        probes.len()
    );
    let widest = probes.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(widest <= Duration::from_secs(1), "probes {widest:?} apart");
    let s = lock(&h.status).clone();
    assert_eq!((s.state, s.records_sent), (ExportState::Running, 20));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_cannot_probe_is_retried_on_its_backoff_alone() {
    let back_at = Instant::now() + Duration::from_secs(60);
    let sink = ScriptedSink {
        down_until: Some(back_at),
        ..ScriptedSink::default()
    };
    let h = start_with(5, json!({}), sink).await;
    h.until("caught up", |s| s.checkpoint == 5).await;
    let attempts = h.attempts();
    let mut gaps = attempts.windows(2).map(|w| w[1].0 - w[0].0);
    // 200 ms doubling to 30 s, each from the upper half of its step.
    assert!(gaps.all(|g| g >= Duration::from_millis(100) && g <= Duration::from_secs(30)));
    assert!(attempts.len() <= 12, "{} requests", attempts.len());
    assert!(lock(&h.sink.probes).is_empty());
    h.shut_down().await;
}
