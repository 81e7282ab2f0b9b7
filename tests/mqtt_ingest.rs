//! End-to-end: the `ferry` daemon against a real mosquitto broker and against its embedded one.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use support::{free_port, publish, read_stream, topic, Ferry, Mosquitto};

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("ferry.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n{body}", dir.join("data").display()),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_routed_by_wildcard_into_several_streams_at_qos_0_and_1() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = write_config(
        dir.path(),
        &format!(
            r##"
[[brokers]]
name = "plant"
port = {}
# Everything, so that a topic no route matches reaches Ferry (and is counted).
[[brokers.subscriptions]]
filter = "#"
qos = 1

[[streams]]
name = "temps"
[[streams]]
name = "everything"

[[routes]]
filter = "sensors/+/temp"
stream = "temps"
[[routes]]
filter = "sensors/#"
stream = "everything"
[[routes]]
filter = "alarms/#"
stream = "everything"
"##,
            broker.port
        ),
    );
    let ferry = Ferry::start(&config, dir.path());
    let msgs = vec![
        (
            "sensors/k1/temp".to_string(),
            b"21.5".to_vec(),
            QoS::AtLeastOnce,
        ),
        (
            "sensors/k2/temp".to_string(),
            b"19.0".to_vec(),
            QoS::AtMostOnce,
        ),
        (
            "sensors/k1/humidity".to_string(),
            b"40".to_vec(),
            QoS::AtLeastOnce,
        ),
        (
            "alarms/door".to_string(),
            b"open".to_vec(),
            QoS::AtLeastOnce,
        ),
        (
            "unrouted/topic".to_string(),
            b"nobody".to_vec(),
            QoS::AtLeastOnce,
        ),
    ];
    publish(broker.port, "pub-routing", msgs).await;
    ferry.wait_records("temps", 2);
    ferry.wait_records("everything", 4);
    ferry.wait_log("no route matches its topic", Duration::from_secs(10));
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("no route matches its topic") && logs.contains("unrouted/topic"),
        "{logs}"
    );
    assert!(logs.contains("unroutable=1"), "{logs}");
    let data = dir.path().join("data");
    let temps: Vec<(String, Vec<u8>)> = read_stream(&data, "temps")
        .iter()
        .map(|r| (topic(r).to_string(), r.payload.to_vec()))
        .collect();
    assert_eq!(
        temps,
        vec![
            ("sensors/k1/temp".into(), b"21.5".to_vec()),
            ("sensors/k2/temp".into(), b"19.0".to_vec())
        ]
    );
    let all: BTreeSet<String> = read_stream(&data, "everything")
        .iter()
        .map(|r| topic(r).to_string())
        .collect();
    let want: BTreeSet<String> = [
        "sensors/k1/temp",
        "sensors/k2/temp",
        "sensors/k1/humidity",
        "alarms/door",
    ]
    .map(String::from)
    .into();
    assert_eq!(all, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_file_ferry_embeds_a_broker_and_stores_everything_in_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ferry = Ferry::spawn(
        &["run"],
        dir.path(),
        &[("FERRY_EMBEDDED_BROKER__LISTEN", format!("127.0.0.1:{port}"))],
    );
    ferry.wait_log("ferry is ready", Duration::from_secs(20));
    let msgs = (0..50)
        .map(|i| {
            (
                format!("dev/{}/m", i % 5),
                format!("m{i}").into_bytes(),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    publish(port, "pub-embedded", msgs).await;
    ferry.wait_records("mqtt", 50);
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    let got: BTreeSet<Vec<u8>> = read_stream(&dir.path().join("ferry-data"), "mqtt")
        .iter()
        .map(|r| r.payload.to_vec())
        .collect();
    assert_eq!(got.len(), 50, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_reconnects_after_the_broker_restarts_and_resubscribes() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path(), "");
    let config = write_config(
        dir.path(),
        &format!(
            "[[brokers]]\nname = \"b\"\nport = {}\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n",
            broker.port
        ),
    );
    let ferry = Ferry::start(&config, dir.path());
    publish(
        broker.port,
        "pub-a",
        vec![("a/1".into(), b"before".to_vec(), QoS::AtLeastOnce)],
    )
    .await;
    broker.restart();
    ferry.wait_log("lost the MQTT broker", Duration::from_secs(10));
    // Wait for the second connection, then publish through the restarted broker.
    let start = std::time::Instant::now();
    while ferry.logs().matches("connected to MQTT broker").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{}",
            ferry.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ferry.wait_records("mqtt", 1);
    publish(
        broker.port,
        "pub-b",
        vec![("a/2".into(), b"after".to_vec(), QoS::AtLeastOnce)],
    )
    .await;
    ferry.wait_records("mqtt", 2);
    let (_, logs) = ferry.terminate();
    assert_eq!(
        logs.matches("lost the MQTT broker").count(),
        1,
        "one line per state change, not per retry:\n{logs}"
    );
    let got: Vec<Vec<u8>> = read_stream(&dir.path().join("data"), "mqtt")
        .iter()
        .map(|r| r.payload.to_vec())
        .collect();
    assert_eq!(got, vec![b"before".to_vec(), b"after".to_vec()], "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_messages_published_while_ferry_was_down_arrive_through_its_persistent_session() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = write_config(
        dir.path(),
        &format!("[[brokers]]\nname = \"b\"\nport = {}\n", broker.port),
    );
    let ferry = Ferry::start(&config, dir.path());
    let (status, _) = ferry.terminate();
    assert!(status.success());
    let n = std::env::var("FERRYTEST_OFFLINE_N").map_or(200, |v| v.parse().unwrap());
    let msgs = (0..n)
        .map(|i| {
            (
                "offline/x".to_string(),
                format!("{i}").into_bytes(),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    publish(broker.port, "pub-offline", msgs).await;
    let ferry = Ferry::start(&config, dir.path());
    ferry.wait_records("mqtt", n as u64);
    let (_, logs) = ferry.terminate();
    // Every message was acknowledged before that stop: a third start gets no redeliveries.
    let ferry = Ferry::start(&config, dir.path());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, more_logs) = ferry.terminate();
    let records = read_stream(&dir.path().join("data"), "mqtt");
    let got: BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(got.len(), n, "{logs}");
    assert_eq!(records.len(), n, "redelivered: {more_logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_holds_acks_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let small = write_config(
        dir.path(),
        &format!(
            "[[brokers]]\nname = \"b\"\nport = {}\n[[streams]]\nname = \"s\"\nmax_size_bytes = 4096\nsegment_size_bytes = 2048\n\
             [[routes]]\nfilter = \"#\"\nstream = \"s\"\non_full = \"hold\"\n",
            broker.port
        ),
    );
    let ferry = Ferry::start(&small, dir.path());
    let msgs = (0..100)
        .map(|i| {
            (
                "full/x".to_string(),
                format!("{i:0>100}").into_bytes(),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    publish(broker.port, "pub-full", msgs).await;
    ferry.wait_log("holding the MQTT ack back", Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    // With waits growing to 2 s, two seconds of a full stream cost a handful of retries, not a spin.
    let waits: u64 = logs
        .split("backpressure_waits=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!((1..40).contains(&waits), "{waits} retries in ~2 s:\n{logs}");
    let stored = read_stream(&dir.path().join("data"), "s").len();
    assert!(stored < 100);
    // Give the stream room: the held-back messages are redelivered and nothing is missing.
    let big = small.to_str().unwrap().replace("ferry.toml", "big.toml");
    std::fs::write(
        &big,
        std::fs::read_to_string(&small)
            .unwrap()
            .replace("max_size_bytes = 4096", "max_size_bytes = 1048576"),
    )
    .unwrap();
    let ferry = Ferry::start(std::path::Path::new(&big), dir.path());
    ferry.wait_records("s", 100);
    let (_, logs) = ferry.terminate();
    let got: BTreeSet<String> = read_stream(&dir.path().join("data"), "s")
        .iter()
        .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(got.len(), 100, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_counted_and_logged_with_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = write_config(
        dir.path(),
        &format!(
            "[[brokers]]\nname = \"b\"\nport = {}\nmax_message_size_bytes = 1000\n",
            broker.port
        ),
    );
    let ferry = Ferry::start(&config, dir.path());
    let msgs = vec![
        ("big/one".to_string(), vec![0u8; 5000], QoS::AtLeastOnce),
        ("small/one".to_string(), vec![1u8; 10], QoS::AtLeastOnce),
    ];
    publish(broker.port, "pub-big", msgs).await;
    ferry.wait_records("mqtt", 1);
    ferry.wait_log(
        "larger than max_message_size_bytes",
        Duration::from_secs(10),
    );
    let (status, logs) = ferry.terminate();
    assert!(status.success());
    assert!(
        logs.contains("larger than max_message_size_bytes") && logs.contains("big/one"),
        "{logs}"
    );
    assert!(logs.contains("oversized=1"), "{logs}");
    let got = read_stream(&dir.path().join("data"), "mqtt");
    assert_eq!(got.len(), 1);
    assert_eq!(topic(&got[0]), "small/one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_full_stream_does_not_stop_ingestion_into_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = write_config(
        dir.path(),
        &format!(
            "[[brokers]]\nname = \"b\"\nport = {}\n\
             [[streams]]\nname = \"alarms\"\nmax_size_bytes = 4096\nsegment_size_bytes = 2048\n\
             [[streams]]\nname = \"telemetry\"\n\
             [[routes]]\nfilter = \"alarms/#\"\nstream = \"alarms\"\n\
             [[routes]]\nfilter = \"telemetry/#\"\nstream = \"telemetry\"\n",
            broker.port
        ),
    );
    let ferry = Ferry::start(&config, dir.path());
    // Alarms first: far more than 4 KiB of them, then telemetry behind them on the connection.
    let mut msgs: Vec<(String, Vec<u8>, QoS)> = (0..100)
        .map(|i| {
            (
                "alarms/x".to_string(),
                format!("{i:0>100}").into_bytes(),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    msgs.extend((0..200).map(|i| {
        (
            "telemetry/t".to_string(),
            format!("t{i}").into_bytes(),
            QoS::AtLeastOnce,
        )
    }));
    publish(broker.port, "pub-mixed", msgs).await;
    ferry.wait_records("telemetry", 200);
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    let alarms = read_stream(&dir.path().join("data"), "alarms").len();
    assert!(alarms > 0 && alarms < 100, "{alarms} alarms stored");
    assert!(
        logs.contains(&format!("dropped_full={}", 100 - alarms)),
        "every alarm not stored is counted as dropped_full:\n{logs}"
    );
    assert!(!logs.contains("holding the MQTT ack back"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_publish_to_the_embedded_broker_is_counted_and_logged_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\nmax_payload_size_bytes = 1000\n"
        ),
    );
    let ferry = Ferry::start(&config, dir.path());
    let msgs = vec![
        (
            "big/embedded".to_string(),
            vec![0u8; 1500],
            QoS::AtLeastOnce,
        ),
        (
            "small/embedded".to_string(),
            vec![1u8; 10],
            QoS::AtLeastOnce,
        ),
    ];
    publish(port, "pub-big-embedded", msgs).await;
    ferry.wait_records("mqtt", 1);
    ferry.wait_log(
        "larger than max_message_size_bytes",
        Duration::from_secs(10),
    );
    let (status, logs) = ferry.terminate();
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("big/embedded") && logs.contains("oversized=1"),
        "{logs}"
    );
    let got = read_stream(&dir.path().join("data"), "mqtt");
    assert_eq!(got.len(), 1);
    assert_eq!(topic(&got[0]), "small/embedded");
}

/// FAKE broker: answers every CONNECT with a CONNACK and hangs up straight away, as a broker
/// that rejects the client after accepting it does (mosquitto cannot be made to on demand).
/// Returns its port and the number of connections it has seen.
fn hanging_up_broker() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let mut connect = [0u8; 256];
            let _ = std::io::Read::read(&mut conn, &mut connect);
            let _ = std::io::Write::write_all(&mut conn, &[0x20, 0x02, 0x00, 0x00]);
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_hangs_up_after_each_connack_is_retried_with_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = hanging_up_broker();
    let config = write_config(
        dir.path(),
        &format!(
            "[[brokers]]\nname = \"b\"\nport = {port}\nreconnect_min_ms = 50\nreconnect_max_ms = 2000\n"
        ),
    );
    let ferry = Ferry::spawn(
        &["run", "--config", config.to_str().unwrap()],
        dir.path(),
        &[],
    );
    ferry.wait_log("connected to MQTT broker", Duration::from_secs(10));
    let first = seen.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let in_3s = seen.load(Ordering::SeqCst) - first;
    let (_, logs) = ferry.terminate();
    // Growing delays (50 ms doubling, from the upper half of each step) allow about 7
    // connections in 3 s; a backoff reset by every CONNACK would allow about 50.
    assert!(
        (2..=12).contains(&in_3s),
        "{in_3s} connections in 3 s\n{logs}"
    );
}
