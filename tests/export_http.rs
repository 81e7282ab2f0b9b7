//! Export to an HTTP sink the test controls: a sink that is down and comes back (after a long
//! outage, noticed within a second by the reachability probe), 5xx and 429
//! with Retry-After, slow answers and answers slower than the timeout, connections cut in the
//! middle of a request, permanent 4xx under each policy, Ferry SIGKILLed mid-export with one
//! and with several batches in flight, and priorities under a bandwidth cap.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use support::api::Daemon;
use support::free_port;

/// The test's HTTP sink: answers from a script (then 200), records what it accepted.
#[derive(Default)]
struct SinkState {
    script: VecDeque<(u16, Option<u64>)>,
    delay: Duration,
    /// (path, sequence numbers, when) of every accepted request.
    accepted: Vec<(String, Vec<u64>, Instant)>,
    /// When each request arrived, accepted or not.
    arrivals: Vec<(Instant, u16)>,
    /// Requests being answered now, and the most there were at once.
    open: usize,
    most_open: usize,
}

type Shared = Arc<Mutex<SinkState>>;

async fn ingest(
    State(s): State<Shared>,
    Path(path): Path<String>,
    body: String,
) -> impl IntoResponse {
    let (status, retry_after, delay) = {
        let mut st = s.lock().unwrap();
        let (status, ra) = st.script.pop_front().unwrap_or((200, None));
        st.arrivals.push((Instant::now(), status));
        st.open += 1;
        st.most_open = st.most_open.max(st.open);
        (status, ra, st.delay)
    };
    tokio::time::sleep(delay).await;
    s.lock().unwrap().open -= 1;
    if status == 200 {
        let seqs = body
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["sequence_number"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        s.lock()
            .unwrap()
            .accepted
            .push((path, seqs, Instant::now()));
    }
    let mut resp = StatusCode::from_u16(status).unwrap().into_response();
    if let Some(ra) = retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.to_string().parse().unwrap());
    }
    resp
}

async fn start_sink(port: u16, state: Shared) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route("/:path", axum::routing::post(ingest))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn export(id: &str, url: &str, extra: Value) -> Value {
    let mut e = json!({"identifier": id, "kind": "http", "settings": {"url": url}, "batch_size": 20, "batch_interval_ms": 50});
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn delivered(state: &Shared, path: &str) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for (p, seqs, _) in &state.lock().unwrap().accepted {
        if p == path {
            for s in seqs {
                *out.entry(*s).or_insert(0) += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_was_down_gets_every_record_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let port = free_port(); // nothing listens yet: connection refused
    let url = format!("http://127.0.0.1:{port}/down");
    d.create(json!({"name": "s", "exports": [export("e", &url, json!({}))]}))
        .await;
    d.fill("s", 100, 10).await;
    let s = d
        .wait_export("s", "retried", |s| {
            s["state"] == "retrying" && s["retries"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(s["checkpoint"], 0);
    assert!(s["last_error"].as_str().unwrap().contains("POST"), "{s}");
    let sink: Shared = Arc::default();
    let _server = start_sink(port, sink.clone()).await;
    d.wait_export("s", "caught up", |s| {
        s["checkpoint"] == 100 && s["state"] == "running"
    })
    .await;
    let got = delivered(&sink, "down");
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert!(
        got.values().all(|&n| n == 1),
        "no duplicates without a crash"
    );
    let s = d.export_status("s").await;
    assert_eq!(
        (s["records_sent"].as_u64(), s["lag_records"].as_u64()),
        (Some(100), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_back_after_a_long_outage_gets_the_first_batch_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let port = free_port(); // nothing listens yet: connection refused
    let url = format!("http://127.0.0.1:{port}/back");
    d.create(json!({"name": "s", "exports": [export("e", &url, json!({}))]}))
        .await;
    d.fill("s", 20, 10).await; // one batch
                               // After eight failed requests (some 13 to 25 s into the outage) the backoff's next wait is
                               // 12.8 to 25.6 s: only the reachability probe can make the first batch leave sooner.
    d.wait_export("s", "down for long", |s| s["retries"].as_u64() >= Some(8))
        .await;
    let sink: Shared = Arc::default();
    let back = Instant::now();
    let _server = start_sink(port, sink.clone()).await;
    d.wait_export("s", "delivered", |s| s["checkpoint"] == 20)
        .await;
    let first = sink.lock().unwrap().arrivals[0].0;
    assert!(
        first - back <= Duration::from_millis(1500),
        "the first batch arrived {:?} after the sink was back",
        first - back
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_429_are_retried_honouring_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let sink: Shared = Arc::default();
    sink.lock().unwrap().script =
        VecDeque::from([(500, None), (503, None), (429, Some(1)), (200, None)]);
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    d.create(json!({"name": "s"})).await;
    d.fill("s", 30, 10).await;
    let url = format!("http://127.0.0.1:{port}/flaky");
    d.update(json!({"name": "s", "exports": [export("e", &url, json!({}))]}))
        .await;
    let s = d
        .wait_export("s", "delivered", |s| s["checkpoint"] == 30)
        .await;
    assert!(s["retries"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(delivered(&sink, "flaky").len(), 30);
    let arrivals = sink.lock().unwrap().arrivals.clone();
    let after_429 = arrivals.iter().position(|(_, st)| *st == 429).unwrap();
    let gap = arrivals[after_429 + 1].0 - arrivals[after_429].0;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured ({gap:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_is_waited_for_and_one_slower_than_the_timeout_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let sink: Shared = Arc::default();
    sink.lock().unwrap().delay = Duration::from_millis(300);
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    let url = format!("http://127.0.0.1:{port}/slow");
    let settings = json!({"settings": {"url": url, "timeout_ms": 1000}});
    d.create(json!({"name": "s", "exports": [export("e", &url, settings)]}))
        .await;
    d.fill("s", 20, 10).await;
    let s = d
        .wait_export("s", "delivered", |s| s["checkpoint"] == 20)
        .await;
    assert_eq!(
        s["retries"], 0,
        "an answer within timeout_ms is waited for: {s}"
    );
    // Slower than timeout_ms: Ferry gives up on the request and retries it.
    sink.lock().unwrap().delay = Duration::from_millis(1500);
    d.fill("s", 20, 10).await;
    let s = d
        .wait_export("s", "retrying", |s| s["retries"].as_u64() >= Some(1))
        .await;
    let error = s["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out (timeout_ms = 1000)"), "{s}");
    sink.lock().unwrap().delay = Duration::ZERO;
    d.wait_export("s", "caught up", |s| s["checkpoint"] == 40)
        .await;
    // A request given up on may still have been taken by the sink: duplicates, never gaps.
    let got = delivered(&sink, "slow");
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
}

/// FAKE network fault: a TCP relay in front of the sink that cuts the first `cut` connections
/// after reading part of the request (a real sink cannot be made to do that on demand), then
/// relays everything.
async fn cutting_relay(upstream: u16, cut: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            seen += 1;
            if seen <= cut {
                let mut part = [0u8; 64];
                let _ = tokio::io::AsyncReadExt::read(&mut client, &mut part).await;
                drop(client); // unread request bytes left: the kernel answers with a reset
                continue;
            }
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_in_the_middle_of_a_request_is_retried_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let sink: Shared = Arc::default();
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    let relay = cutting_relay(port, 2).await;
    let url = format!("http://127.0.0.1:{relay}/cut");
    d.create(json!({"name": "s", "exports": [export("e", &url, json!({}))]}))
        .await;
    d.fill("s", 60, 10).await;
    let s = d
        .wait_export("s", "delivered", |s| s["checkpoint"] == 60)
        .await;
    assert!(s["retries"].as_u64() >= Some(2), "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("POST"),
        "{s}"
    );
    let got = delivered(&sink, "cut");
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>()
    );
    assert!(
        got.values().all(|&n| n == 1),
        "the cut requests never reached the sink: no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_pauses_or_skips_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let sink: Shared = Arc::default();
    sink.lock().unwrap().script = VecDeque::from([(400, None), (400, None)]);
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    d.create(json!({"name": "p"})).await;
    d.fill("p", 20, 10).await;
    let url = format!("http://127.0.0.1:{port}/perm");
    d.update(json!({"name": "p", "exports": [export("e", &url, json!({}))]}))
        .await;
    let s = d
        .wait_export("p", "paused", |s| s["state"] == "paused")
        .await;
    assert_eq!(
        (s["checkpoint"].as_u64(), s["last_error"].as_str()),
        (Some(0), Some("HTTP 400"))
    );
    // The same refusal with on_permanent_error = skip: the batch is skipped and counted.
    d.update(
        json!({"name": "p", "exports": [export("e", &url, json!({"on_permanent_error": "skip"}))]}),
    )
    .await;
    d.fill("p", 20, 10).await;
    let s = d
        .wait_export("p", "moved on", |s| s["checkpoint"] == 40)
        .await;
    assert_eq!(s["records_skipped"], 20, "{s}");
    assert_eq!(
        delivered(&sink, "perm").len(),
        20,
        "the batch after the skipped one arrived"
    );
}

/// Fills 600 records, exports them in batches of 20 with at most `in_flight` batches at once
/// to a sink that takes 30 ms per request, SIGKILLs Ferry mid-export and restarts it: nothing
/// is lost, and at most `in_flight` batches arrive twice.
async fn sigkill_mid_export(in_flight: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "", None);
    let sink: Shared = Arc::default();
    sink.lock().unwrap().delay = Duration::from_millis(30);
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    let url = format!("http://127.0.0.1:{port}/kill");
    d.create(json!({"name": "k"})).await;
    d.fill("k", 600, 10).await;
    let window = json!({ "max_in_flight_batches": in_flight });
    d.update(json!({"name": "k", "exports": [export("e", &url, window)]}))
        .await;
    d.wait_export("k", "under way", |s| s["checkpoint"].as_u64() >= Some(100))
        .await;
    d.kill9();
    // Afterwards the killed daemon's requests may still be answered beside the new ones.
    let most_open = sink.lock().unwrap().most_open as u64;
    let before = delivered(&sink, "kill").len();
    assert!(before < 600, "the kill came too late to test anything");
    d.restart();
    d.wait_export("k", "finished", |s| s["checkpoint"] == 600)
        .await;
    let got = delivered(&sink, "kill");
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..600).collect::<Vec<_>>(),
        "nothing lost"
    );
    let duplicates: u64 = got.values().map(|&n| n as u64 - 1).sum();
    assert!(
        duplicates <= in_flight * 20,
        "{duplicates} duplicates; at most {in_flight} batch(es) of 20 may be sent twice"
    );
    assert!(
        most_open <= in_flight,
        "{most_open} requests at once, with max_in_flight_batches = {in_flight}"
    );
    if in_flight > 1 {
        assert!(
            most_open > 1,
            "the batches never overlapped: nothing tested"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_export_resumes_from_the_checkpoint_with_at_most_one_batch_again() {
    sigkill_mid_export(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_export_resends_at_most_max_in_flight_batches() {
    sigkill_mid_export(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_bandwidth_cap_the_high_priority_backlog_drains_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        "[export]\nbandwidth_bytes_per_second = 40000\n",
        None,
    );
    let sink: Shared = Arc::default();
    let port = free_port();
    let _server = start_sink(port, sink.clone()).await;
    for s in ["low", "high"] {
        d.create(json!({"name": s})).await;
        d.fill(s, 100, 400).await;
    }
    // The low-priority export starts first; the high-priority one must still drain first.
    for (s, prio) in [("low", 9), ("high", 1)] {
        let url = format!("http://127.0.0.1:{port}/{s}");
        d.update(json!({"name": s, "exports": [export("e", &url, json!({"priority": prio}))]}))
            .await;
    }
    d.wait_export("low", "drained", |s| s["checkpoint"] == 100)
        .await;
    let accepted = sink.lock().unwrap().accepted.clone();
    let last_high = accepted.iter().rposition(|(p, _, _)| p == "high").unwrap();
    let low_before: usize = accepted[..last_high]
        .iter()
        .filter(|(p, _, _)| p == "low")
        .map(|(_, s, _)| s.len())
        .sum();
    assert!(
        low_before <= 20,
        "{low_before} low-priority records went before the high-priority backlog was done"
    );
    assert_eq!(delivered(&sink, "high").len(), 100);
    assert_eq!(delivered(&sink, "low").len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_retention_removed_before_export_are_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let port = free_port(); // the sink stays down while the stream overwrites its oldest data
    let url = format!("http://127.0.0.1:{port}/late");
    d.create(json!({"name": "r", "max_size_bytes": 65536, "strategy_on_full": "overwrite_oldest_data", "exports": [export("e", &url, json!({}))]})).await;
    d.fill("r", 1000, 100).await;
    let (_, v) = d.call(reqwest::Method::GET, "/v1/streams/r", None).await;
    let first = v["status"]["first_sequence_number"].as_u64().unwrap();
    assert!(first > 0, "retention removed the oldest records");
    // While the sink is down the lag is what the stream holds, in the status and in /metrics.
    let s = &v["exports"][0];
    let (records, bytes) = (&v["status"]["records"], &v["status"]["total_bytes"]);
    assert_eq!(
        (&s["lag_records"], &s["lag_bytes"]),
        (records, bytes),
        "{s}"
    );
    let metrics = d.metrics().await;
    for (name, value) in [("records", records), ("bytes", bytes)] {
        let line = format!("ferry_export_lag_{name}{{stream=\"r\",export=\"e\"}} {value}");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    let (ok, out, err) = d.cli(&["describe", "r"]);
    let lag = format!("lag {records} records ({bytes} bytes)");
    assert!(ok && out.contains(&lag), "{lag} missing:\n{out}{err}");
    let sink: Shared = Arc::default();
    let _server = start_sink(port, sink.clone()).await;
    let s = d
        .wait_export("r", "caught up", |s| s["checkpoint"] == 1000)
        .await;
    let dropped = s["records_dropped_by_retention"].as_u64().unwrap();
    // The batch already in hand when the sink went down is still delivered from memory.
    assert!(dropped > 0 && dropped <= first, "{s}");
    assert_eq!(
        delivered(&sink, "late").len() as u64 + dropped,
        1000,
        "every record was either delivered or counted as dropped"
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains(&format!("ferry_export_records_dropped_total{{stream=\"r\",export=\"e\",reason=\"retention\"}} {dropped}")),
        "{metrics}"
    );
}
