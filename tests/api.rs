//! End-to-end tests of the local HTTP API, `/metrics` and the `ferry streams` CLI against a
//! running daemon.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use rumqttc::QoS;
use serde_json::{json, Value};
use support::api::Daemon;
use support::publish;

/// The daemon these tests use: a 64 KiB body limit (for the 413 test) and, if given, a token.
fn start(dir: &Path, token: Option<&str>) -> Daemon {
    let token_line = token.map_or(String::new(), |t| format!("token = \"{t}\"\n"));
    let extra = format!("[api]\nmax_body_bytes = 65536\n{token_line}");
    Daemon::start(dir, &extra, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_can_be_created_listed_described_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    let (s, v) = d
        .call(
            Method::POST,
            "/v1/streams",
            Some(json!({"name": "s1", "max_size_bytes": 65536})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["definition"]["segment_size_bytes"], 16384);
    let (s, v) = d
        .call(Method::POST, "/v1/streams", Some(json!({"name": "s1"})))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("stream_exists"))
    );
    let (s, v) = d
        .call(
            Method::POST,
            "/v1/streams",
            Some(json!({"name": "bad/name"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );
    let (_, v) = d.call(Method::GET, "/v1/streams", None).await;
    let names: BTreeSet<&str> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["mqtt", "s1"]));
    let (s, v) = d
        .call(
            Method::PUT,
            "/v1/streams/s1",
            Some(json!({"name": "s1", "max_size_bytes": 65536, "time_to_live_ms": 5000})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = d.call(Method::GET, "/v1/streams/s1", None).await;
    assert_eq!(v["definition"]["time_to_live_ms"], 5000);
    let (s, _) = d
        .call(
            Method::PUT,
            "/v1/streams/s1",
            Some(json!({"name": "other"})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = d.call(Method::DELETE, "/v1/streams/s1", None).await;
    assert_eq!(s, 204);
    let (s, v) = d.call(Method::GET, "/v1/streams/s1", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("stream_not_found"))
    );
    let (s, v) = d.call(Method::GET, "/no/such/endpoint", None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_appended_as_json_or_raw_bytes_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "r"})))
        .await;
    let (s, v) = d
        .call(Method::POST, "/v1/streams/r/records", Some(json!({"records": [{"payload": "text", "metadata": {"k": "v"}}, {"payload_base64": "AP8="}]})))
        .await;
    assert_eq!(
        (s, v["first_sequence_number"].as_u64(), v["count"].as_u64()),
        (201, Some(0), Some(2)),
        "{v}"
    );
    let resp = d
        .req(Method::POST, "/v1/streams/r/records")
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (_, v) = d
        .call(
            Method::GET,
            "/v1/streams/r/records?from=0&max_count=10",
            None,
        )
        .await;
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        (
            recs[0]["payload"].as_str(),
            recs[0]["metadata"]["k"].as_str()
        ),
        (Some("text"), Some("v"))
    );
    assert_eq!(recs[1]["payload_base64"], "AP8=");
    assert!(
        recs[1].get("payload").is_none(),
        "not UTF-8, so no text form"
    );
    assert_eq!(recs[2]["payload_base64"], "AQID");
    assert_eq!(v["next_sequence_number"], 3);
    let (s, v) = d
        .call(
            Method::POST,
            "/v1/streams/r/records",
            Some(json!({"records": [{"payload": "a", "payload_base64": "YQ=="}]})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_record"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "lp"})))
        .await;
    let poll = d
        .req(Method::GET, "/v1/streams/lp/records?from=0&wait_ms=60000")
        .send();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the read waits for data");
    d.append("lp", &["wake up"]).await;
    let v: Value = poll.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(v["records"][0]["payload"], "wake up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_mode_streams_records_and_a_restarted_reader_resumes_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "f"})))
        .await;
    d.append("f", &["0", "1", "2"]).await;
    let mut seen = Vec::new();
    {
        let mut resp = d
            .req(Method::GET, "/v1/streams/f/records?from=0&follow=true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        let mut buf = String::new();
        while seen.len() < 3 {
            buf.push_str(std::str::from_utf8(&resp.chunk().await.unwrap().unwrap()).unwrap());
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                let v: Value = serde_json::from_str(&line).unwrap();
                seen.push(v["sequence_number"].as_u64().unwrap());
            }
        }
    } // the first reader goes away
    d.append("f", &["3", "4"]).await;
    let next = seen.last().unwrap() + 1;
    let mut resp = d
        .req(
            Method::GET,
            &format!("/v1/streams/f/records?from={next}&follow=true"),
        )
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let wait_for_five = async {
        while seen.len() < 6 {
            buf.push_str(std::str::from_utf8(&resp.chunk().await.unwrap().unwrap()).unwrap());
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                seen.push(
                    serde_json::from_str::<Value>(&line).unwrap()["sequence_number"]
                        .as_u64()
                        .unwrap(),
                );
            }
            if seen.len() == 5 {
                // Records that arrive while the reader follows come through too.
                d.append("f", &["5"]).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait_for_five)
        .await
        .unwrap();
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_streams_answer_per_strategy_and_a_trimmed_read_names_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(
        Method::POST,
        "/v1/streams",
        Some(json!({"name": "rej", "max_size_bytes": 4096, "strategy_on_full": "reject_new_data"})),
    )
    .await;
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "ow", "max_size_bytes": 4096, "strategy_on_full": "overwrite_oldest_data"}))).await;
    let big = "x".repeat(200);
    let mut full = None;
    for _ in 0..40 {
        let (s, v) = d.append("rej", &[&big]).await;
        if s != 201 {
            full = Some((s, v));
            break;
        }
    }
    let (s, v) = full.expect("a 4 KiB stream fills up");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (507, Some("stream_full")),
        "{v}"
    );
    for _ in 0..40 {
        let (s, v) = d.append("ow", &[&big]).await;
        assert_eq!(s, 201, "{v}");
    }
    let (_, desc) = d.call(Method::GET, "/v1/streams/ow", None).await;
    let oldest = desc["status"]["first_sequence_number"].as_u64().unwrap();
    assert!(oldest > 0);
    let (s, v) = d
        .call(Method::GET, "/v1/streams/ow/records?from=0", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (410, Some("sequence_trimmed")),
        "{v}"
    );
    assert_eq!(v["error"]["oldest_sequence_number"].as_u64(), Some(oldest));
    let (s, _) = d
        .call(
            Method::GET,
            &format!("/v1/streams/ow/records?from={oldest}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_everything_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), Some("s3cret"));
    let url = |p: &str| format!("{}{p}", d.api);
    let health = d.http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for path in ["/v1/streams", "/metrics"] {
        let missing = d.http.get(url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401);
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
        let v: Value = missing.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
        let wrong = d
            .http
            .get(url(path))
            .bearer_auth("s3cres")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = d
            .http
            .get(url(path))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_oversized_bodies_get_a_clear_4xx_and_the_daemon_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "m"})))
        .await;
    let resp = d
        .req(Method::POST, "/v1/streams/m/records")
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );
    let resp = d
        .req(Method::POST, "/v1/streams")
        .header("content-type", "application/json")
        .body("{\"name\": \"x\", \"max_size\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "unknown fields are refused");
    let huge = json!({"records": [{"payload": "y".repeat(100_000)}]});
    let resp = d
        .req(Method::POST, "/v1/streams/m/records")
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "body_too_large"
    );
    let (s, _) = d
        .call(
            Method::GET,
            "/v1/streams/m/records?from=0&max_count=abc",
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = d.append("m", &["still fine"]).await;
    assert_eq!(s, 201);
    let (_, v) = d.call(Method::GET, "/v1/streams/m", None).await;
    assert_eq!(
        v["status"]["records"], 1,
        "nothing of the bad requests was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_and_two_readers_share_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::sync::Arc::new(start(dir.path(), None));
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "shared"})))
        .await;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let d = d.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let p = format!("w{w}-{i}");
                    let (s, _) = d.append("shared", &[&p]).await;
                    assert_eq!(s, 201);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move {
                let mut from = 0;
                let mut got = Vec::new();
                while got.len() < 200 {
                    let (_, v) = d
                        .call(
                            Method::GET,
                            &format!(
                                "/v1/streams/shared/records?from={from}&wait_ms=10000&max_count=50"
                            ),
                            None,
                        )
                        .await;
                    for r in v["records"].as_array().unwrap() {
                        got.push((
                            r["sequence_number"].as_u64().unwrap(),
                            r["payload"].as_str().unwrap().to_string(),
                        ));
                    }
                    from = v["next_sequence_number"].as_u64().unwrap();
                }
                got
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut views = Vec::new();
    for r in readers {
        views.push(
            tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(views[0], views[1], "both readers see the same sequence");
    let seqs: Vec<u64> = views[0].iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let payloads: BTreeSet<&str> = views[0].iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(payloads.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_match_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), None);
    d.call(Method::POST, "/v1/streams", Some(json!({"name": "api"})))
        .await;
    d.append("api", &["a", "b", "c"]).await;
    let msgs = (0..7)
        .map(|i| (format!("m/{i}"), b"12345".to_vec(), QoS::AtLeastOnce))
        .collect();
    publish(d.mqtt_port, "pub-metrics", msgs).await;
    let scrape = || async {
        let text = d.metrics().await;
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    };
    let value = |scrape: &prometheus_parse::Scrape, name: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name}{label:?}"))
    };
    // MQTT acks arrive before the stats are read; wait until all 7 are counted as stored.
    let mut s = scrape().await;
    for _ in 0..100 {
        if value(&s, "ferry_mqtt_messages_stored_total", ("broker", "local")) >= 7.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = scrape().await;
    }
    assert_eq!(
        value(&s, "ferry_mqtt_messages_stored_total", ("broker", "local")),
        7.0
    );
    assert_eq!(
        value(&s, "ferry_mqtt_bytes_stored_total", ("broker", "local")),
        35.0
    );
    assert_eq!(value(&s, "ferry_mqtt_connected", ("broker", "local")), 1.0);
    assert_eq!(value(&s, "ferry_stream_records", ("stream", "mqtt")), 7.0);
    assert_eq!(
        value(&s, "ferry_stream_last_sequence_number", ("stream", "mqtt")),
        6.0
    );
    assert_eq!(value(&s, "ferry_stream_records", ("stream", "api")), 3.0);
    assert_eq!(
        value(&s, "ferry_stream_appended_records_total", ("stream", "api")),
        3.0
    );
    assert_eq!(
        value(&s, "ferry_stream_last_sequence_number", ("stream", "api")),
        2.0
    );
    assert!(value(&s, "ferry_stream_bytes", ("stream", "api")) > 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_command_works_against_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), Some("tok"));
    let (ok, out, err) = d.cli(&[
        "create",
        "cli",
        "--max-size-bytes",
        "100000",
        "--strategy-on-full",
        "overwrite_oldest_data",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("overwrite_oldest_data") && out.contains("25000"),
        "{out}"
    );
    let (ok, out, err) = d.cli(&[
        "append",
        "cli",
        "--data",
        "one",
        "--data",
        "two",
        "--meta",
        "topic=t/1",
    ]);
    assert!(ok && out.contains("sequence numbers 0 to 1"), "{out}{err}");
    let (ok, out, _) = d.cli(&["--json", "list"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "cli" && s["status"]["records"] == 2));
    let (ok, out, _) = d.cli(&["list"]);
    assert!(
        ok && out.starts_with("NAME") && out.contains("cli"),
        "{out}"
    );
    let (ok, out, _) = d.cli(&["describe", "cli"]);
    assert!(ok && out.contains("records") && out.contains('2'), "{out}");
    let (ok, out, _) = d.cli(&["read", "cli", "--json"]);
    assert!(ok);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (
            lines.len(),
            lines[1]["payload"].as_str(),
            lines[0]["metadata"]["topic"].as_str()
        ),
        (2, Some("two"), Some("t/1"))
    );
    let (ok, out, _) = d.cli(&["read", "cli", "--from", "1"]);
    assert!(ok && out.contains("two") && !out.contains("one"), "{out}");
    // --follow prints what arrives; it runs until stopped.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "streams", "read", "cli", "--from", "2", "--follow", "--json",
        ])
        .env("FERRY_URL", &d.api)
        .env("FERRY_TOKEN", "tok")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, _, _) = d.cli(&["append", "cli", "--data", "three"]);
    assert!(ok);
    let mut stdout = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(
        serde_json::from_str::<Value>(&line).unwrap()["payload"],
        "three"
    );
    let (ok, _, err) = d.cli(&["describe", "nope"]);
    assert!(!ok && err.contains("stream_not_found"), "{err}");
    let (ok, out, _) = d.cli(&["delete", "cli"]);
    assert!(ok && out.contains("deleted"));
    let mut wrong = Command::new(env!("CARGO_BIN_EXE_ferry"));
    let out = wrong
        .args(["streams", "list"])
        .env("FERRY_URL", &d.api)
        .env("FERRY_TOKEN", "bad")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}
