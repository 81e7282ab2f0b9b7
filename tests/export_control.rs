//! An operator unsticks and moves exports with `ferry exports pause | resume | reset | skip`,
//! against the daemon and an HTTP sink the test controls (it refuses everything with 400 until
//! told otherwise).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};
use support::api::Daemon;
use support::free_port;

#[derive(Default)]
struct Sink {
    refuse: AtomicBool,
    /// Sequence numbers accepted, in arrival order.
    accepted: Mutex<Vec<u64>>,
}

async fn ingest(State(sink): State<Arc<Sink>>, body: String) -> StatusCode {
    if sink.refuse.load(Ordering::SeqCst) {
        return StatusCode::BAD_REQUEST;
    }
    let mut accepted = sink.accepted.lock().unwrap();
    for line in body.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        accepted.push(v["sequence_number"].as_u64().unwrap());
    }
    StatusCode::OK
}

async fn start_sink(sink: Arc<Sink>) -> String {
    let port = free_port();
    let app = axum::Router::new()
        .route("/in", axum::routing::post(ingest))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}/in")
}

fn accepted(sink: &Sink) -> Vec<u64> {
    sink.accepted.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_skips_resumes_pauses_and_resets_an_export_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "", None);
    let sink = Arc::new(Sink::default());
    sink.refuse.store(true, Ordering::SeqCst);
    let url = start_sink(sink.clone()).await;
    d.create(json!({"name": "c"})).await;
    d.fill("c", 30, 8).await;
    let export = json!({"identifier": "e", "kind": "http", "settings": {"url": url},
                        "batch_size": 10, "batch_interval_ms": 50,
                        // One batch at a time, so the sink sees them in order.
                        "max_in_flight_batches": 1});
    d.update(json!({"name": "c", "exports": [export]})).await;
    d.wait_export("c", "paused by the 400", |s| s["state"] == "paused")
        .await;

    // Skip the refused batch: the export starts again past it, and is refused again.
    let (ok, out, err) = d.cli_of("exports", &["skip", "c", "e", "--records", "10"]);
    assert!(ok, "{out}{err}");
    d.wait_export("c", "paused at 10", |s| {
        s["state"] == "paused" && s["checkpoint"] == 10
    })
    .await;

    // The sink accepts again; resume sends from the checkpoint on, the skipped ten never.
    sink.refuse.store(false, Ordering::SeqCst);
    let (ok, out, err) = d.cli_of("exports", &["resume", "c", "e"]);
    assert!(ok, "{out}{err}");
    d.wait_export("c", "drained", |s| s["checkpoint"] == 30)
        .await;
    assert_eq!(accepted(&sink), (10..30).collect::<Vec<_>>());

    // Pause is a definition change: it shows as disabled and survives in the definition.
    let (ok, out, err) = d.cli_of("exports", &["pause", "c", "e"]);
    assert!(ok && out.contains("disabled"), "{out}{err}");
    let (_, v) = d.call(reqwest::Method::GET, "/v1/streams/c", None).await;
    assert_eq!(v["definition"]["exports"][0]["disabled"], true);

    // Reset to 0 and resume: everything from 0 goes again, in order.
    let (ok, out, err) = d.cli_of("exports", &["reset", "c", "e", "--to", "0"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = d.cli_of("exports", &["resume", "c", "e"]);
    assert!(ok, "{out}{err}");
    d.wait_export("c", "drained again", |s| {
        s["checkpoint"] == 30 && s["state"] == "running"
    })
    .await;
    let all = accepted(&sink);
    assert_eq!(all[20..], (0..30).collect::<Vec<_>>()[..], "{all:?}");

    // An unknown export, and a reset beyond the end, are refused.
    let (ok, _, err) = d.cli_of("exports", &["pause", "c", "nope"]);
    assert!(!ok && err.contains("export_not_found"), "{err}");
    let (ok, _, err) = d.cli_of("exports", &["reset", "c", "e", "--to", "999"]);
    assert!(!ok && err.contains("invalid_definition"), "{err}");
}
