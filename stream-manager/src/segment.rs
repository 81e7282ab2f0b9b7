//! One segment file of a stream's log.
//!
//! ```text
//! <base:020>.seg := magic "FRYSEG01" base_seq:u64le frame*     (frames: see record.rs)
//! ```
//! A segment holds consecutive sequence numbers starting at `base_seq` (its file name). Only
//! the newest segment is written to; older ones are sealed. [`FrameReader`] walks frames and,
//! after a damaged range, resynchronises on the next frame whose checksum holds and whose
//! sequence number fits, so corruption costs the damaged records and nothing else.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use crate::index::SparseIndex;
use bytes::Bytes;

use crate::record::{decode_frame, decode_frame_shared, Decoded, Record};
use crate::storage::LogFile;

pub const SEGMENT_MAGIC: &[u8; 8] = b"FRYSEG01";
pub const SEGMENT_HEADER_LEN: u64 = 16;
const READ_CHUNK: usize = 64 * 1024;

pub fn segment_header(base: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&base.to_le_bytes());
    h
}

pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

pub fn index_file_name(base: u64) -> String {
    format!("{base:020}.idx")
}

/// Names of the segment and index files the syncer makes ahead of a roll (`n` counts them per
/// open), so that a roll on an appender's thread creates no file. A sync round renames them to
/// the segment's names; a leftover spare never held an acknowledged record and is removed at
/// start-up.
pub fn spare_file_names(n: u64) -> (String, String) {
    (format!("spare-{n}.seg"), format!("spare-{n}.idx"))
}

pub fn is_spare_file_name(name: &str) -> bool {
    name.starts_with("spare-")
}

/// Parses `<20 digits>.seg` into its base sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the reader found at its position.
#[derive(Debug)]
pub enum Step {
    Frame {
        pos: u64,
        record: Record,
        len: u64,
    },
    /// Clean end of the readable range.
    End,
    /// Bytes at `pos` are not a valid frame (or a frame cut short by the end of the range).
    Damaged {
        pos: u64,
        reason: &'static str,
    },
}

/// Buffered sequential frame reader over `[pos, limit)` of a segment file.
pub struct FrameReader<'a> {
    file: &'a dyn LogFile,
    buf: Bytes,
    /// File offset of `buf[0]`.
    buf_start: u64,
    pos: u64,
    limit: u64,
}

impl<'a> FrameReader<'a> {
    pub fn new(file: &'a dyn LogFile, pos: u64, limit: u64) -> Self {
        FrameReader {
            file,
            buf: Bytes::new(),
            buf_start: pos,
            pos,
            limit,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Ensures `buf` holds `[pos, pos + want)` or everything up to `limit`; returns how many
    /// bytes from `pos` it holds.
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        let off = (self.pos - self.buf_start) as usize;
        if off + want > self.buf.len() && (self.buf_start + self.buf.len() as u64) < self.limit {
            let take = want.max(READ_CHUNK) as u64;
            let end = (self.pos + take).min(self.limit);
            let mut fresh = vec![0u8; (end - self.pos) as usize];
            let n = self.file.read_full_at(&mut fresh, self.pos)?;
            fresh.truncate(n);
            self.buf = Bytes::from(fresh);
            self.buf_start = self.pos;
        }
        let off = (self.pos - self.buf_start) as usize;
        Ok(self.buf.len().saturating_sub(off))
    }

    pub fn next_step(&mut self) -> io::Result<Step> {
        if self.pos >= self.limit {
            return Ok(Step::End);
        }
        let mut want = crate::record::FRAME_HEADER_LEN;
        loop {
            let pos = self.pos;
            let limit = self.limit;
            let avail = self.fill(want)?;
            let off = (pos - self.buf_start) as usize;
            match decode_frame_shared(&self.buf, off) {
                Decoded::Frame(record, len) => {
                    self.pos += len as u64;
                    return Ok(Step::Frame {
                        pos,
                        record,
                        len: len as u64,
                    });
                }
                Decoded::Corrupt(reason) => return Ok(Step::Damaged { pos, reason }),
                Decoded::Incomplete { needed } => {
                    let needed = needed.unwrap_or(crate::record::FRAME_HEADER_LEN);
                    if pos + needed as u64 > limit || needed <= avail || needed <= want {
                        return Ok(Step::Damaged {
                            pos,
                            reason: "frame cut short",
                        });
                    }
                    want = needed;
                }
            }
        }
    }

    /// After damage at the current position, finds the next offset holding a valid frame whose
    /// sequence number lies in `[min_seq, max_seq)`. Moves there and returns it, or returns
    /// `None` (and stays) when the rest of the range holds none.
    pub fn resync(&mut self, min_seq: u64, max_seq: u64) -> io::Result<Option<u64>> {
        let start = self.pos + 1;
        if start >= self.limit {
            return Ok(None);
        }
        let mut rest = vec![0u8; (self.limit - start) as usize];
        let n = self.file.read_full_at(&mut rest, start)?;
        rest.truncate(n);
        for i in 0..rest.len() {
            if let Decoded::Frame(r, _) = decode_frame(&rest[i..]) {
                if (min_seq..max_seq).contains(&r.sequence_number) {
                    self.pos = start + i as u64;
                    self.buf = Bytes::from(rest);
                    self.buf_start = start;
                    return Ok(Some(self.pos));
                }
            }
        }
        Ok(None)
    }
}

/// A segment's in-memory state. `end` is one past the last sequence number it may hold.
pub struct Segment {
    pub base: u64,
    pub end: u64,
    pub len: u64,
    pub file: Arc<dyn LogFile>,
    /// `None` until a reader needs it (sealed segments are not indexed at start-up).
    pub index: Option<SparseIndex>,
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<i64>,
    /// Damaged ranges already logged and counted, by start offset, so re-reads do not recount.
    pub reported_damage: HashSet<u64>,
}

impl Segment {
    pub fn is_empty(&self) -> bool {
        self.end == self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_sort_by_base_and_parse_back() {
        let a = segment_file_name(9);
        let b = segment_file_name(10);
        assert!(a < b);
        assert_eq!(parse_segment_file_name(&b), Some(10));
        assert_eq!(parse_segment_file_name("00000000000000000010.idx"), None);
        assert_eq!(parse_segment_file_name("10.seg"), None);
    }
}
