//! `ferry-export-bench`: drains a backlog of N records into a local HTTP sink and reports
//! Ferry's records/s and MB/s beside the same sink's own accept rate, measured in the same run
//! with a plain client sending the same batches one after another, as Ferry does.
//!
//! With `--link` it drains the backlog through a simulated far link instead (`link.rs`: a
//! round-trip delay and a bandwidth cap), for each round trip, compression and number of
//! batches in flight asked for, and reports records/s, the bytes on the wire and the share of
//! the link's capacity used (`export_link.rs`).
//!
//! `cargo build --release && ./target/release/ferry-export-bench --records 1000000`
//! `./target/release/ferry-export-bench --link --records 100000 --size 200 --payload telemetry`

mod export_link;
mod link;
mod procfs;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::HeaderMap;
use clap::Parser;

#[derive(Parser)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// `repeat`: one byte repeated; `telemetry`: JSON readings with random values, which
    /// compress about as real telemetry does.
    #[arg(long, default_value = "repeat")]
    payload: String,
    /// Records per HTTP request (Ferry's batch_size and the plain client's batch).
    #[arg(long, default_value_t = 500)]
    batch: u64,
    #[arg(long, default_value = "target/release/ferry")]
    ferry: PathBuf,
    /// Alternating rounds of reference and Ferry measurements (the median ratio is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Drain through a simulated far link (round trip and bandwidth cap) instead of loopback.
    #[arg(long)]
    link: bool,
    /// Round trips of the link, in milliseconds, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 600])]
    rtt_ms: Vec<u64>,
    /// The link's bandwidth each way, in Mbit/s.
    #[arg(long, default_value_t = 10.0)]
    mbit: f64,
    /// max_in_flight_batches values to measure ("default": leave it unset).
    #[arg(long, value_delimiter = ',', default_values = ["1", "default"])]
    in_flight: Vec<String>,
    /// The HTTP sink's compression values to measure (`none`, `gzip`).
    #[arg(long, value_delimiter = ',', default_values = ["none"])]
    compression: Vec<String>,
    /// Only Ferry draining the backlog into the local sink, once: the time from its start to
    /// the first export request, the drain rate and the peak RSS (no reference client, which
    /// would hold the whole backlog in memory).
    #[arg(long)]
    startup: bool,
}

/// What the sink received since the last reset.
#[derive(Default)]
pub struct Counts {
    pub records: AtomicU64,
    /// Request bodies as they arrived (compressed, if they were).
    pub bytes: AtomicU64,
    pub first: Mutex<Option<Instant>>,
    pub last: Mutex<Option<Instant>>,
}

impl Counts {
    pub fn reset(&self) {
        self.records.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        for t in [&self.first, &self.last] {
            if let Ok(mut t) = t.lock() {
                *t = None;
            }
        }
    }

    /// Waits until `n` records arrived.
    pub async fn until(&self, n: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.records.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                bail!("ferry did not drain the backlog in time");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// The sink: counts the lines and bytes of every POST (gunzipped if it says so) and discards
/// them.
async fn accept(
    State(c): State<Arc<Counts>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> &'static str {
    let now = Instant::now();
    if let Ok(mut f) = c.first.lock() {
        f.get_or_insert(now);
    }
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let lines = if gzipped {
        let mut json = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut json);
        json.iter().filter(|&&b| b == b'\n').count()
    } else {
        body.iter().filter(|&&b| b == b'\n').count()
    };
    c.records.fetch_add(lines as u64, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if let Ok(mut l) = c.last.lock() {
        *l = Some(Instant::now());
    }
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

/// Payload `i` of the backlog.
fn payload(kind: &str, size: usize, i: u64) -> Vec<u8> {
    if kind != "telemetry" {
        return vec![b'p'; size];
    }
    // xorshift: reproducible readings without a dependency.
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = format!(
        "{{\"device\":\"gw-{:04}\",\"sensor\":\"env-{:02}\",\"ts\":{},\"temp_c\":{}.{:02},\"rh\":{}.{},\"p_hpa\":{}.{:02},\"raw\":\"",
        next() % 10_000,
        next() % 16,
        1_795_000_000_000 + i * 250,
        15 + next() % 15,
        next() % 100,
        30 + next() % 40,
        next() % 10,
        990 + next() % 40,
        next() % 100
    );
    while s.len() + 2 < size {
        s.push(char::from_digit((next() % 16) as u32, 16).unwrap_or('0'));
    }
    s.push_str("\"}");
    s.into_bytes()
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

fn prefill(data: &Path, args: &Args) -> Result<()> {
    use ferry_stream_manager::{ManagerOptions, NewRecord, StreamDefinition, StreamManager};
    let m = StreamManager::open(data, ManagerOptions::default())?;
    let mut def = StreamDefinition::new("backlog");
    def.max_size_bytes = 8 << 30;
    let s = m.create_stream(def)?;
    let batch: Vec<NewRecord> = (0..1000)
        .map(|i| NewRecord::new(payload(&args.payload, args.size, i)))
        .collect();
    for _ in 0..args.records / 1000 {
        let _ = s.append_nowait(&batch)?;
    }
    m.close();
    Ok(())
}

pub struct Ferry(Child);

impl Drop for Ferry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Ferry {
    /// Runs Ferry on `data` with one export of the backlog: `export` is the rest of its TOML
    /// table (identifier, settings, ...).
    pub fn start(args: &Args, data: &Path, config: &Path, export: &str) -> Result<Ferry> {
        Ferry::start_with_api(args, data, config, export, None)
    }

    /// [`Ferry::start`] with the local API on `api` (off when `None`).
    pub fn start_with_api(
        args: &Args,
        data: &Path,
        config: &Path,
        export: &str,
        api: Option<u16>,
    ) -> Result<Ferry> {
        let api = match api {
            Some(port) => format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"),
            None => "[api]\nenabled = false\n".to_string(),
        };
        std::fs::write(
            config,
            format!(
                "data_dir = \"{}\"\n{api}[embedded_broker]\nenabled = false\n\
                 [[streams]]\nname = \"backlog\"\nmax_size_bytes = 8589934592\n\
                 [[streams.exports]]\nkind = \"http\"\nbatch_size = {}\n{export}\n",
                data.display(),
                args.batch
            ),
        )?;
        let child = Command::new(&args.ferry)
            .args(["run", "--config"])
            .arg(config)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (cargo build --release first)",
                    args.ferry.display()
                )
            })?;
        Ok(Ferry(child))
    }

    pub fn peak_rss_mb(&self) -> f64 {
        procfs::status_kib(self.0.id(), "VmHWM:") as f64 / 1024.0
    }

    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.0.id())
    }
}

async fn loopback_rounds(args: &Args, counts: &Counts, port: u16, dir: &Path) -> Result<()> {
    let data = dir.join("data");
    let mut ratios = Vec::new();
    for round in 0..args.rounds {
        let (ref_rate, ref_mb) = plain_client_rate(port, args).await?;
        counts.reset();
        // A new export identifier each round: a fresh checkpoint, so the whole backlog drains again.
        let export = format!(
            "identifier = \"bench-{round}\"\nsettings = {{ url = \"http://127.0.0.1:{port}/\" }}"
        );
        let ferry = Ferry::start(
            args,
            &data,
            &dir.join(format!("ferry-{round}.toml")),
            &export,
        )?;
        counts
            .until(args.records, Duration::from_secs(1200))
            .await?;
        let first = counts
            .first
            .lock()
            .ok()
            .and_then(|f| *f)
            .context("no request arrived")?;
        let secs = first.elapsed().as_secs_f64();
        let peak_rss_mb = ferry.peak_rss_mb();
        let cpu_us = ferry.cpu_seconds() * 1e6 / args.records as f64;
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

async fn startup(args: &Args, counts: &Counts, port: u16, dir: &Path) -> Result<()> {
    let export =
        format!("identifier = \"startup\"\nsettings = {{ url = \"http://127.0.0.1:{port}/\" }}");
    counts.reset();
    let api = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let started = Instant::now();
    let ferry = Ferry::start_with_api(
        args,
        &dir.join("data"),
        &dir.join("startup.toml"),
        &export,
        Some(api),
    )?;
    let reads = first_read(api, started).await?;
    counts
        .until(args.records, Duration::from_secs(3600))
        .await?;
    let first = counts.first.lock().ok().and_then(|f| *f);
    let first = first.context("no request arrived")? - started;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "first read served {:.0} ms after the start; first export request {:.0} ms after the start; {} records drained in {secs:.1} s ({:.0} records/s); peak RSS {:.1} MB",
        reads.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        args.records,
        args.records as f64 / secs,
        ferry.peak_rss_mb()
    );
    Ok(())
}

/// How long after `started` the local API first answered a read of the backlog's oldest record.
async fn first_read(api: u16, started: Instant) -> Result<Duration> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{api}/v1/streams/backlog/records?from=0&max_count=1");
    loop {
        if let Ok(resp) = client.get(&url).send().await {
            if resp.status().is_success() && resp.text().await?.contains("sequence_number") {
                return Ok(started.elapsed());
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the API never served a read"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let counts = Arc::new(Counts::default());
    let port = sink(counts.clone()).await?;
    let dir = tempfile::tempdir()?;
    print!(
        "prefilling a backlog of {} records of {} bytes ({}) ... ",
        args.records, args.size, args.payload
    );
    prefill(&dir.path().join("data"), &args)?;
    println!("done");
    if args.link {
        export_link::run(&args, &counts, port, dir.path()).await
    } else if args.startup {
        startup(&args, &counts, port, dir.path()).await
    } else {
        loopback_rounds(&args, &counts, port, dir.path()).await
    }
}
