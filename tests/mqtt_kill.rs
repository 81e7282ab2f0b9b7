//! At-least-once from the device to the disk: 100,000 QoS 1 messages with distinct ids are
//! published through mosquitto while Ferry is killed with SIGKILL and restarted several times.
//! Every message the broker acknowledged to the publisher must end up in the stream (mosquitto
//! keeps Ferry's persistent session while Ferry is down); duplicates are allowed and counted.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use support::{publish, read_stream, Ferry, Mosquitto};

const MESSAGES: usize = 100_000;

fn id_of(payload: &[u8]) -> usize {
    std::str::from_utf8(&payload[..8]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_ferry_loses_no_message_the_broker_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[brokers]]\nname = \"b\"\nport = {}\nreconnect_min_ms = 50\n",
            dir.path().join("data").display(),
            broker.port
        ),
    )
    .unwrap();
    let mut ferry = Ferry::start(&config, dir.path());
    let msgs: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let mut p = format!("{i:08}").into_bytes();
            p.resize(100, b'.');
            (format!("kill/{}", i % 16), p, QoS::AtLeastOnce)
        })
        .collect();
    let publisher = tokio::spawn(publish(broker.port, "pub-kill", msgs));
    let mut kills = 0;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delay = seed % 700;
    while !publisher.is_finished() || kills < 3 {
        tokio::time::sleep(Duration::from_millis(300 + delay)).await;
        delay = (delay * 7 + 131) % 700;
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
        assert!(status.success(), "{logs}");
        let mut counts: HashMap<usize, u32> = HashMap::new();
        for r in read_stream(&dir.path().join("data"), "mqtt") {
            *counts.entry(id_of(&r.payload)).or_default() += 1;
        }
        if counts.len() == MESSAGES || start.elapsed() > Duration::from_secs(90) {
            break (counts, logs);
        }
        ferry = Ferry::start(&config, dir.path());
    };
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|i| !counts.contains_key(i))
        .take(10)
        .collect();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "{kills} SIGKILLs; {} distinct of {MESSAGES} stored; {duplicates} duplicates",
        counts.len()
    );
    assert!(
        missing.is_empty(),
        "{} messages lost, e.g. {missing:?}\n{logs}",
        MESSAGES - counts.len()
    );
    assert!(kills >= 3);
}
