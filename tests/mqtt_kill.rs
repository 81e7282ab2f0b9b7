//! At-least-once from the device to the disk: 100,000 QoS 1 messages with distinct ids (and
//! 30,000 at QoS 2) are published through mosquitto while Ferry is killed with SIGKILL and
//! restarted several times. Every message the broker acknowledged to the publisher must end up
//! in the stream (mosquitto keeps Ferry's persistent session while Ferry is down); duplicates
//! are allowed and counted.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use support::{publish, read_stream, Ferry, Mosquitto};

fn id_of(payload: &[u8]) -> usize {
    std::str::from_utf8(&payload[..8]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_ferry_loses_no_message_the_broker_acknowledged() {
    kill_while_publishing(QoS::AtLeastOnce, 100_000).await;
}

/// QoS 2 subscriptions are made at QoS 1. When they were not, a QoS 2 flow cut by a SIGKILL
/// left mosquitto resending a PUBREL that rumqttc, having lost the flow's state, took for a
/// protocol error: a reconnect loop (caught by the check on connection drops below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_ferry_loses_no_message_published_and_subscribed_at_qos2() {
    kill_while_publishing(QoS::ExactlyOnce, 30_000).await;
}

async fn kill_while_publishing(qos: QoS, messages: usize) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[brokers]]\nname = \"b\"\nport = {}\nreconnect_min_ms = 50\n\
             [[brokers.subscriptions]]\nfilter = \"#\"\nqos = {}\n",
            dir.path().join("data").display(),
            broker.port,
            qos as u8
        ),
    )
    .unwrap();
    let mut ferry = Ferry::start(&config, dir.path());
    let msgs: Vec<_> = (0..messages)
        .map(|i| {
            let mut p = format!("{i:08}").into_bytes();
            p.resize(100, b'.');
            (format!("kill/{}", i % 16), p, qos)
        })
        .collect();
    let publisher = tokio::spawn(publish(broker.port, "pub-kill", msgs));
    let mut kills = 0;
    let mut all_logs = String::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delay = seed % 700;
    while !publisher.is_finished() || kills < 3 {
        tokio::time::sleep(Duration::from_millis(300 + delay)).await;
        delay = (delay * 7 + 131) % 700;
        all_logs.push_str(&ferry.logs());
        ferry.kill9();
        kills += 1;
        ferry = Ferry::start(&config, dir.path());
        if kills >= 8 {
            break;
        }
    }
    publisher.await.unwrap();
    // Let Ferry drain what mosquitto queued for it, checking after clean stops.
    let start = Instant::now();
    let (counts, logs) = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (status, logs) = ferry.terminate();
        all_logs.push_str(&logs);
        assert!(status.success(), "{logs}");
        let mut counts: HashMap<usize, u32> = HashMap::new();
        for r in read_stream(&dir.path().join("data"), "mqtt") {
            *counts.entry(id_of(&r.payload)).or_default() += 1;
        }
        if counts.len() == messages || start.elapsed() > Duration::from_secs(90) {
            break (counts, logs);
        }
        ferry = Ferry::start(&config, dir.path());
    };
    let missing: Vec<usize> = (0..messages)
        .filter(|i| !counts.contains_key(i))
        .take(10)
        .collect();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "{kills} SIGKILLs; {} distinct of {messages} stored at {qos:?}; {duplicates} duplicates",
        counts.len()
    );
    assert!(
        missing.is_empty(),
        "{} messages lost, e.g. {missing:?}\n{logs}",
        messages - counts.len()
    );
    assert!(kills >= 3);
    // The broker stayed up: a Ferry that lost it anyway tripped over the resumed session.
    let drops: Vec<&str> = all_logs
        .lines()
        .filter(|l| l.contains("lost the MQTT broker"))
        .take(3)
        .collect();
    assert!(drops.is_empty(), "{drops:#?}");
}
