//! Behaviour of streams through the public API, on a real disk (and, where named, on the
//! fault-injecting file system).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_stream_manager::fault::FaultInjectingFs;
use ferry_stream_manager::{
    Error, ManagerOptions, NewRecord, Persistence, ReadOptions, StrategyOnFull, StreamDefinition,
    StreamManager,
};

fn open(dir: &std::path::Path) -> StreamManager {
    StreamManager::open(dir, ManagerOptions::default()).unwrap()
}

fn recs(n: usize, size: usize) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord::new(vec![(i % 251) as u8; size]))
        .collect()
}

fn small(name: &str, max: u64, seg: u64, strategy: StrategyOnFull) -> StreamDefinition {
    let mut d = StreamDefinition::new(name);
    d.max_size_bytes = max;
    d.segment_size_bytes = seg;
    d.strategy_on_full = strategy;
    d
}

#[tokio::test]
async fn sequence_numbers_start_at_zero_and_continue_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = open(dir.path());
        let s = m.create_stream(StreamDefinition::new("a")).unwrap();
        assert_eq!(s.append(recs(3, 10)).await.unwrap(), 0..3);
        assert_eq!(s.append(recs(2, 10)).await.unwrap(), 3..5);
    }
    let m = open(dir.path());
    let s = m.stream("a").unwrap();
    assert_eq!(
        s.append(vec![NewRecord::new(&b"x"[..]).with_meta("topic", "t/1")])
            .await
            .unwrap(),
        5..6
    );
    let got = s
        .read(ReadOptions {
            max_count: 10,
            ..ReadOptions::from(0)
        })
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.sequence_number).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
    assert_eq!(
        got[5].metadata.get("topic").map(String::as_str),
        Some("t/1")
    );
}

#[tokio::test]
async fn a_waiting_read_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            s.read(ReadOptions {
                min_count: 2,
                timeout: Duration::from_secs(30),
                ..ReadOptions::from(0)
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished(), "the read must wait for data");
    s.append(recs(1, 10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished(), "one record is fewer than min_count");
    s.append(recs(1, 10)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn a_read_past_the_timeout_returns_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    s.append(recs(1, 10)).await.unwrap();
    let got = s
        .read(ReadOptions {
            min_count: 5,
            max_count: 10,
            timeout: Duration::from_millis(20),
            ..ReadOptions::from(0)
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn reads_respect_count_and_byte_limits_but_return_at_least_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    s.append(recs(10, 100)).await.unwrap();
    let by_count = s.read_now(2, 3, 0).unwrap();
    assert_eq!(
        by_count
            .iter()
            .map(|r| r.sequence_number)
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let one_size = by_count[0].stored_len();
    assert_eq!(s.read_now(0, 100, one_size * 2 + 1).unwrap().len(), 2);
    assert_eq!(
        s.read_now(0, 100, 1).unwrap().len(),
        1,
        "a record larger than the budget still comes back"
    );
}

#[tokio::test]
async fn reject_new_data_refuses_appends_and_keeps_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m
        .create_stream(small("full", 4096, 2048, StrategyOnFull::RejectNewData))
        .unwrap();
    let mut stored = 0u64;
    loop {
        match s.append(recs(1, 200)).await {
            Ok(_) => stored += 1,
            Err(Error::StreamFull { max_size_bytes, .. }) => {
                assert_eq!(max_size_bytes, 4096);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(stored >= 10, "only {stored} records fitted in 4 KiB");
    let d = s.describe().unwrap();
    assert_eq!(d.first_sequence_number, 0);
    assert_eq!(d.records, stored);
    assert!(d.total_bytes <= 4096);
    assert_eq!(d.counters.rejected_full_records, 1);
    assert_eq!(s.read_now(0, 1000, 0).unwrap().len() as u64, stored);
}

#[tokio::test]
async fn overwrite_oldest_data_drops_whole_segments_and_a_trimmed_read_names_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m
        .create_stream(small(
            "ring",
            8192,
            2048,
            StrategyOnFull::OverwriteOldestData,
        ))
        .unwrap();
    for _ in 0..200 {
        s.append(recs(1, 200)).await.unwrap();
    }
    let d = s.describe().unwrap();
    assert!(d.total_bytes <= 8192, "{} bytes", d.total_bytes);
    assert!(d.first_sequence_number > 0);
    assert_eq!(d.counters.dropped_by_size_records, d.first_sequence_number);
    assert_eq!(d.next_sequence_number, 200);
    match s.read(ReadOptions::from(0)).await {
        Err(Error::SequenceTrimmed {
            requested: 0,
            oldest,
            ..
        }) => assert_eq!(oldest, d.first_sequence_number),
        other => panic!("expected a trimmed error, got {other:?}"),
    }
    let rest = s.read_now(d.first_sequence_number, 1000, 0).unwrap();
    assert_eq!(rest.len() as u64, 200 - d.first_sequence_number);
}

#[tokio::test]
async fn a_record_larger_than_the_stream_is_rejected_whatever_the_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m
        .create_stream(small(
            "tiny",
            2048,
            1024,
            StrategyOnFull::OverwriteOldestData,
        ))
        .unwrap();
    s.append(recs(1, 100)).await.unwrap();
    assert!(matches!(
        s.append(recs(1, 4000)).await,
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(
        s.read_now(0, 10, 0).unwrap().len(),
        1,
        "nothing was dropped for it"
    );
}

#[tokio::test]
async fn time_to_live_removes_old_records_in_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = now.clone();
    let m = StreamManager::open(
        dir.path(),
        ManagerOptions {
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
            ..Default::default()
        },
    )
    .unwrap();
    for persistence in [Persistence::File, Persistence::Memory] {
        let mut def = small(
            &format!("ttl-{persistence:?}"),
            1 << 20,
            2048,
            StrategyOnFull::RejectNewData,
        );
        def.persistence = persistence;
        def.time_to_live_ms = Some(10_000);
        let s = m.create_stream(def).unwrap();
        s.append(recs(30, 100)).await.unwrap();
        now.fetch_add(20_000, Ordering::SeqCst);
        s.append(recs(5, 100)).await.unwrap();
        assert_eq!(s.enforce_ttl().unwrap(), 30, "{persistence:?}");
        let d = s.describe().unwrap();
        assert_eq!(d.first_sequence_number, 30, "{persistence:?}");
        assert_eq!(d.counters.dropped_by_ttl_records, 30);
        assert_eq!(
            d.oldest_record_timestamp_ms,
            Some(now.load(Ordering::SeqCst))
        );
        now.fetch_add(20_000, Ordering::SeqCst);
        assert_eq!(
            s.enforce_ttl().unwrap(),
            5,
            "{persistence:?}: the active segment expires too"
        );
        assert_eq!(
            s.append(recs(1, 10)).await.unwrap(),
            35..36,
            "numbering goes on"
        );
    }
    now.fetch_add(20_000, Ordering::SeqCst);
    assert_eq!(
        m.enforce_ttl(),
        2,
        "the manager's sweep covers every stream"
    );
}

#[tokio::test]
async fn memory_streams_never_reuse_sequence_numbers_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut def = StreamDefinition::new("mem");
    def.persistence = Persistence::Memory;
    let last = {
        let m = open(dir.path());
        let s = m.create_stream(def).unwrap();
        s.append(recs(10, 10)).await.unwrap().end
    };
    let m = open(dir.path());
    let s = m.stream("mem").unwrap();
    assert_eq!(
        s.describe().unwrap().records,
        0,
        "memory data does not survive"
    );
    let next = s.append(recs(1, 10)).await.unwrap();
    assert!(next.start >= last, "{next:?} reuses numbers below {last}");
}

#[tokio::test]
async fn a_full_disk_fails_the_append_and_leaves_the_stream_intact() {
    let dir = tempfile::tempdir().unwrap();
    // FAKE: a real disk cannot be made to run out of space mid-write on demand.
    let fs = Arc::new(FaultInjectingFs::default());
    let m = StreamManager::open(
        dir.path(),
        ManagerOptions {
            fs: fs.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    s.append(recs(5, 100)).await.unwrap();
    fs.set_space_left_bytes(150);
    let err = s.append(recs(3, 100)).await.unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(err.code(), "disk_full");
    fs.set_space_left_bytes(i64::MAX);
    assert_eq!(
        s.append(recs(1, 100)).await.unwrap(),
        5..6,
        "the failed batch consumed no numbers"
    );
    drop(s);
    drop(m);
    let m = open(dir.path());
    let s = m.stream("a").unwrap();
    let got = s.read_now(0, 100, 0).unwrap();
    assert_eq!(got.len(), 6);
    assert_eq!(
        s.describe().unwrap().counters.damage.truncated_tail_bytes,
        0,
        "no torn bytes were left behind"
    );
}

#[tokio::test]
async fn a_failed_fsync_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // FAKE: fsync failures (EIO) cannot be produced on a healthy disk.
    let fs = Arc::new(FaultInjectingFs::default());
    let m = StreamManager::open(
        dir.path(),
        ManagerOptions {
            fs: fs.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    s.append(recs(1, 10)).await.unwrap();
    fs.set_fail_sync(true);
    assert!(matches!(
        s.append(recs(1, 10)).await,
        Err(Error::StorageFailed { .. })
    ));
    fs.set_fail_sync(false);
    assert!(
        matches!(
            s.append(recs(1, 10)).await,
            Err(Error::StorageFailed { .. })
        ),
        "refused until reopened"
    );
}

#[tokio::test]
async fn concurrent_appenders_share_fsyncs_with_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    for flush_on_write in [false, true] {
        let mut def = StreamDefinition::new(format!("g{flush_on_write}"));
        def.flush_on_write = flush_on_write;
        let s = m.create_stream(def).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.append(recs(1, 50)).await.unwrap() })
            })
            .collect();
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().start);
        }
        seqs.sort();
        assert_eq!(seqs, (0..200).collect::<Vec<_>>());
        let rounds = s.describe().unwrap().counters.sync_rounds;
        if flush_on_write {
            assert_eq!(rounds, 200, "flush_on_write fsyncs every append");
        } else {
            assert!(
                rounds < 200,
                "group commit took {rounds} fsyncs for 200 appends"
            );
        }
    }
}

#[tokio::test]
async fn streams_can_be_updated_described_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m.create_stream(StreamDefinition::new("a")).unwrap();
    assert!(matches!(
        m.create_stream(StreamDefinition::new("a")),
        Err(Error::StreamExists(_))
    ));
    s.append(recs(3, 10)).await.unwrap();
    let mut def = StreamDefinition::new("a");
    def.time_to_live_ms = Some(60_000);
    m.update_stream(def.clone()).unwrap();
    let mut changed = def.clone();
    changed.persistence = Persistence::Memory;
    assert!(m
        .update_stream(changed)
        .unwrap_err()
        .to_string()
        .contains("persistence"));
    let d = m.describe("a").unwrap();
    assert_eq!(d.definition, def);
    assert_eq!(
        (d.first_sequence_number, d.last_sequence_number, d.records),
        (0, Some(2), 3)
    );
    assert!(d.oldest_record_timestamp_ms.is_some());
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            s.read(ReadOptions {
                timeout: Duration::from_secs(30),
                ..ReadOptions::from(3)
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.delete_stream("a").unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(woke, Err(Error::StreamDeleted(_))), "{woke:?}");
    assert!(matches!(
        s.append(recs(1, 1)).await,
        Err(Error::StreamDeleted(_))
    ));
    drop(m);
    let m = open(dir.path());
    assert!(m.list().is_empty());
    assert_eq!(
        m.create_stream(StreamDefinition::new("a"))
            .unwrap()
            .append(recs(1, 1))
            .await
            .unwrap(),
        0..1
    );
}

#[test]
fn a_data_directory_is_used_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _m = open(dir.path());
    let second = StreamManager::open(dir.path(), ManagerOptions::default());
    // The holder is named (here the same process, whose PID the first open wrote).
    let pid = std::process::id();
    assert!(
        matches!(second, Err(Error::DataDirLocked { holder: Some(p), .. }) if p == pid),
        "{:?}",
        second.err()
    );
}

#[tokio::test]
async fn start_up_reads_the_newest_segment_only_whatever_the_data_held() {
    let mut read_at_open = Vec::new();
    for segments in [2u64, 40] {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = open(dir.path());
            let s = m
                .create_stream(small(
                    "big",
                    64 << 20,
                    16 * 1024,
                    StrategyOnFull::RejectNewData,
                ))
                .unwrap();
            // Fill `segments` segments, plus the same partial newest segment in both cases.
            for _ in 0..segments {
                s.append(recs(15, 1000)).await.unwrap();
            }
            assert_eq!(s.describe().unwrap().segments as u64, segments);
        }
        let fs = Arc::new(FaultInjectingFs::default());
        let m = StreamManager::open(
            dir.path(),
            ManagerOptions {
                fs: fs.clone(),
                ..Default::default()
            },
        )
        .unwrap();
        read_at_open.push(fs.bytes_read());
        // Sealed segments are still readable: their index is loaded on first use.
        let s = m.stream("big").unwrap();
        assert_eq!(
            s.read_now(segments * 15 / 2, 5, 0).unwrap()[0].sequence_number,
            segments * 15 / 2
        );
    }
    assert!(read_at_open[0] > 0);
    assert_eq!(
        read_at_open[0], read_at_open[1],
        "start-up read {read_at_open:?} bytes for 2 and 40 segments"
    );
}

#[tokio::test]
async fn a_lost_index_file_is_rebuilt_on_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let s = m
        .create_stream(small(
            "idx",
            1 << 20,
            32 * 1024,
            StrategyOnFull::RejectNewData,
        ))
        .unwrap();
    for _ in 0..100 {
        s.append(recs(1, 1000)).await.unwrap();
    }
    drop(s);
    drop(m);
    let idx = dir.path().join("streams/1/00000000000000000000.idx");
    std::fs::write(&idx, b"garbage").unwrap();
    let m = open(dir.path());
    let s = m.stream("idx").unwrap();
    let got = s.read_now(20, 3, 0).unwrap();
    assert_eq!(
        got.iter().map(|r| r.sequence_number).collect::<Vec<_>>(),
        vec![20, 21, 22]
    );
    assert!(
        std::fs::read(&idx).unwrap().starts_with(b"FRYIDX01"),
        "the index file was rewritten"
    );
}
