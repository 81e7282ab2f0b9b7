//! Reads: only durable records, now (`read_now`) or after waiting on the progress channel for
//! enough of them (`read`).

use std::time::Duration;

use super::{Log, Stream};
use crate::error::{Error, Result};
use crate::record::Record;

/// Parameters of a read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub from: u64,
    /// Wait until at least this many records from `from` exist (or `timeout` passes).
    pub min_count: usize,
    pub max_count: usize,
    /// Stop before exceeding this many stored bytes; 0 means no byte limit. At least one record
    /// is returned when one exists, whatever its size.
    pub max_bytes: u64,
    pub timeout: Duration,
}

impl ReadOptions {
    pub fn from(from: u64) -> Self {
        ReadOptions {
            from,
            min_count: 1,
            max_count: 1000,
            max_bytes: 0,
            timeout: Duration::ZERO,
        }
    }
}

impl Stream {
    /// One past the last durable sequence number: what readers can see now.
    pub fn durable_end(&self) -> u64 {
        self.0.progress.borrow().durable_end
    }

    /// Reads what is durable now, without waiting.
    pub fn read_now(&self, from: u64, max_count: usize, max_bytes: u64) -> Result<Vec<Record>> {
        let end = self.0.progress.borrow().durable_end;
        let mut st = self.state();
        if st.deleted {
            return Err(Error::StreamDeleted(self.0.name.clone()));
        }
        let oldest = st.log.first_seq();
        if from < oldest {
            return Err(Error::SequenceTrimmed {
                name: self.0.name.clone(),
                requested: from,
                oldest,
            });
        }
        if from >= end || max_count == 0 {
            return Ok(Vec::new());
        }
        let st = &mut *st;
        match &mut st.log {
            Log::File(l) => {
                let out = l.read(from, max_count, max_bytes, end);
                st.counters.damage = l.damage;
                out
            }
            Log::Memory(l) => Ok(l.read(from, max_count, max_bytes, end)),
        }
    }

    /// Waits (without polling) until `min_count` records from `from` are durable or the timeout
    /// passes, then reads.
    pub async fn read(&self, opts: ReadOptions) -> Result<Vec<Record>> {
        if opts.max_count == 0 || opts.min_count > opts.max_count {
            return Err(Error::InvalidRead(format!(
                "need 1 <= max_count and min_count <= max_count (got min {} max {})",
                opts.min_count, opts.max_count
            )));
        }
        // Fail fast on a trimmed position rather than after the wait.
        self.read_now(opts.from, 0, 0)?;
        let target = opts.from.saturating_add(opts.min_count as u64);
        let mut rx = self.0.progress.subscribe();
        if opts.min_count > 0 && !opts.timeout.is_zero() {
            let wait = rx.wait_for(|p| p.durable_end >= target || p.closed);
            let _ = tokio::time::timeout(opts.timeout, wait).await;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.read_now(opts.from, opts.max_count, opts.max_bytes)
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }
}
