//! Sparse per-segment index: one entry every [`INDEX_INTERVAL_BYTES`] of segment data, so
//! seeking to a sequence number reads at most that many bytes past the entry instead of the
//! whole segment.
//!
//! ```text
//! <base>.idx := magic "FRYIDX01" entry*
//! entry      := relative_seq:u32le position:u32le     (relative to the segment's base)
//! ```
//! The index is a hint, written without fsync: on load, entries stop at the first that is not
//! strictly increasing, and a reader checks that the frame at an entry carries the expected
//! sequence number, rebuilding the index from the segment when it does not.

pub const INDEX_MAGIC: &[u8; 8] = b"FRYIDX01";
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
pub const ENTRY_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_seq: u32,
    pub position: u32,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_seq.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
    }
}

#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    entries: Vec<IndexEntry>,
}

impl SparseIndex {
    /// Parses an index file's bytes, keeping the valid prefix. `segment_len` bounds positions.
    pub fn decode(bytes: &[u8], segment_len: u64) -> SparseIndex {
        let mut entries: Vec<IndexEntry> = Vec::new();
        if bytes.len() < INDEX_MAGIC.len() || &bytes[..INDEX_MAGIC.len()] != INDEX_MAGIC {
            return SparseIndex { entries };
        }
        for chunk in bytes[INDEX_MAGIC.len()..].chunks_exact(ENTRY_LEN) {
            let e = IndexEntry {
                relative_seq: u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            let increasing = entries
                .last()
                .is_none_or(|p| e.relative_seq > p.relative_seq && e.position > p.position);
            if !increasing || u64::from(e.position) >= segment_len {
                break;
            }
            entries.push(e);
        }
        SparseIndex { entries }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_MAGIC.len() + self.entries.len() * ENTRY_LEN);
        out.extend_from_slice(INDEX_MAGIC);
        for e in &self.entries {
            e.encode(&mut out);
        }
        out
    }

    /// Decides whether a frame at `position` deserves an entry, and records it if so.
    pub fn observe(&mut self, relative_seq: u32, position: u64) -> Option<IndexEntry> {
        let due = match self.entries.last() {
            None => true,
            Some(last) => position >= u64::from(last.position) + INDEX_INTERVAL_BYTES,
        };
        if !due {
            return None;
        }
        let e = IndexEntry {
            relative_seq,
            position: position as u32,
        };
        self.entries.push(e);
        Some(e)
    }

    /// The last entry at or before `relative_seq`.
    pub fn floor(&self, relative_seq: u32) -> Option<IndexEntry> {
        let i = self
            .entries
            .partition_point(|e| e.relative_seq <= relative_seq);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Forgets the newest `n` entries (they described a write that was undone).
    pub fn truncate_last(&mut self, n: usize) {
        self.entries.truncate(self.entries.len().saturating_sub(n));
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_taken_every_interval() {
        let mut idx = SparseIndex::default();
        let mut taken = 0;
        for i in 0..1000u32 {
            if idx.observe(i, 16 + u64::from(i) * 100).is_some() {
                taken += 1;
            }
        }
        // 100 KB of frames, one entry per 4 KiB (the first frame always gets one).
        assert_eq!(taken, 25);
        assert_eq!(idx.floor(0).unwrap().relative_seq, 0);
        let e = idx.floor(500).unwrap();
        assert!(e.relative_seq <= 500 && 500 - e.relative_seq < 41);
    }

    #[test]
    fn decoding_keeps_only_the_valid_prefix() {
        let mut idx = SparseIndex::default();
        idx.observe(0, 16);
        idx.observe(50, 5000);
        idx.observe(90, 9200);
        let mut bytes = idx.encode();
        // A torn last entry and garbage are ignored.
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(SparseIndex::decode(&bytes, 100_000).len(), 3);
        // Positions past the segment's end are not trusted.
        assert_eq!(SparseIndex::decode(&bytes, 6000).len(), 2);
        // A bad magic means no index at all.
        bytes[0] = b'X';
        assert_eq!(SparseIndex::decode(&bytes, 100_000).len(), 0);
    }
}
