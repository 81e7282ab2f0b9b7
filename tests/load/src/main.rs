//! `ferry-load`: publishes N messages of a given size through a real mosquitto and reports
//!
//! 1. the broker's own QoS 1 delivery rate to a subscriber that discards (the reference),
//! 2. Ferry's ingest rate into a disk stream with group commit, as a ratio of (1), and its
//!    peak RSS,
//! 3. optionally, Ferry's RSS with K streams holding a backlog on disk.
//!
//! Build Ferry first: `cargo build --release`, then
//! `cargo run --release -p ferry-load -- --messages 200000 --size 200 --backlog-mb 100`.

mod procfs;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[derive(Parser)]
struct Args {
    /// Messages per measurement.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// The ferry binary.
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// Streams for the backlog measurement.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Alternating rounds of reference and Ferry measurements (the median ratio is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Megabytes of backlog per stream for the memory measurement (0: skip it).
    #[arg(long, default_value_t = 0)]
    backlog_mb: u64,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(dir: &Path) -> Result<Broker> {
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    // Unlimited queues: the stock 1000-message limit drops messages under load.
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\npersistence false\n"))?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto")?;
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("mosquitto did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Broker { child, port })
}

/// Publishes `n` QoS 1 messages round-robin over `topics`; returns when all are acknowledged.
async fn publish(port: u16, n: u64, size: usize, topics: &[String]) -> Result<()> {
    let mut opts = MqttOptions::new(format!("ferry-load-pub-{port}-{n}"), "127.0.0.1", port);
    opts.set_inflight(100).set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(opts, 1000);
    let driver = tokio::spawn(async move {
        let mut acks = 0;
        while acks < n {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher: {e}")),
            }
        }
        Ok(())
    });
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    for i in 0..n {
        client
            .publish_bytes(
                topics[(i as usize) % topics.len()].clone(),
                QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await?;
    }
    driver.await??;
    let _ = client.disconnect().await;
    Ok(())
}

/// The broker's delivery rate to a QoS 1 subscriber that discards what it gets.
async fn broker_rate(port: u16, n: u64, size: usize, round: usize) -> Result<f64> {
    let mut opts = MqttOptions::new(format!("ferry-load-sub-{round}"), "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(opts, 100);
    let topic = format!("bench/{round}");
    client.subscribe(topic.clone(), QoS::AtLeastOnce).await?;
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let sub = tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    if count.fetch_add(1, Ordering::Relaxed) + 1 >= n {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    publish(port, n, size, &[topic]).await?;
    sub.await?;
    let _ = client.disconnect().await;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

struct Ferry {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ferry {
    fn start(bin: &Path, config: &Path) -> Result<Ferry> {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with cargo build --release)",
                    bin.display()
                )
            })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().context("stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let f = Ferry { child, log };
        f.wait_for(|l| l.contains("ferry is ready"), Duration::from_secs(60))?;
        Ok(f)
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if self
                .log
                .lock()
                .map(|l| l.iter().any(|x| pred(x)))
                .unwrap_or(false)
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "ferry did not log what was expected; last lines:\n{}",
                    self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.child.id())
    }

    fn status(&self, key: &str) -> u64 {
        procfs::status_kib(self.child.id(), key)
    }
}

fn stored_at_least(line: &str, n: u64) -> bool {
    line.split(" stored=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s >= n)
}

fn ferry_config(
    dir: &Path,
    data: &Path,
    port: u16,
    streams: usize,
    round: usize,
) -> Result<PathBuf> {
    let mut cfg = format!(
        "data_dir = \"{}\"\n[api]\nenabled = false\n[log]\nstats_interval_ms = 20\n[[brokers]]\nname = \"load\"\nport = {port}\nclient_id = \"ferry-load-{port}-{streams}-{round}\"\n",
        data.display()
    );
    for i in 0..streams {
        cfg += &format!("[[streams]]\nname = \"s{i}\"\nmax_size_bytes = 2147483648\n[[routes]]\nfilter = \"load/{i}/#\"\nstream = \"s{i}\"\n");
    }
    let path = dir.join(format!("ferry-{streams}-{round}.toml"));
    std::fs::write(&path, cfg)?;
    Ok(path)
}

fn prefill(data: &Path, streams: usize, mb: u64) -> Result<()> {
    use ferry_stream_manager::{ManagerOptions, NewRecord, StreamDefinition, StreamManager};
    let m = StreamManager::open(data, ManagerOptions::default())?;
    let rec = NewRecord::new(vec![b'b'; 4096]);
    let batch: Vec<NewRecord> = (0..256).map(|_| rec.clone()).collect();
    for i in 0..streams {
        let mut def = StreamDefinition::new(format!("s{i}"));
        def.max_size_bytes = 2 << 30;
        let s = m.create_stream(def)?;
        for _ in 0..(mb * 1024 * 1024) / (256 * 4096) {
            let _ = s.append_nowait(&batch)?;
        }
    }
    m.close();
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let broker = start_broker(dir.path())?;
    println!(
        "broker: mosquitto on port {}; {} messages of {} bytes at QoS 1",
        broker.port, args.messages, args.size
    );

    let n = args.messages;
    let mut ratios = Vec::new();
    for round in 0..args.rounds {
        // Fresh topics and client ids each round, so no session or queue carries over.
        let cpu0 = procfs::cpu_seconds(broker.child.id());
        let reference = broker_rate(broker.port, n, args.size, round).await?;
        let cpu1 = procfs::cpu_seconds(broker.child.id());
        let data = dir.path().join(format!("data-{round}"));
        let ferry = Ferry::start(
            &args.ferry,
            &ferry_config(dir.path(), &data, broker.port, 1, round)?,
        )?;
        let start = Instant::now();
        publish(broker.port, n, args.size, &[format!("load/0/r{round}")]).await?;
        ferry.wait_for(|l| stored_at_least(l, n), Duration::from_secs(600))?;
        let rate = n as f64 / start.elapsed().as_secs_f64();
        let cpu2 = procfs::cpu_seconds(broker.child.id());
        ratios.push(rate / reference);
        println!(
            "         broker CPU per message: {:.1} us delivering to the subscriber, {:.1} us delivering to ferry",
            (cpu1 - cpu0) * 1e6 / n as f64,
            (cpu2 - cpu1) * 1e6 / n as f64
        );
        println!(
            "round {round}: broker to a discarding QoS 1 subscriber {reference:>7.0} msg/s | ferry into a disk stream (group commit) {rate:>7.0} msg/s = {:>3.0}% | ferry peak RSS {:.1} MB, CPU {:.1} us/msg",
            100.0 * rate / reference,
            ferry.status("VmHWM:") as f64 / 1024.0,
            ferry.cpu_seconds() * 1e6 / n as f64
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median: ferry ingests at {:.0}% of the broker's own QoS 1 delivery rate",
        100.0 * ratios[ratios.len() / 2]
    );

    if args.backlog_mb > 0 {
        let data = dir.path().join("data-backlog");
        print!(
            "prefilling {} streams with {} MB each ... ",
            args.streams, args.backlog_mb
        );
        prefill(&data, args.streams, args.backlog_mb)?;
        println!("done");
        let ferry = Ferry::start(
            &args.ferry,
            &ferry_config(dir.path(), &data, broker.port, args.streams, args.rounds)?,
        )?;
        let topics: Vec<String> = (0..args.streams).map(|i| format!("load/{i}/x")).collect();
        publish(broker.port, args.messages, args.size, &topics).await?;
        ferry.wait_for(|l| stored_at_least(l, n), Duration::from_secs(600))?;
        println!(
            "ferry with {} streams and a {} MB backlog on disk: RSS {:.1} MB, peak {:.1} MB",
            args.streams,
            args.streams as u64 * args.backlog_mb,
            ferry.status("VmRSS:") as f64 / 1024.0,
            ferry.status("VmHWM:") as f64 / 1024.0
        );
    }
    Ok(())
}
