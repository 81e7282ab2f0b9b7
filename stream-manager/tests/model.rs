//! Property test: random sequences of append / read / TTL sweep / reopen run against a stream
//! and against a plain in-memory model of what the stream promised; they must agree.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ferry_stream_manager::{
    Error, ManagerOptions, NewRecord, Persistence, StrategyOnFull, StreamDefinition, StreamManager,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { count: usize, size: usize },
    Read { back: u64, max_count: usize },
    AdvanceClockAndSweep { ms: i64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8, 0usize..600).prop_map(|(count, size)| Op::Append { count, size }),
        3 => (0u64..80, 1usize..50).prop_map(|(back, max_count)| Op::Read { back, max_count }),
        1 => (0i64..3000).prop_map(|ms| Op::AdvanceClockAndSweep { ms }),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    /// Every record the stream acknowledged and has not been allowed to drop, by sequence number.
    records: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

fn open(dir: &Path, clock: &Arc<AtomicI64>) -> StreamManager {
    let c = clock.clone();
    StreamManager::open(
        dir,
        ManagerOptions {
            clock: Arc::new(move || c.load(Ordering::SeqCst)),
            ..Default::default()
        },
    )
    .unwrap()
}

fn run(
    ops: Vec<Op>,
    persistence: Persistence,
    strategy: StrategyOnFull,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let mut def = StreamDefinition::new("model");
    def.persistence = persistence;
    def.strategy_on_full = strategy;
    def.max_size_bytes = 16 * 1024;
    def.segment_size_bytes = 4096;
    def.time_to_live_ms = Some(5_000);
    let mut mgr = open(dir.path(), &clock);
    let mut stream = mgr.create_stream(def.clone()).unwrap();
    let mut model = Model {
        records: BTreeMap::new(),
        next: 0,
    };
    let mut payload_id = 0u32;
    for op in ops {
        match op {
            Op::Append { count, size } => {
                let batch: Vec<NewRecord> = (0..count)
                    .map(|_| {
                        payload_id += 1;
                        let mut p = payload_id.to_le_bytes().to_vec();
                        p.resize(size.max(4), (payload_id % 256) as u8);
                        NewRecord::new(p)
                    })
                    .collect();
                match stream.append_nowait(&batch).and_then(|p| p.wait_blocking()) {
                    Ok(range) => {
                        prop_assert!(
                            range.start >= model.next,
                            "{range:?} reuses numbers below {}",
                            model.next
                        );
                        prop_assert_eq!(range.end - range.start, count as u64);
                        for (seq, r) in range.clone().zip(&batch) {
                            model.records.insert(seq, r.payload.to_vec());
                        }
                        model.next = range.end;
                    }
                    Err(Error::StreamFull { .. }) => {
                        prop_assert_eq!(strategy, StrategyOnFull::RejectNewData);
                        let batch_len: u64 = batch.iter().map(NewRecord::stored_len).sum();
                        let d = stream.describe().unwrap();
                        prop_assert!(d.total_bytes + batch_len > def.max_size_bytes - 16);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("append failed: {e}"))),
                }
            }
            Op::Read { back, max_count } => {
                let first = stream.describe().unwrap().first_sequence_number;
                let from = model.next.saturating_sub(back);
                match stream.read_now(from, max_count, 0) {
                    Ok(got) => {
                        prop_assert!(from >= first);
                        let want: Vec<(u64, Vec<u8>)> = model
                            .records
                            .range(from..)
                            .take(max_count)
                            .map(|(k, v)| (*k, v.clone()))
                            .collect();
                        let got: Vec<(u64, Vec<u8>)> = got
                            .into_iter()
                            .map(|r| (r.sequence_number, r.payload.to_vec()))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                    Err(Error::SequenceTrimmed { oldest, .. }) => {
                        prop_assert!(from < first);
                        prop_assert_eq!(oldest, first);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("read failed: {e}"))),
                }
            }
            Op::AdvanceClockAndSweep { ms } => {
                clock.fetch_add(ms, Ordering::SeqCst);
                stream.enforce_ttl().unwrap();
            }
            Op::Reopen => {
                drop(stream);
                drop(mgr);
                mgr = open(dir.path(), &clock);
                stream = mgr.stream("model").unwrap();
                if persistence == Persistence::Memory {
                    model.records.clear();
                    let d = stream.describe().unwrap();
                    prop_assert!(d.next_sequence_number >= model.next);
                    model.next = d.next_sequence_number;
                }
            }
        }
        // Whatever the stream dropped, it dropped from the front, and only when allowed to.
        let d = stream.describe().unwrap();
        prop_assert_eq!(d.next_sequence_number, model.next);
        prop_assert!(
            d.total_bytes <= def.max_size_bytes,
            "{} bytes stored",
            d.total_bytes
        );
        let dropped: Vec<u64> = model
            .records
            .range(..d.first_sequence_number)
            .map(|(k, _)| *k)
            .collect();
        if strategy == StrategyOnFull::RejectNewData && def.time_to_live_ms.is_none() {
            prop_assert!(dropped.is_empty());
        }
        for k in dropped {
            model.records.remove(&k);
        }
        prop_assert_eq!(d.records, model.records.len() as u64);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn file_streams_that_overwrite_agree_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, Persistence::File, StrategyOnFull::OverwriteOldestData)?;
    }

    #[test]
    fn file_streams_that_reject_agree_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, Persistence::File, StrategyOnFull::RejectNewData)?;
    }

    #[test]
    fn memory_streams_agree_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, Persistence::Memory, StrategyOnFull::OverwriteOldestData)?;
    }
}
