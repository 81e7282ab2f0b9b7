//! A stream held in memory: the same API as the file log, bounded by `max_size_bytes`, counting
//! each record at its frame size so limits mean the same thing for both persistences.

use std::collections::VecDeque;

use crate::record::{NewRecord, Record};

#[derive(Debug, Default)]
pub struct MemoryLog {
    records: VecDeque<Record>,
    bytes: u64,
    next_seq: u64,
    last_timestamp_ms: i64,
}

impl MemoryLog {
    /// A log whose first record will get `next_seq` (numbering continues across restarts).
    pub fn new(next_seq: u64) -> Self {
        MemoryLog {
            next_seq,
            ..Default::default()
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn first_seq(&self) -> u64 {
        self.records
            .front()
            .map_or(self.next_seq, |r| r.sequence_number)
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn append(&mut self, records: &[NewRecord], now_ms: i64) -> (u64, i64) {
        let ts = now_ms.max(self.last_timestamp_ms);
        let first = self.next_seq;
        for rec in records {
            let r = Record {
                sequence_number: self.next_seq,
                timestamp_ms: ts,
                metadata: rec.metadata.clone(),
                payload: rec.payload.clone(),
            };
            self.bytes += r.stored_len();
            self.records.push_back(r);
            self.next_seq += 1;
        }
        self.last_timestamp_ms = ts;
        (first, ts)
    }

    /// Removes the oldest record; returns whether there was one.
    pub fn drop_oldest(&mut self) -> bool {
        match self.records.pop_front() {
            Some(r) => {
                self.bytes -= r.stored_len();
                true
            }
            None => false,
        }
    }

    pub fn oldest_timestamp(&self) -> Option<i64> {
        self.records.front().map(|r| r.timestamp_ms)
    }

    pub fn read(&self, from: u64, max_count: usize, max_bytes: u64, end: u64) -> Vec<Record> {
        let first = self.first_seq();
        let skip = from.saturating_sub(first) as usize;
        let mut bytes = 0;
        let mut out = Vec::new();
        for r in self.records.iter().skip(skip) {
            if r.sequence_number >= end || out.len() >= max_count {
                break;
            }
            let len = r.stored_len();
            if max_bytes > 0 && !out.is_empty() && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            out.push(r.clone());
        }
        out
    }
}
