//! A stream: one log (file or memory) owned by a lock, a syncer thread that turns written records
//! into durable ones (group commit), and a watch channel that publishes the durable end so that
//! appenders waiting for their ack and readers waiting for data wake without polling.
//!
//! What runs on an appender's thread (possibly an async runtime worker) is a write to the page
//! cache under the lock; every fsync, file creation, rename and removal runs on the syncer
//! thread, and reads of sealed segments on the blocking pool.
//!
//! Readers only ever see durable records: a sequence number a reader has seen can never be
//! handed out again after a crash.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::definition::{Persistence, StrategyOnFull, StreamDefinition};
use crate::error::{Error, Result};
use crate::log::{DamageStats, FileLog};
use crate::memory::MemoryLog;
use crate::record::NewRecord;
use crate::segment::SEGMENT_HEADER_LEN;
use crate::storage::FileSystem;
use crate::sync::{request_own_round, request_sync, syncer_loop, SyncFlags};

mod pending;
mod read;
mod reserve;
mod retention;

pub use pending::PendingAppend;
pub use read::ReadOptions;
use reserve::{Reservation, SEQ_RESERVATION_BLOCK};
pub(crate) use retention::sweep_ttl;

/// Milliseconds since the Unix epoch; injectable so retention can be tested without waiting.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Persists the sequence-number floor of a memory stream (its data dies with the process, its
/// numbering must not restart).
pub type SeqReserver = Arc<dyn Fn(u64) -> Result<()> + Send + Sync>;

pub(crate) enum Log {
    File(Box<FileLog>),
    Memory(MemoryLog),
}

impl Log {
    pub(crate) fn first_seq(&self) -> u64 {
        match self {
            Log::File(l) => l.first_seq(),
            Log::Memory(l) => l.first_seq(),
        }
    }
    pub(crate) fn next_seq(&self) -> u64 {
        match self {
            Log::File(l) => l.next_seq(),
            Log::Memory(l) => l.next_seq(),
        }
    }
    fn total_bytes(&self) -> u64 {
        match self {
            Log::File(l) => l.total_bytes(),
            Log::Memory(l) => l.total_bytes(),
        }
    }
}

/// Counters of what happened to a stream's records since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounters {
    pub appended_records: u64,
    pub appended_bytes: u64,
    pub rejected_full_records: u64,
    pub dropped_by_size_records: u64,
    pub dropped_by_ttl_records: u64,
    /// fsync rounds completed; with group commit, far fewer than appends under concurrency.
    pub sync_rounds: u64,
    pub damage: DamageStats,
}

/// A stream's definition and the state of its storage.
#[derive(Debug, Clone)]
pub struct StreamDescription {
    pub definition: StreamDefinition,
    pub first_sequence_number: u64,
    /// `None` while the stream holds no record.
    pub last_sequence_number: Option<u64>,
    pub next_sequence_number: u64,
    pub total_bytes: u64,
    pub records: u64,
    pub oldest_record_timestamp_ms: Option<i64>,
    pub segments: usize,
    pub counters: StreamCounters,
    /// Why the stream refuses writes until Ferry restarts (a failed fsync), if it does.
    pub storage_failed: Option<String>,
    /// The latest append was refused for lack of room (`reject_new_data`); cleared by the next
    /// append that fits, or when retention or an update makes room.
    pub full: bool,
}

pub(crate) struct State {
    pub(crate) def: StreamDefinition,
    pub(crate) log: Log,
    pub(crate) deleted: bool,
    pub(crate) failed: Option<String>,
    /// See [`StreamDescription::full`].
    pub(crate) refusing_full: bool,
    reservation: Reservation,
    pub(crate) counters: StreamCounters,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    pub(crate) durable_end: u64,
    /// Rounds served to `flush_on_write` appends (their tickets, see sync.rs).
    pub(crate) own_rounds: u64,
    pub(crate) failed: Option<Arc<str>>,
    pub(crate) closed: bool,
}

pub(crate) struct Inner {
    pub(crate) name: String,
    pub(crate) state: Mutex<State>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) sync_flags: Mutex<SyncFlags>,
    pub(crate) sync_cv: Condvar,
    syncer: Mutex<Option<JoinHandle<()>>>,
    clock: Clock,
    reserver: Option<SeqReserver>,
}

/// A handle on one stream; cheap to clone.
#[derive(Clone)]
pub struct Stream(pub(crate) Arc<Inner>);

impl Stream {
    pub(crate) fn open(
        def: StreamDefinition,
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        clock: Clock,
        memory_start_seq: u64,
        reserver: Option<SeqReserver>,
    ) -> Result<Stream> {
        let mut reserved_until = memory_start_seq;
        if let (Persistence::Memory, Some(reserve)) = (def.persistence, &reserver) {
            // The first block now, on the opener's thread, so that no append waits for it.
            reserved_until += SEQ_RESERVATION_BLOCK;
            reserve(reserved_until)?;
        }
        let log = match def.persistence {
            Persistence::File => Log::File(Box::new(FileLog::open(
                &def.name,
                &dir,
                fs,
                def.segment_size_bytes,
            )?)),
            Persistence::Memory => Log::Memory(MemoryLog::new(memory_start_seq)),
        };
        let durable_end = log.next_seq();
        let (progress, _) = watch::channel(Progress {
            durable_end,
            ..Default::default()
        });
        let is_file = matches!(log, Log::File(_));
        let inner = Arc::new(Inner {
            name: def.name.clone(),
            state: Mutex::new(State {
                def,
                log,
                deleted: false,
                failed: None,
                refusing_full: false,
                reservation: Reservation::new(reserved_until),
                counters: StreamCounters::default(),
            }),
            progress,
            sync_flags: Mutex::new(SyncFlags::default()),
            sync_cv: Condvar::new(),
            syncer: Mutex::new(None),
            clock,
            reserver,
        });
        if is_file {
            let for_thread = inner.clone();
            let handle = std::thread::Builder::new()
                .name(format!(
                    "ferry-sync-{}",
                    inner.name.chars().take(10).collect::<String>()
                ))
                .spawn(move || syncer_loop(&for_thread))
                .map_err(|e| Error::io(&dir, e))?;
            *lock(&inner.syncer) = Some(handle);
        }
        Ok(Stream(inner))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0.state)
    }

    /// Appends a batch and waits until it is durable. Returns the records' sequence numbers.
    pub async fn append(&self, records: Vec<NewRecord>) -> Result<Range<u64>> {
        self.append_nowait(&records)?.durable().await
    }

    /// Writes a batch (all or nothing) to the page cache and returns at once; the returned
    /// handle resolves when the batch is durable (the syncer thread fsyncs, also for
    /// `flush_on_write`, so this is safe to call from async code). Errors here mean nothing of
    /// the batch was stored.
    pub fn append_nowait(&self, records: &[NewRecord]) -> Result<PendingAppend> {
        if records.is_empty() {
            return Err(Error::InvalidRecord(
                "an append needs at least one record".into(),
            ));
        }
        for r in records {
            r.check_encodable().map_err(Error::InvalidRecord)?;
        }
        let batch_len: u64 = records.iter().map(NewRecord::stored_len).sum();
        let mut st = self.state();
        if st.deleted {
            return Err(Error::StreamDeleted(self.0.name.clone()));
        }
        if let Some(reason) = &st.failed {
            return Err(Error::StorageFailed {
                name: self.0.name.clone(),
                reason: reason.clone(),
            });
        }
        let overhead = if matches!(st.log, Log::File(_)) {
            SEGMENT_HEADER_LEN
        } else {
            0
        };
        if batch_len + overhead > st.def.max_size_bytes {
            return Err(Error::RecordTooLarge {
                size: batch_len,
                limit: st.def.max_size_bytes - overhead,
                what: "the stream's max_size_bytes",
            });
        }
        self.make_room(&mut st, batch_len + overhead, records.len() as u64)?;
        if matches!(st.log, Log::Memory(_)) {
            let need = st.log.next_seq() + records.len() as u64;
            self.reserve_for(&mut st, need)?;
        }
        let now = (self.0.clock)();
        let (first, _) = match &mut st.log {
            Log::File(l) => l.append(records, now)?,
            Log::Memory(l) => l.append(records, now),
        };
        st.counters.appended_records += records.len() as u64;
        st.counters.appended_bytes += batch_len;
        let range = first..first + records.len() as u64;
        let flush_on_write = st.def.flush_on_write;
        let is_file = matches!(st.log, Log::File(_));
        drop(st);
        let own_round = match is_file {
            false => {
                self.publish_durable(range.end);
                0
            }
            true if flush_on_write => request_own_round(&self.0),
            true => {
                request_sync(&self.0);
                0
            }
        };
        Ok(PendingAppend {
            range,
            own_round,
            name: self.0.name.clone(),
            rx: self.0.progress.subscribe(),
        })
    }

    pub(crate) fn publish_durable(&self, end: u64) {
        self.0.progress.send_if_modified(|p| {
            let advance = end > p.durable_end;
            p.durable_end = p.durable_end.max(end);
            advance
        });
    }

    /// The stream's current definition (no storage status, no I/O).
    pub fn definition(&self) -> StreamDefinition {
        self.state().def.clone()
    }

    /// The stream's definition and storage state, from memory: no disk read, so it is cheap
    /// enough for every metrics scrape.
    pub fn describe(&self) -> Result<StreamDescription> {
        let durable_end = self.0.progress.borrow().durable_end;
        let mut st = self.state();
        let st = &mut *st;
        let first = st.log.first_seq();
        let (oldest, segments) = match &st.log {
            Log::File(l) => {
                st.counters.damage = l.damage;
                let oldest = (first < durable_end)
                    .then(|| l.oldest_timestamp())
                    .flatten();
                (oldest, l.segment_count())
            }
            Log::Memory(l) => (l.oldest_timestamp(), 0),
        };
        Ok(StreamDescription {
            definition: st.def.clone(),
            first_sequence_number: first,
            last_sequence_number: (durable_end > first).then(|| durable_end - 1),
            next_sequence_number: durable_end,
            total_bytes: st.log.total_bytes(),
            records: durable_end.saturating_sub(first),
            oldest_record_timestamp_ms: oldest,
            segments,
            counters: st.counters,
            storage_failed: st.failed.clone(),
            full: st.refusing_full,
        })
    }

    /// Applies a new definition (limits, strategy, TTL, exports). The persistence cannot change.
    pub(crate) fn update(&self, def: StreamDefinition) -> Result<()> {
        let mut st = self.state();
        if def.persistence != st.def.persistence {
            return Err(Error::InvalidDefinition(format!(
                "stream {:?}: persistence cannot change from {:?} to {:?}; create a new stream",
                def.name, st.def.persistence, def.persistence
            )));
        }
        if let Log::File(l) = &mut st.log {
            l.segment_size_bytes = def.segment_size_bytes;
        }
        st.def = def;
        // The next append decides whether the stream is still full under the new limits.
        st.refusing_full = false;
        if st.def.strategy_on_full == StrategyOnFull::OverwriteOldestData {
            self.make_room(&mut st, 0, 0)?;
            if matches!(st.log, Log::File(_)) {
                drop(st);
                // Dropped segments' files are removed by the syncer.
                request_sync(&self.0);
            }
        }
        Ok(())
    }

    /// Makes everything written durable, stops the syncer and wakes every waiter.
    pub fn close(&self) {
        crate::sync::stop_syncer(&self.0);
        if let Some(handle) = lock(&self.0.syncer).take() {
            let _ = handle.join();
        }
        self.0.progress.send_modify(|p| p.closed = true);
    }

    pub(crate) fn mark_deleted(&self) {
        self.state().deleted = true;
        self.close();
    }
}

pub(crate) use crate::time::lock;
