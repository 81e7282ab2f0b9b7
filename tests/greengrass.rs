//! End-to-end tests of the Greengrass Stream Manager port: the official Python SDK
//! (`stream-manager==1.1.2`, in `.venv-gg`, made by tests/run-all.sh or here) against the real
//! `ferry` daemon, and raw protocol clients for what the SDK never sends (hostile frames,
//! clients that never read, shutdown during a long poll). The export tests run moto
//! (`FERRYTEST_MOTO_SERVER`) as Kinesis and S3.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::api::Daemon;
use support::{free_port, Ferry};

const TOKEN: &str = "app-token-1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, made the way tests/run-all.sh makes it when it is missing.
fn python() -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = root().join(".venv-gg");
    let python = venv.join("bin/python");
    let has_sdk = |p: &Path| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import stream_manager"])
                .status()
                .is_ok_and(|s| s.success())
    };
    if !has_sdk(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg("stream-manager==1.1.2")
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            made && has_sdk(&python),
            "the Greengrass SDK venv {} could not be made: run tests/run-all.sh (it needs python3 and PyPI)",
            venv.display()
        );
    }
    python
}

/// A daemon with the Greengrass port on a free port, `tokens` accepted (none: auth off).
fn start(dir: &Path, tokens: &[&str], extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let list: Vec<String> = tokens.iter().map(|t| format!("{t:?}")).collect();
    let toml = format!(
        "[greengrass]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntokens = [{}]\n{extra}\n",
        list.join(", ")
    );
    (Daemon::start(dir, &toml, None), port)
}

/// Runs one case of tests/greengrass/sdk_checks.py; it must pass every check.
fn sdk(d: &Daemon, port: u16, case: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/greengrass/sdk_checks.py"))
        .arg(case)
        .env("FERRYTEST_GG_PORT", port.to_string())
        .env_remove("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("ALL CHECKS PASSED"),
        "sdk_checks.py {case} failed:\n{text}\n--- ferry's log:\n{}",
        d.logs()
    );
    text
}

fn with_token() -> [(&'static str, &'static str); 1] {
    [("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)]
}

/// Exports defined through the port get a region and keys, so disabled ones start offline.
const OFFLINE_EXPORTS: &str = "[greengrass.exports]\nregion = \"us-east-1\"\ncredentials = { access_key_id = \"AKIDOFFLINE\", secret_access_key = \"offline\" }\n";

#[test]
fn the_specs_acceptance_script_passes_with_the_official_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[TOKEN, "another-app"], OFFLINE_EXPORTS);
    let out = sdk(&d, port, "acceptance", &with_token());
    assert!(
        out.contains("PASS long-poll sees the concurrent append"),
        "{out}"
    );
    assert!(out.contains("PASS export status listed"), "{out}");
}

#[test]
fn reads_wait_for_their_minimum_and_end_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    sdk(&d, port, "waiting_reads", &[]);
}

#[test]
fn a_read_from_a_trimmed_sequence_number_starts_at_the_oldest_message() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    sdk(&d, port, "trimmed", &[]);
}

#[test]
fn a_full_stream_refuses_or_overwrites_as_its_strategy_says() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    sdk(&d, port, "full", &[]);
}

#[test]
fn an_update_changes_the_limits_and_refuses_a_persistence_change() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    sdk(&d, port, "update", &[]);
}

#[test]
fn two_clients_append_to_and_read_one_stream_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[TOKEN], "");
    sdk(&d, port, "concurrent", &with_token());
}

#[test]
fn a_wrong_or_missing_token_is_refused_as_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[TOKEN], "");
    sdk(
        &d,
        port,
        "wrong_token",
        &[("FERRYTEST_GG_WRONG_TOKEN", "app-token-2")],
    );
    // What the SDK reports only as a failed connection is status 2 on the wire.
    let mut c = raw::Client::connect(port);
    let answer = c.handshake(Some("app-token-2"));
    assert_eq!(raw::status(&answer), 2, "Unauthorized");
    assert!(c.is_closed(), "the connection is closed after the refusal");
    let mut ok = raw::Client::connect(port);
    assert_eq!(raw::status(&ok.handshake(Some(TOKEN))), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_written_through_the_sdk_is_read_through_the_http_api_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    let sdk_run = tokio::task::block_in_place(|| sdk(&d, port, "sdk_write", &[]));
    assert!(sdk_run.contains("PASS appended"), "{sdk_run}");
    let (s, v) = d
        .call(Method::GET, "/v1/streams/interop_sdk/records?from=0", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let payloads: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["payload_base64"].as_str().unwrap())
        .collect();
    // "from the sdk", 00 ff " binary", "third"
    assert_eq!(payloads, ["ZnJvbSB0aGUgc2Rr", "AP8gYmluYXJ5", "dGhpcmQ="]);
    let (ok, out, err) = d.cli(&["read", "interop_sdk", "--json"]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[2]["payload"], "third");
    assert_eq!(lines[0]["sequence_number"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_written_through_the_http_api_and_the_cli_is_read_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "");
    d.create(json!({"name": "interop_api", "max_size_bytes": 65536,
                    "strategy_on_full": "overwrite_oldest_data"}))
        .await;
    let (s, v) = d.append("interop_api", &["one", "two"]).await;
    assert_eq!(s, 201, "{v}");
    let (ok, _, err) = d.cli(&["append", "interop_api", "--data", "three"]);
    assert!(ok, "{err}");
    tokio::task::block_in_place(|| sdk(&d, port, "sdk_read", &[]));
}

#[test]
fn hostile_frames_close_or_answer_only_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "max_frame_bytes = 4096\n");
    let mut bystander = raw::Client::connect(port);
    assert_eq!(raw::status(&bystander.handshake(None)), 0);

    // An unknown op is answered with op 17 / status 18 and the connection goes on.
    let mut c = raw::Client::connect(port);
    c.handshake(None);
    let answer = c.request(42, &[("requestId", raw::V::T("u1"))]);
    assert_eq!((answer.0, raw::status(&answer)), (17, 18));
    let answer = c.request(11, &[("requestId", raw::V::T("l1"))]);
    assert_eq!((answer.0, raw::status(&answer)), (12, 0));

    // Larger than max_frame_bytes: skipped unread and answered RequestPayloadTooLarge.
    let big = vec![7u8; 10_000];
    let answer = c.request(
        4,
        &[
            ("requestId", raw::V::T("a1")),
            ("name", raw::V::T("s")),
            ("payload", raw::V::B(&big)),
        ],
    );
    assert_eq!((answer.0, raw::status(&answer)), (9, 4));
    let answer = c.request(11, &[("requestId", raw::V::T("l2"))]);
    assert_eq!(raw::status(&answer), 0, "the connection still works");

    // Truncated CBOR cannot be answered: that connection closes.
    c.send_frame(4, &[0xa3, 0x69, b'r']);
    assert!(c.is_closed());

    // A length of 2^30 + 1 is a protocol violation; 2^30 is refused before any allocation.
    for length in [(1u32 << 30) + 1, 1 << 30] {
        let mut h = raw::Client::connect(port);
        h.handshake(None);
        h.write(&length.to_be_bytes());
        h.write(&[4, 0xa0]);
        drop(h);
    }
    let mut v = raw::Client::connect(port);
    v.handshake(None);
    v.write(&((1u32 << 30) + 1).to_be_bytes());
    v.write(&[4]);
    assert!(v.is_closed(), "a length above 2^30 closes the connection");

    let answer = bystander.request(11, &[("requestId", raw::V::T("b1"))]);
    assert_eq!(
        raw::status(&answer),
        0,
        "other connections are not affected"
    );
    assert!(!d.logs().contains("panicked"), "{}", d.logs());
}

#[test]
fn a_client_that_never_reads_does_not_hold_up_others_and_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (d, port) = start(dir.path(), &[], "write_timeout_ms = 1000\n");
    let mut c = raw::Client::connect(port);
    c.handshake(None);
    c.create("big");
    let chunk = vec![b'x'; 200_000];
    for _ in 0..20 {
        c.append("big", &chunk);
    }
    // The hog asks for 4 MB answers, 100 times, and reads none of them.
    let mut hog = raw::Client::connect(port);
    hog.handshake(None);
    for i in 0..100 {
        hog.send_read(&format!("h{i}"), "big", 0, 20, 0);
    }
    let started = Instant::now();
    for i in 0..20 {
        let a = c.request(11, &[("requestId", raw::V::T(&format!("l{i}")))]);
        assert_eq!(raw::status(&a), 0);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "others were held up"
    );
    let waited = Instant::now();
    while !d.logs().contains("Greengrass client dropped") {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the hog was never dropped:\n{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        hog.drains_to_close(Duration::from_secs(60)),
        "the hog's connection is closed"
    );
}

#[test]
fn a_long_poll_is_answered_when_ferry_stops_and_ferry_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[embedded_broker]\nlisten = \"127.0.0.1:{}\"\n[greengrass]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    let ferry = Ferry::start(&config, dir.path());
    let mut c = raw::Client::connect(port);
    c.handshake(None);
    c.create("poll");
    c.send_read("p1", "poll", 0, 1, 60_000);
    // Frames are taken in order: once the list is answered, the read is running.
    let listed = c.request(11, &[("requestId", raw::V::T("l"))]);
    assert_eq!((listed.0, raw::status(&listed)), (12, 0));
    let waiter = std::thread::spawn(move || {
        let answer = c.read_frame();
        (answer, Instant::now())
    });
    let stopping = Instant::now();
    let (status, log) = ferry.terminate();
    assert!(status.success(), "{log}");
    let (answer, answered) = waiter.join().unwrap();
    assert_eq!(
        (answer.0, raw::status(&answer)),
        (10, 13),
        "NotEnoughMessages at shutdown"
    );
    assert!(
        answered.duration_since(stopping) < Duration::from_secs(10),
        "{log}"
    );
    assert!(log.contains("Greengrass server stopped"), "{log}");
}

#[path = "greengrass/raw.rs"]
mod raw;

#[path = "greengrass/moto.rs"]
mod moto;

#[path = "greengrass/exports.rs"]
mod exports;
