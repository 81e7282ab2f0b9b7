//! What the caller's thread is spared. Appends are awaited from async code (MQTT ingest, the HTTP
//! API) and describe runs on every metrics scrape, so neither may wait for the disk: every
//! fsync, file creation, rename and removal runs on the stream's syncer thread or the blocking
//! pool, and describe reads nothing. Checked on `FaultInjectingFs` (a FAKE file system, named as
//! such), which notes the thread of each operation that can block and counts the bytes read.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_stream_manager::fault::FaultInjectingFs;
use ferry_stream_manager::{
    ManagerOptions, NewRecord, StrategyOnFull, StreamDefinition, StreamManager,
};

fn recs(n: usize, size: usize) -> Vec<NewRecord> {
    (0..n).map(|_| NewRecord::new(vec![7u8; size])).collect()
}

fn def(name: &str, max: u64, strategy: StrategyOnFull) -> StreamDefinition {
    let mut d = StreamDefinition::new(name);
    d.max_size_bytes = max;
    d.segment_size_bytes = 2048;
    d.strategy_on_full = strategy;
    d
}

fn open(dir: &std::path::Path, fs: &Arc<FaultInjectingFs>, now: &Arc<AtomicI64>) -> StreamManager {
    let clock = now.clone();
    StreamManager::open(
        dir,
        ManagerOptions {
            fs: fs.clone(),
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        },
    )
    .unwrap()
}

// The default test runtime has one thread, this one: whatever the async code runs, runs here.
#[tokio::test]
async fn appends_and_retention_leave_every_blocking_file_operation_to_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultInjectingFs::default());
    let now = Arc::new(AtomicI64::new(1_000_000));
    let m = open(dir.path(), &fs, &now);
    let mut own = def("own", 8192, StrategyOnFull::OverwriteOldestData);
    own.flush_on_write = true;
    let own = m.create_stream(own).unwrap();
    let group = m
        .create_stream(def("group", 8192, StrategyOnFull::OverwriteOldestData))
        .unwrap();
    let mut aged = def("aged", 1 << 20, StrategyOnFull::RejectNewData);
    aged.time_to_live_ms = Some(10_000);
    let aged = m.create_stream(aged).unwrap();

    fs.watch_thread(Some(std::thread::current().id()));
    for _ in 0..100 {
        // 100 records of 200 bytes fill about ten 2 KiB segments: rolls, and size retention.
        own.append(recs(1, 200)).await.unwrap();
        group.append(recs(1, 200)).await.unwrap();
        aged.append(recs(1, 200)).await.unwrap();
        group.describe().unwrap();
    }
    now.fetch_add(20_000, Ordering::SeqCst);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sweep = m.run_retention(Duration::from_millis(5), async {
        let _ = stopped.await;
    });
    let expired = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while aged.describe().unwrap().counters.dropped_by_ttl_records < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sweep never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop.send(());
    };
    tokio::join!(sweep, expired);
    fs.watch_thread(None);

    assert_eq!(
        fs.blocking_ops_on_watched_thread(),
        Vec::<&str>::new(),
        "blocking file operations ran on the runtime's thread"
    );
    let d = own.describe().unwrap();
    assert_eq!(
        d.counters.sync_rounds, 100,
        "flush_on_write: one fsync per append"
    );
    assert!(d.counters.dropped_by_size_records > 0);
    assert!(d.segments > 1);
    for op in ["sync_data", "sync_dir", "create", "rename", "remove_file"] {
        assert!(
            fs.op_count(op) > 0,
            "{op} never ran: the check proves nothing"
        );
    }
}

#[tokio::test]
async fn describe_reads_nothing_from_disk_after_open_even_when_retention_moves_the_oldest_record() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    {
        let m = open(dir.path(), &Arc::default(), &now);
        let s = m
            .create_stream(def("a", 8192, StrategyOnFull::OverwriteOldestData))
            .unwrap();
        for _ in 0..30 {
            now.fetch_add(1000, Ordering::SeqCst);
            s.append(recs(1, 200)).await.unwrap();
        }
    }
    let fs = Arc::new(FaultInjectingFs::default());
    let m = open(dir.path(), &fs, &now);
    let s = m.stream("a").unwrap();
    let before = s.describe().unwrap();
    assert!(before.segments >= 3, "{} segments", before.segments);
    let read_at_open = fs.bytes_read();
    for _ in 0..3 {
        assert_eq!(
            s.describe().unwrap().oldest_record_timestamp_ms,
            before.oldest_record_timestamp_ms
        );
    }
    assert_eq!(fs.bytes_read(), read_at_open, "describe read from disk");
    let oldest = s.read_now(before.first_sequence_number, 1, 0).unwrap();
    assert_eq!(
        before.oldest_record_timestamp_ms,
        Some(oldest[0].timestamp_ms)
    );

    // Size retention drops the oldest segment inside an append; the next oldest was written
    // before this open, so its first timestamp is not in memory until the syncer reads it.
    let mut after = before.clone();
    while after.first_sequence_number == before.first_sequence_number {
        now.fetch_add(1000, Ordering::SeqCst);
        s.append(recs(1, 200)).await.unwrap();
        let read_before_describe = fs.bytes_read();
        after = s.describe().unwrap();
        assert_eq!(
            fs.bytes_read(),
            read_before_describe,
            "describe read from disk"
        );
    }
    let oldest = s.read_now(after.first_sequence_number, 1, 0).unwrap();
    assert_eq!(
        after.oldest_record_timestamp_ms,
        Some(oldest[0].timestamp_ms)
    );
    assert!(after.oldest_record_timestamp_ms > before.oldest_record_timestamp_ms);
}

#[tokio::test]
async fn a_spare_segment_left_by_a_crash_is_removed_at_start_up_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    {
        let m = open(dir.path(), &Arc::default(), &now);
        let s = m
            .create_stream(def("a", 1 << 20, StrategyOnFull::RejectNewData))
            .unwrap();
        s.append(recs(5, 200)).await.unwrap();
    }
    // What a crash between a roll and the sync round that names the new segment leaves.
    let stream_dir = dir.path().join("streams/1");
    let spare = stream_dir.join("spare-1.seg");
    std::fs::write(&spare, b"FRYSEG01 records never acknowledged").unwrap();
    let m = open(dir.path(), &Arc::default(), &now);
    assert!(!spare.exists(), "the spare was left in place");
    let s = m.stream("a").unwrap();
    assert_eq!(s.append(recs(1, 10)).await.unwrap(), 5..6);
    assert_eq!(s.read_now(0, 100, 0).unwrap().len(), 6);
}

#[tokio::test]
async fn a_memory_stream_reserves_its_next_block_of_numbers_before_it_needs_it() {
    const BLOCK: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let m = StreamManager::open(dir.path(), ManagerOptions::default()).unwrap();
    let mut d = def("mem", 1 << 20, StrategyOnFull::OverwriteOldestData);
    d.persistence = ferry_stream_manager::Persistence::Memory;
    let s = m.create_stream(d).unwrap();
    let floor = || {
        m.with_catalog("mem", |c, id| {
            Ok(c.streams()?
                .into_iter()
                .find(|s| s.id == id)
                .unwrap()
                .seq_floor)
        })
        .unwrap()
    };
    assert_eq!(
        floor(),
        BLOCK,
        "the first block is reserved when the stream opens"
    );
    let batch = recs(1000, 1);
    while s.durable_end() <= BLOCK / 2 {
        let _ = s.append_nowait(&batch).unwrap();
    }
    // Half the block is used: the next one is reserved on another thread, long before an
    // append would need it (an append needing it would reserve it itself, waiting meanwhile).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while floor() < 2 * BLOCK {
        assert!(
            std::time::Instant::now() < deadline,
            "the next block was never reserved"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(floor(), 2 * BLOCK);
    assert!(s.durable_end() < BLOCK);
}
