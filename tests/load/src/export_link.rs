//! `ferry-export-bench --link`: the backlog drained through a simulated far link, for each
//! round trip × compression × batches in flight asked for, all in one run on one backlog:
//! records/s, the bytes on the wire (per record, each way) and the share of the link's
//! capacity the requests used.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{link, Args, Counts, Ferry};

pub async fn run(args: &Args, counts: &Counts, sink_port: u16, dir: &Path) -> Result<()> {
    let capacity = args.mbit * 1e6 / 8.0; // bytes per second each way
    println!(
        "link: {} Mbit/s each way; {} records of {} bytes ({}), batches of {}",
        args.mbit, args.records, args.size, args.payload, args.batch
    );
    let mut run = 0;
    for &rtt_ms in &args.rtt_ms {
        for compression in &args.compression {
            for in_flight in &args.in_flight {
                run += 1;
                let rtt = Duration::from_millis(rtt_ms);
                let server = ([127, 0, 0, 1], sink_port).into();
                let link = link::start(server, rtt, (args.mbit * 1e6) as u64).await?;
                counts.reset();
                let window = match in_flight.as_str() {
                    "default" => String::new(),
                    n => format!("max_in_flight_batches = {n}\n"),
                };
                let export = format!(
                    "identifier = \"link-{run}\"\n{window}settings = {{ url = \"http://127.0.0.1:{}/\", compression = \"{compression}\" }}",
                    link.port
                );
                let config = dir.join(format!("link-{run}.toml"));
                let ferry = Ferry::start(args, &dir.join("data"), &config, &export)?;
                counts
                    .until(args.records, Duration::from_secs(3 * 3600))
                    .await?;
                let start = link.first_byte().context("nothing crossed the link")?;
                let end = counts
                    .last
                    .lock()
                    .ok()
                    .and_then(|l| *l)
                    .context("nothing arrived")?;
                let secs = (end - start).as_secs_f64();
                let (peak_rss_mb, cpu) = (ferry.peak_rss_mb(), ferry.cpu_seconds());
                drop(ferry);
                let n = args.records as f64;
                let (up, down) = (link.up_bytes() as f64, link.down_bytes() as f64);
                let body = counts.bytes.load(Ordering::Relaxed) as f64;
                println!(
                    "rtt {rtt_ms:>3} ms, {compression:<4}, in flight {in_flight:>7}: {:>6.0} records/s in {secs:>6.1} s | on the wire {:>5.1} B/record up (bodies {:>5.1}), {:>4.1} down | link used {:>3.0}% | peak RSS {peak_rss_mb:.1} MB, CPU {:.2} us/record",
                    n / secs,
                    up / n,
                    body / n,
                    down / n,
                    100.0 * up / secs / capacity,
                    cpu * 1e6 / n,
                );
            }
        }
    }
    Ok(())
}
