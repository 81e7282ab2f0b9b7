//! Durability under real crashes and damaged files:
//! - a child process appends and reports each acknowledged record; it is killed with SIGKILL at
//!   random moments, many times; every reported record must survive, numbering must go on;
//! - segment files are truncated or overwritten at random offsets; reopening must not fail,
//!   and what is read back must be exactly what was written, minus the damaged range.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_stream_manager::{ManagerOptions, NewRecord, StreamDefinition, StreamManager};

const CHILD_ENV: &str = "FERRYTEST_CRASH_CHILD";

/// xorshift64*: reproducible randomness without a dependency; the seed is printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("FERRYTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

fn payload(round: u64, task: u64, n: u64) -> Vec<u8> {
    let mut p = format!("r{round}-t{task}-n{n}-").into_bytes();
    p.resize(64 + (n % 300) as usize, b'x');
    p
}

fn crash_definition() -> StreamDefinition {
    let mut def = StreamDefinition::new("crash");
    def.segment_size_bytes = 64 * 1024;
    def
}

/// The child: four concurrent appenders; each prints `A <first> <round> <task> <n> <count>`
/// once its batch is acknowledged (durable).
fn child(dir: &Path, round: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = StreamManager::open(dir, ManagerOptions::default()).unwrap();
        let s = m.ensure_stream(crash_definition()).unwrap();
        let tasks: Vec<_> = (0..4u64)
            .map(|task| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    loop {
                        let count = 1 + n % 5;
                        let batch: Vec<NewRecord> = (n..n + count)
                            .map(|i| NewRecord::new(payload(round, task, i)))
                            .collect();
                        let range = s.append(batch).await.unwrap();
                        println!("A {} {round} {task} {n} {count}", range.start);
                        n += count;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn records_acknowledged_before_a_sigkill_survive_it() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var("FERRYTEST_CRASH_ROUND")
            .unwrap()
            .parse()
            .unwrap();
        return child(Path::new(&dir), round);
    }
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let rounds = 12;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "records_acknowledged_before_a_sigkill_survive_it",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("FERRYTEST_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let before = acked.keys().next_back().copied();
        let mut this_round = 0;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 6 || f[0] != "A" {
                continue; // the test harness' own output, or a line cut by the kill
            }
            let [first, r, task, n, count] =
                [f[1], f[2], f[3], f[4], f[5]].map(|x| x.parse::<u64>().unwrap());
            for i in 0..count {
                assert!(
                    acked.insert(first + i, payload(r, task, n + i)).is_none(),
                    "seed {seed}: seq {} acked twice",
                    first + i
                );
            }
            if let Some(b) = before {
                assert!(
                    first > b,
                    "seed {seed}: round {round} reused sequence number {first} (<= {b})"
                );
            }
            this_round += count;
        }
        assert!(
            this_round > 0,
            "seed {seed}: round {round} acknowledged nothing; the child did not run"
        );
    }
    let m = StreamManager::open(dir.path(), ManagerOptions::default()).unwrap();
    let s = m.stream("crash").unwrap();
    let mut stored = BTreeMap::new();
    let mut from = 0;
    loop {
        let got = s.read_now(from, 10_000, 0).unwrap();
        let Some(last) = got.last() else { break };
        from = last.sequence_number + 1;
        for r in got {
            stored.insert(r.sequence_number, r.payload.to_vec());
        }
    }
    for (seq, p) in &acked {
        assert_eq!(
            stored.get(seq),
            Some(p),
            "seed {seed}: acknowledged record {seq} lost or altered"
        );
    }
    let d = s.describe().unwrap();
    assert_eq!(
        d.counters.damage.damaged_ranges, 0,
        "seed {seed}: a SIGKILL must not damage the middle of a segment"
    );
    eprintln!(
        "{} acknowledged records over {rounds} kills all survived; {} stored",
        acked.len(),
        stored.len()
    );
}

fn write_pristine(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    let m = StreamManager::open(dir, ManagerOptions::default()).unwrap();
    let mut def = StreamDefinition::new("torn");
    def.segment_size_bytes = 16 * 1024;
    let s = m.create_stream(def).unwrap();
    let mut written = BTreeMap::new();
    for i in 0..600u64 {
        let p = payload(0, 0, i);
        let range = s
            .append_nowait(&[NewRecord::new(p.clone()).with_meta("topic", "a/b")])
            .unwrap()
            .wait_blocking()
            .unwrap();
        written.insert(range.start, p);
    }
    written
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn torn_and_corrupted_segments_are_recovered_without_losing_undamaged_records() {
    let seed = seed();
    let mut rng = Rng(seed);
    let pristine = tempfile::tempdir().unwrap();
    let written = write_pristine(pristine.path());
    let next = *written.keys().next_back().unwrap() + 1;
    for case in 0..120 {
        let work = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), work.path());
        let seg_dir = work.path().join("streams/1");
        let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segs.sort();
        let target = &segs[rng.below(segs.len() as u64) as usize];
        let is_last = target == segs.last().unwrap();
        let len = std::fs::metadata(target).unwrap().len();
        let offset = 16 + rng.below(len - 16);
        let truncate = rng.below(2) == 0;
        if truncate {
            std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .unwrap()
                .set_len(offset)
                .unwrap();
        } else {
            let mut bytes = std::fs::read(target).unwrap();
            let n = 1 + rng.below(64) as usize;
            for b in bytes.iter_mut().skip(offset as usize).take(n) {
                *b = rng.next() as u8;
            }
            std::fs::write(target, bytes).unwrap();
        }
        let ctx = format!(
            "seed {seed} case {case}: {} {} at {offset}",
            if truncate { "truncated" } else { "overwrote" },
            target.display()
        );
        let m = StreamManager::open(work.path(), ManagerOptions::default())
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let s = m.stream("torn").unwrap();
        let mut from = 0;
        let mut got = BTreeMap::new();
        loop {
            let batch = s
                .read_now(from, 1000, 0)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let Some(last) = batch.last() else { break };
            from = last.sequence_number + 1;
            for r in batch {
                assert_eq!(
                    r.metadata.get("topic").map(String::as_str),
                    Some("a/b"),
                    "{ctx}"
                );
                assert!(
                    got.insert(r.sequence_number, r.payload.to_vec()).is_none(),
                    "{ctx}: duplicate"
                );
            }
        }
        for (seq, p) in &got {
            assert_eq!(
                written.get(seq),
                Some(p),
                "{ctx}: record {seq} came back altered"
            );
        }
        // Damage costs at most the records of the damaged segment from the damage onwards
        // (a truncated tail loses the rest; overwritten bytes lose the records they hit).
        let target_base: u64 = target
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let missing: Vec<u64> = written
            .keys()
            .filter(|k| !got.contains_key(k))
            .copied()
            .collect();
        for k in &missing {
            assert!(
                *k >= target_base,
                "{ctx}: record {k} before the damaged segment was lost"
            );
        }
        if !truncate && !missing.is_empty() {
            let span = missing.last().unwrap() - missing.first().unwrap();
            assert!(
                span < 64,
                "{ctx}: {} records lost for 64 damaged bytes",
                missing.len()
            );
        }
        let appended = s
            .append_nowait(&[NewRecord::new(&b"after"[..])])
            .unwrap()
            .wait_blocking()
            .unwrap();
        if !is_last {
            assert_eq!(appended.start, next, "{ctx}: numbering must continue");
        } else {
            assert!(
                appended.start > *got.keys().next_back().unwrap_or(&0),
                "{ctx}"
            );
        }
    }
}
