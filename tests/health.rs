//! Readiness with reasons, and the process readings in /metrics, against the daemon.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::api::Daemon;

/// Polls /readyz until `pred` holds for (status, body), at most 30 s.
async fn wait_ready(d: &Daemon, what: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (s, v) = d.call(Method::GET, "/readyz", None).await;
        if pred(s, &v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "readiness never {what}: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_full_stream_and_a_failing_export_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    wait_ready(&d, "ready", |s, v| s == 200 && v["status"] == "ready").await;

    // A small stream under reject_new_data, filled until it refuses.
    d.create(json!({"name": "tiny", "max_size_bytes": 1024}))
        .await;
    loop {
        let (s, _) = d
            .call(
                Method::POST,
                "/v1/streams/tiny/records",
                Some(json!({"records": [{"payload": "x".repeat(100)}]})),
            )
            .await;
        if s == 507 {
            break;
        }
        assert_eq!(s, 201);
    }
    let v = wait_ready(&d, "not ready", |s, _| s == 503).await;
    let reasons = v["reasons"].to_string();
    assert!(reasons.contains("\"tiny\\\" is full"), "{reasons}");

    // More room: ready again.
    let (s, _) = d
        .call(
            Method::PATCH,
            "/v1/streams/tiny",
            Some(json!({"max_size_bytes": 1048576})),
        )
        .await;
    assert_eq!(s, 200);
    wait_ready(&d, "ready again", |s, _| s == 200).await;

    // An export whose sink is down (port 9 is closed) is retrying: a reason of its own.
    d.update(json!({"name": "tiny", "exports": [
        {"identifier": "down", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}}]}))
        .await;
    let v = wait_ready(&d, "not ready for the export", |s, v| {
        s == 503 && v["reasons"].to_string().contains("\"down\\\" of stream")
    })
    .await;
    assert!(v["reasons"].to_string().contains("retrying"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_version_memory_cpu_and_free_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let text = d.metrics().await;
    let metrics = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses");
    let value = |name: &str| -> f64 {
        let s = metrics
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} has an unexpected type"),
        }
    };
    assert_eq!(value("ferry_build_info"), 1.0);
    assert!(text.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))));
    assert!(value("ferry_process_resident_memory_bytes") > 1_000_000.0);
    assert!(value("ferry_process_cpu_seconds_total") >= 0.0);
    assert!(value("ferry_data_dir_free_bytes") > 0.0);
}
