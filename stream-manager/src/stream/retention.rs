//! Retention: by size when an append needs room (per the stream's strategy when full), and by
//! age when the manager's sweep asks (`enforce_ttl`). Both drop whole segments, oldest first,
//! and count what they dropped. A drop only forgets the segment; its files are removed by the
//! syncer thread (see log/rotation.rs), so size retention inside an append does no file I/O.

use super::{Log, State, Stream};
use crate::definition::StrategyOnFull;
use crate::error::{Error, Result};
use crate::sync::request_sync;

/// Applies the time to live of every stream once; returns the number of records removed.
/// Blocking (it reads the tails of old segments): run it on a blocking thread.
pub(crate) fn sweep_ttl(streams: &[Stream]) -> u64 {
    let mut removed = 0;
    for s in streams {
        match s.enforce_ttl() {
            Ok(n) => removed += n,
            Err(e) => {
                tracing::warn!(stream = s.name(), error = %e, "time-to-live sweep failed")
            }
        }
    }
    removed
}

impl Stream {
    /// Size retention for an append of `needed` bytes in `count` records: refuse it
    /// (`reject_new_data`) or drop the oldest segments until it fits (`overwrite_oldest_data`).
    pub(super) fn make_room(&self, st: &mut State, needed: u64, count: u64) -> Result<()> {
        let max = st.def.max_size_bytes;
        while st.log.total_bytes() + needed > max {
            if st.def.strategy_on_full == StrategyOnFull::RejectNewData {
                st.counters.rejected_full_records += count;
                st.refusing_full = true;
                return Err(Error::StreamFull {
                    name: self.0.name.clone(),
                    bytes: st.log.total_bytes(),
                    max_size_bytes: max,
                });
            }
            let dropped = match &mut st.log {
                Log::File(l) => l.drop_oldest_segment()?,
                Log::Memory(l) => l.drop_oldest().then_some(1),
            };
            match dropped {
                Some(n) => st.counters.dropped_by_size_records += n,
                None => break,
            }
        }
        st.refusing_full = false;
        Ok(())
    }

    /// Removes records older than the stream's time to live. Returns how many were removed.
    /// Blocking: it may read the tail of old segments, so call it from a blocking thread.
    pub fn enforce_ttl(&self) -> Result<u64> {
        let mut st = self.state();
        let Some(ttl) = st.def.time_to_live_ms else {
            return Ok(0);
        };
        let cutoff = (self.0.clock)().saturating_sub(ttl as i64);
        let mut removed = 0;
        loop {
            let n = match &mut st.log {
                Log::File(l) => match l.oldest_segment_last_timestamp()? {
                    Some(ts) if ts < cutoff => l.drop_oldest_segment()?.unwrap_or(0),
                    _ => 0,
                },
                Log::Memory(l) => match l.oldest_timestamp() {
                    Some(ts) if ts < cutoff => u64::from(l.drop_oldest()),
                    _ => 0,
                },
            };
            if n == 0 {
                break;
            }
            removed += n;
        }
        st.counters.dropped_by_ttl_records += removed;
        if removed > 0 {
            st.refusing_full = false;
            if let Log::File(l) = &mut st.log {
                l.refresh_oldest();
                drop(st);
                // The syncer removes the dropped segments' files.
                request_sync(&self.0);
            }
        }
        Ok(removed)
    }
}
