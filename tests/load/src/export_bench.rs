//! `ferry-export-bench`: drains a backlog of N records into a local HTTP sink and reports
//! Ferry's records/s and MB/s beside the same sink's own accept rate, measured in the same run
//! with a plain client sending the same batches one after another, as Ferry does.
//!
//! `cargo build --release && ./target/release/ferry-export-bench --records 1000000`

mod procfs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Records per HTTP request (Ferry's batch_size and the plain client's batch).
    #[arg(long, default_value_t = 500)]
    batch: u64,
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// Alternating rounds of reference and Ferry measurements (the median ratio is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Default)]
struct Counts {
    records: AtomicU64,
    bytes: AtomicU64,
    first: Mutex<Option<Instant>>,
}

/// The sink: counts the lines and bytes of every POST and discards them.
async fn accept(State(c): State<Arc<Counts>>, body: axum::body::Bytes) -> &'static str {
    c.first
        .lock()
        .map(|mut f| *f.get_or_insert_with(Instant::now))
        .ok();
    c.records.fetch_add(
        body.iter().filter(|&&b| b == b'\n').count() as u64,
        Ordering::Relaxed,
    );
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    "ok"
}

async fn sink(counts: Arc<Counts>) -> Result<u16> {
    let app = axum::Router::new()
        .route("/", axum::routing::post(accept))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// One batch exactly as Ferry's HTTP sink writes it (same record JSON, same sizes).
fn batch_body(first: u64, n: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in first..first + n {
        let r = ferry_stream_manager::Record {
            sequence_number: seq,
            timestamp_ms: 1_795_000_000_000,
            metadata: Default::default(),
            payload: vec![b'p'; size].into(),
        };
        ferry_connectors::json::write_export_json(&mut out, &r);
        out.push(b'\n');
    }
    out
}

async fn plain_client_rate(port: u16, args: &Args) -> Result<(f64, f64)> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    // The same number of records as Ferry drains, so that both runs last about as long.
    let n = args.records;
    let bodies: Vec<Vec<u8>> = (0..n / args.batch)
        .map(|i| batch_body(i * args.batch, args.batch, args.size))
        .collect();
    let start = Instant::now();
    let mut bytes = 0;
    for b in bodies {
        bytes += b.len();
        let r = client.post(&url).body(b).send().await?;
        if !r.status().is_success() {
            bail!("sink answered {}", r.status());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((n as f64 / secs, bytes as f64 / 1e6 / secs))
}

fn prefill(data: &Path, records: u64, size: usize) -> Result<()> {
    use ferry_stream_manager::{ManagerOptions, NewRecord, StreamDefinition, StreamManager};
    let m = StreamManager::open(data, ManagerOptions::default())?;
    let mut def = StreamDefinition::new("backlog");
    def.max_size_bytes = 8 << 30;
    let s = m.create_stream(def)?;
    let batch: Vec<NewRecord> = (0..1000)
        .map(|_| NewRecord::new(vec![b'p'; size]))
        .collect();
    for _ in 0..records / 1000 {
        let _ = s.append_nowait(&batch)?;
    }
    m.close();
    Ok(())
}

struct Ferry(Child);

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let counts = Arc::new(Counts::default());
    let port = sink(counts.clone()).await?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    print!(
        "prefilling a backlog of {} records of {} bytes ... ",
        args.records, args.size
    );
    prefill(&data, args.records, args.size)?;
    println!("done");
    let mut ratios = Vec::new();
    for round in 0..args.rounds {
        let (ref_rate, ref_mb) = plain_client_rate(port, &args).await?;
        // A new export identifier each round: a fresh checkpoint, so the whole backlog drains again.
        let config = dir.path().join(format!("ferry-{round}.toml"));
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n[api]\nenabled = false\n[embedded_broker]\nenabled = false\n\
                 [[streams]]\nname = \"backlog\"\nmax_size_bytes = 8589934592\n\
                 [[streams.exports]]\nidentifier = \"bench-{round}\"\nkind = \"http\"\nbatch_size = {}\nsettings = {{ url = \"http://127.0.0.1:{port}/\" }}\n",
                data.display(),
                args.batch
            ),
        )?;
        counts.records.store(0, Ordering::Relaxed);
        counts.bytes.store(0, Ordering::Relaxed);
        if let Ok(mut f) = counts.first.lock() {
            *f = None;
        }
        let ferry = Ferry(
            Command::new(&args.ferry)
                .args(["run", "--config"])
                .arg(&config)
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (cargo build --release first)",
                        args.ferry.display()
                    )
                })?,
        );
        let deadline = Instant::now() + Duration::from_secs(1200);
        while counts.records.load(Ordering::Relaxed) < args.records {
            if Instant::now() > deadline {
                bail!("ferry did not drain the backlog in time");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = counts
            .first
            .lock()
            .ok()
            .and_then(|f| *f)
            .context("no request arrived")?;
        let secs = first.elapsed().as_secs_f64();
        let peak_rss_mb = procfs::status_kib(ferry.0.id(), "VmHWM:") as f64 / 1024.0;
        let cpu_us = procfs::cpu_seconds(ferry.0.id()) * 1e6 / args.records as f64;
        drop(ferry);
        let rate = args.records as f64 / secs;
        let mb = counts.bytes.load(Ordering::Relaxed) as f64 / 1e6 / secs;
        ratios.push(rate / ref_rate);
        println!(
            "round {round}: sink with a plain client {ref_rate:>9.0} records/s {ref_mb:>6.1} MB/s | ferry draining {rate:>9.0} records/s {mb:>6.1} MB/s = {:>3.0}%, peak RSS {peak_rss_mb:.1} MB, CPU {cpu_us:.2} us/record",
            100.0 * rate / ref_rate
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median: ferry drains at {:.0}% of the sink's own accept rate",
        100.0 * ratios[ratios.len() / 2]
    );
    Ok(())
}
