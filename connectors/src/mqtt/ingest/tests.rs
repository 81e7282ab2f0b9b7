//! The ingest and ack tasks together, against a real stream manager in a temporary directory:
//! what is acknowledged, and under which counter each message lands.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ferry_stream_manager::fault::FaultInjectingFs;
use ferry_stream_manager::{ManagerOptions, StrategyOnFull, StreamDefinition};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tokio::task::JoinHandle;

use super::*;
use crate::mqtt::ack::{ack_loop, lock, AckQueue, OwedAck, SharedAckQueue};
use crate::mqtt::metrics::IngestSnapshot;
use crate::mqtt::topic::{OnFull, Route};

const WAIT: Duration = Duration::from_secs(30);

struct Pipeline {
    _dir: tempfile::TempDir,
    manager: Arc<StreamManager>,
    metrics: Arc<IngestMetrics>,
    tx: mpsc::Sender<Incoming>,
    acks: SharedAckQueue,
    acker: JoinHandle<()>,
}

/// Ingest and ack tasks for routes `filter -> stream` that hold back on a full stream, over
/// streams made by `streams`.
fn pipeline(
    fs: Arc<FaultInjectingFs>,
    streams: Vec<StreamDefinition>,
    routes: &[(&str, &str)],
) -> Pipeline {
    let routes = routes
        .iter()
        .map(|(filter, stream)| route(filter, stream, OnFull::Hold))
        .collect();
    pipeline_of(fs, streams, routes)
}

fn route(filter: &str, stream: &str, on_full: OnFull) -> Route {
    Route {
        filter: filter.into(),
        stream: stream.into(),
        broker: None,
        on_full,
    }
}

fn pipeline_of(
    fs: Arc<FaultInjectingFs>,
    streams: Vec<StreamDefinition>,
    routes: Vec<Route>,
) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let opts = ManagerOptions {
        fs,
        ..Default::default()
    };
    let manager = Arc::new(StreamManager::open(dir.path(), opts).unwrap());
    for def in streams {
        manager.create_stream(def).unwrap();
    }
    let metrics = Arc::new(IngestMetrics::default());
    let ingest = Ingest::new(
        Router::for_broker(&routes, "b"),
        manager.clone(),
        metrics.clone(),
        1024 * 1024,
        CancellationToken::new(),
    );
    let (tx, rx) = mpsc::channel(16);
    let (ack_tx, ack_rx) = mpsc::channel(16);
    tokio::spawn(ingest.run(rx, ack_tx));
    // No event loop: every ack stays in the queue, where the test reads it.
    let (client, _) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 16);
    let acks = Arc::new(Mutex::new(AckQueue::default()));
    let generation = Arc::new(AtomicU64::new(1));
    let acker = tokio::spawn(ack_loop(
        ack_rx,
        client,
        acks.clone(),
        generation,
        metrics.clone(),
    ));
    Pipeline {
        _dir: dir,
        manager,
        metrics,
        tx,
        acks,
        acker,
    }
}

fn stream(name: &str, max_size_bytes: u64) -> StreamDefinition {
    let mut def = StreamDefinition::new(name);
    def.max_size_bytes = max_size_bytes;
    def.segment_size_bytes = max_size_bytes;
    def.strategy_on_full = StrategyOnFull::RejectNewData;
    def
}

impl Pipeline {
    async fn send(&self, pkid: u16, topic: &str, payload_bytes: usize, qos: QoS) {
        let mut publish = Publish::new(topic, qos, vec![b'x'; payload_bytes]);
        publish.pkid = pkid;
        let msg = Incoming {
            publish,
            generation: 1,
        };
        self.tx.send(msg).await.unwrap();
    }

    /// Lets both tasks finish; returns the packet ids acknowledged, and the counters.
    async fn finish(self) -> (Vec<u16>, IngestSnapshot) {
        drop(self.tx);
        tokio::time::timeout(WAIT, self.acker)
            .await
            .unwrap()
            .unwrap();
        let mut out: Vec<OwedAck> = Vec::new();
        lock(&self.acks).take_ready(1, &mut out);
        (
            out.iter().map(|a| a.pkid).collect(),
            self.metrics.snapshot(),
        )
    }

    fn records(&self, name: &str) -> u64 {
        self.manager
            .stream(name)
            .unwrap()
            .describe()
            .unwrap()
            .counters
            .appended_records
    }
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert!(waited.await.is_ok(), "timed out waiting for {what}");
}

#[tokio::test]
async fn a_message_too_large_for_its_stream_is_acked_and_counted_as_invalid_not_as_stored() {
    let p = pipeline(
        Default::default(),
        vec![stream("small", 1024)],
        &[("#", "small")],
    );
    p.send(1, "t", 10, QoS::AtLeastOnce).await;
    p.send(2, "t", 2000, QoS::AtLeastOnce).await; // within max_message_size_bytes
    p.send(3, "t", 10, QoS::AtLeastOnce).await;
    let (acked, s) = p.finish().await;
    assert_eq!(
        acked,
        vec![1, 2, 3],
        "a permanent refusal is acknowledged, in order"
    );
    assert_eq!(s.rejected_invalid, 1, "{s:?}");
    assert_eq!(s.rejected_oversized, 0, "{s:?}");
    assert_eq!(s.messages_stored, 2, "{s:?}");
    assert_eq!(s.records_appended, 2, "{s:?}");
    assert_eq!(s.backpressure_waits, 0, "{s:?}");
}

#[tokio::test]
async fn a_message_refused_by_one_of_its_streams_is_not_counted_as_stored() {
    let p = pipeline(
        Default::default(),
        vec![stream("big", 1 << 20), stream("small", 1024)],
        &[("#", "big"), ("#", "small")],
    );
    p.send(1, "t", 2000, QoS::AtLeastOnce).await;
    let (acked, s) = p.finish().await;
    assert_eq!(acked, vec![1]);
    assert_eq!(s.records_appended, 1, "{s:?}");
    assert_eq!(s.rejected_invalid, 1, "{s:?}");
    assert_eq!(s.messages_stored, 0, "{s:?}");
}

#[tokio::test]
async fn a_qos0_message_a_full_stream_refuses_is_dropped_and_not_counted_as_stored() {
    let p = pipeline(Default::default(), vec![stream("s", 1024)], &[("#", "s")]);
    p.send(1, "t", 600, QoS::AtMostOnce).await;
    p.send(2, "t", 600, QoS::AtMostOnce).await; // no room left for a second one
    let (acked, s) = p.finish().await;
    assert!(acked.is_empty(), "QoS 0 is never acknowledged: {acked:?}");
    assert_eq!(s.messages_stored, 1, "{s:?}");
    assert_eq!(s.dropped_qos0, 1, "{s:?}");
    assert_eq!(s.rejected_invalid + s.rejected_oversized, 0, "{s:?}");
}

#[tokio::test]
async fn a_route_to_a_missing_stream_is_acked_and_counted_as_unroutable() {
    let p = pipeline(Default::default(), vec![], &[("#", "gone")]);
    p.send(1, "t", 10, QoS::AtLeastOnce).await;
    let (acked, s) = p.finish().await;
    assert_eq!(acked, vec![1]);
    assert_eq!(s.rejected_unroutable, 1, "{s:?}");
    assert_eq!(s.messages_stored, 0, "{s:?}");
}

#[tokio::test]
async fn a_full_disk_holds_the_ack_back_until_the_message_is_stored() {
    let fs = Arc::new(FaultInjectingFs::default());
    let p = pipeline(fs.clone(), vec![stream("s", 1 << 20)], &[("#", "s")]);
    fs.set_space_left_bytes(0);
    p.send(1, "t", 10, QoS::AtLeastOnce).await;
    let m = p.metrics.clone();
    wait_for("three retries", || {
        m.backpressure_waits.load(Ordering::Relaxed) >= 3
    })
    .await;
    let s = m.snapshot();
    assert_eq!(s.messages_stored, 0, "{s:?}");
    assert_eq!(
        s.rejected_invalid + s.rejected_oversized + s.rejected_unroutable + s.dropped_qos0,
        0,
        "a transient error is no reason to give a message up: {s:?}"
    );
    let mut owed = Vec::new();
    lock(&p.acks).take_ready(1, &mut owed);
    assert!(owed.is_empty(), "acked before it was stored: {owed:?}");
    assert_eq!(p.records("s"), 0);

    fs.set_space_left_bytes(i64::MAX);
    wait_for("the message to be stored", || {
        m.messages_stored.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(p.records("s"), 1);
    let (acked, _) = p.finish().await;
    assert_eq!(acked, vec![1]);
}

#[tokio::test]
async fn a_full_stream_under_drop_is_acked_and_counted_and_the_other_streams_keep_flowing() {
    let p = pipeline_of(
        Default::default(),
        vec![stream("alarms", 1024), stream("telemetry", 1 << 20)],
        vec![
            route("alarms/#", "alarms", OnFull::Drop),
            route("telemetry/#", "telemetry", OnFull::Drop),
        ],
    );
    // 600 bytes fit once into the 1 KiB alarms stream; the second is refused as full.
    p.send(1, "alarms/a", 600, QoS::AtLeastOnce).await;
    p.send(2, "alarms/a", 600, QoS::AtLeastOnce).await;
    for pkid in 3..=10 {
        p.send(pkid, "telemetry/t", 100, QoS::AtLeastOnce).await;
    }
    wait_for("telemetry stored", || p.records("telemetry") == 8).await;
    let (acked, m) = p.finish().await;
    assert_eq!(
        acked,
        (1..=10).collect::<Vec<u16>>(),
        "every message acked, in order"
    );
    assert_eq!(m.dropped_full, 1);
    assert_eq!(
        m.messages_stored, 9,
        "the dropped one is not counted as stored"
    );
    assert_eq!(m.backpressure_waits, 0, "nothing was held back");
}

#[tokio::test]
async fn a_full_stream_under_divert_stores_the_message_in_the_overflow_stream() {
    let p = pipeline_of(
        Default::default(),
        vec![stream("alarms", 1024), stream("overflow", 1 << 20)],
        vec![route(
            "alarms/#",
            "alarms",
            OnFull::Divert("overflow".into()),
        )],
    );
    p.send(1, "alarms/a", 600, QoS::AtLeastOnce).await;
    p.send(2, "alarms/a", 600, QoS::AtLeastOnce).await;
    wait_for("the second message diverted", || p.records("overflow") == 1).await;
    let (acked, m) = p.finish().await;
    assert_eq!(acked, vec![1, 2]);
    assert_eq!((m.diverted, m.dropped_full, m.messages_stored), (1, 0, 2));
}
