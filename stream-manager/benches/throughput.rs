//! Append and read throughput of local streams, printed beside this machine's raw sequential
//! write + fsync speed measured in the same run (the ratio is the figure that matters: absolute
//! numbers move ±20% from run to run).
//!
//! Run: `cargo bench -p ferry-stream-manager --bench throughput` (`FERRYBENCH_DIR` picks the
//! disk, default: the system temp directory; `FERRYBENCH_SCALE` multiplies the volumes).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ferry_stream_manager::{
    ManagerOptions, NewRecord, Persistence, StreamDefinition, StreamManager,
};

fn scale() -> f64 {
    std::env::var("FERRYBENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Sequential 1 MiB writes, then one fdatasync: the best this disk does.
fn raw_disk_mb_s(dir: &Path) -> f64 {
    let total = (256.0 * scale()) as usize;
    let path = dir.join("raw-disk-reference");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    let t = Instant::now();
    for _ in 0..total {
        f.write_all(&chunk).unwrap();
    }
    f.sync_data().unwrap();
    let secs = t.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    total as f64 * 1.048_576 / secs
}

struct Case {
    name: &'static str,
    persistence: Persistence,
    flush_on_write: bool,
    record_size: usize,
    records: usize,
    appenders: usize,
    batch: usize,
}

fn run_case(dir: &Path, rt: &tokio::runtime::Runtime, c: &Case, raw: f64) {
    let data = dir.join(c.name.replace(' ', "-"));
    let m = StreamManager::open(&data, ManagerOptions::default()).unwrap();
    let mut def = StreamDefinition::new("bench");
    def.persistence = c.persistence;
    def.flush_on_write = c.flush_on_write;
    def.max_size_bytes = 8 << 30;
    def.segment_size_bytes = 64 << 20;
    let s = m.create_stream(def).unwrap();
    let payload = bytes::Bytes::from(vec![0xA5u8; c.record_size]);
    let per_task = c.records / c.appenders / c.batch;
    let t = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..c.appenders)
            .map(|_| {
                let s = s.clone();
                let batch: Vec<NewRecord> = (0..c.batch)
                    .map(|_| NewRecord::new(payload.clone()))
                    .collect();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        s.append(batch.clone()).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let n = (per_task * c.appenders * c.batch) as f64;
    let d = s.describe().unwrap();
    let mb_s = d.counters.appended_bytes as f64 / 1e6 / secs;
    let ratio = if c.persistence == Persistence::File {
        format!("{:5.0}% of raw disk", 100.0 * mb_s / raw)
    } else {
        "  (memory)".into()
    };
    println!(
        "append {:<38} {:>10.0} records/s {:>8.1} MB/s  {ratio}  fsyncs: {}",
        c.name,
        n / secs,
        mb_s,
        d.counters.sync_rounds
    );
    if c.name == "file 4 KiB x64 appenders, group commit" {
        let t = Instant::now();
        let mut from = 0;
        let mut bytes = 0u64;
        loop {
            let got = s.read_now(from, 1000, 0).unwrap();
            let Some(last) = got.last() else { break };
            from = last.sequence_number + 1;
            bytes += got.iter().map(|r| r.stored_len()).sum::<u64>();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "read   {:<38} {:>10.0} records/s {:>8.1} MB/s  (page cache)",
            c.name,
            from as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    }
    drop(s);
    drop(m);
    let _ = std::fs::remove_dir_all(data);
}

/// One thread, no runtime: the memory stream's own cost per record.
fn memory_single_core(dir: &Path) {
    let m = StreamManager::open(&dir.join("mem1"), ManagerOptions::default()).unwrap();
    let mut def = StreamDefinition::new("m");
    def.persistence = Persistence::Memory;
    def.max_size_bytes = 8 << 30;
    def.strategy_on_full = ferry_stream_manager::StrategyOnFull::OverwriteOldestData;
    let s = m.create_stream(def).unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 100]);
    for (label, batch) in [("one record per append", 1usize), ("batches of 100", 100)] {
        let records: Vec<NewRecord> = (0..batch)
            .map(|_| NewRecord::new(payload.clone()))
            .collect();
        let n = (2_000_000.0 * scale()) as usize / batch;
        let t = Instant::now();
        for _ in 0..n {
            let _ = s.append_nowait(&records).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "append memory 100 B, 1 thread, {label:<22} {:>10.0} records/s",
            (n * batch) as f64 / secs
        );
    }
}

fn main() {
    let base = std::env::var("FERRYBENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).unwrap();
    let raw = raw_disk_mb_s(dir.path());
    println!(
        "raw disk: sequential 1 MiB writes + fdatasync: {raw:.1} MB/s ({})",
        dir.path().display()
    );
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let k = |n: f64| (n * scale()) as usize;
    let cases = [
        Case {
            name: "file 4 KiB x64 appenders, group commit",
            persistence: Persistence::File,
            flush_on_write: false,
            record_size: 4096,
            records: k(64_000.0),
            appenders: 64,
            batch: 1,
        },
        Case {
            name: "file 4 KiB batch 64, group commit",
            persistence: Persistence::File,
            flush_on_write: false,
            record_size: 4096,
            records: k(64_000.0),
            appenders: 4,
            batch: 64,
        },
        Case {
            name: "file 4 KiB x64 appenders, fsync each",
            persistence: Persistence::File,
            flush_on_write: true,
            record_size: 4096,
            records: k(6_400.0),
            appenders: 64,
            batch: 1,
        },
        Case {
            name: "file 100 B x64 appenders, group commit",
            persistence: Persistence::File,
            flush_on_write: false,
            record_size: 100,
            records: k(256_000.0),
            appenders: 64,
            batch: 1,
        },
        Case {
            name: "file 100 B batch 100, group commit",
            persistence: Persistence::File,
            flush_on_write: false,
            record_size: 100,
            records: k(1_000_000.0),
            appenders: 4,
            batch: 100,
        },
        Case {
            name: "file 100 B x64 appenders, fsync each",
            persistence: Persistence::File,
            flush_on_write: true,
            record_size: 100,
            records: k(6_400.0),
            appenders: 64,
            batch: 1,
        },
        Case {
            name: "memory 100 B x64 appenders",
            persistence: Persistence::Memory,
            flush_on_write: false,
            record_size: 100,
            records: k(1_000_000.0),
            appenders: 64,
            batch: 1,
        },
        Case {
            name: "memory 4 KiB x64 appenders",
            persistence: Persistence::Memory,
            flush_on_write: false,
            record_size: 4096,
            records: k(64_000.0),
            appenders: 64,
            batch: 1,
        },
    ];
    for c in &cases {
        run_case(dir.path(), &rt, c, raw);
    }
    memory_single_core(dir.path());
    println!("peak RSS of this process: {:.1} MiB", peak_rss_mib());
}
