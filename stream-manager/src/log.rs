//! A stream's on-disk log: a directory of segment files (see segment.rs) with sparse indexes.
//!
//! Start-up reads the newest segment (the one that can have a torn tail) and the first record
//! of the oldest, and lists the others, so restart time depends on the segment size, not on
//! how much data is held. Sealed segments are indexed lazily, the first time a reader or the
//! TTL sweep needs them.
//!
//! Appends go to the page cache under the stream's lock and touch no other file: the files a
//! roll needs are made ahead by the syncer thread, and what a roll or retention leaves to do on
//! the file system (renames, removals, fsyncs) is owed to the next sync round (see
//! rotation.rs). A batch is never split across segments, so it is either wholly stored or not
//! at all; a segment may exceed `segment_size_bytes` by one batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::SparseIndex;
use crate::reader::{read_segment, scan_tail};
use crate::record::{encode_frame, NewRecord, Record};
use crate::recovery::recover_active;
use crate::segment::{
    index_file_name, is_spare_file_name, parse_segment_file_name, segment_file_name,
    segment_header, Segment,
};
use crate::storage::{FileSystem, LogFile};

mod rotation;

use rotation::Owed;

/// Damage found in segment files, counted once per damaged range.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DamageStats {
    pub damaged_ranges: u64,
    pub damaged_bytes: u64,
    /// Bytes cut from the newest segment's tail at start-up (a torn, never-acknowledged write).
    pub truncated_tail_bytes: u64,
}

pub struct FileLog {
    name: String,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    sealed: BTreeMap<u64, Segment>,
    active: Segment,
    active_index_file: Arc<dyn LogFile>,
    active_index_len: u64,
    total_bytes: u64,
    pub segment_size_bytes: u64,
    last_timestamp_ms: i64,
    pub damage: DamageStats,
    /// Timestamp of the oldest stored record, kept up to date so that describe reads nothing.
    oldest_ts: Option<i64>,
    /// The oldest segment became one whose first timestamp is not known yet (one from before
    /// start-up): `oldest_ts` holds the previous value until a probe reads the new one.
    oldest_stale: bool,
    owed: Owed,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl FileLog {
    pub fn open(
        name: &str,
        dir: &Path,
        fs: Arc<dyn FileSystem>,
        segment_size_bytes: u64,
    ) -> Result<FileLog> {
        fs.create_dir_all(dir).map_err(io_err(dir))?;
        let names = fs.list(dir).map_err(io_err(dir))?;
        for spare in names.iter().filter(|n| is_spare_file_name(n)) {
            // Never renamed to a segment, so it holds no acknowledged record.
            let path = dir.join(spare);
            if let Err(e) = fs.remove_file(&path) {
                tracing::warn!(stream = name, path = %path.display(), error = %e, "could not remove a spare segment file");
            }
        }
        let mut bases: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_segment_file_name(n))
            .collect();
        bases.sort_unstable();
        let mut dir_dirty = false;
        if bases.is_empty() {
            create_segment_file(&*fs, dir, 0)?;
            bases.push(0);
            dir_dirty = true;
        }
        let mut sealed = BTreeMap::new();
        let mut total_bytes = 0;
        for pair in bases.windows(2) {
            let path = dir.join(segment_file_name(pair[0]));
            let file = fs.open(&path, false).map_err(io_err(&path))?;
            let len = file.size().map_err(io_err(&path))?;
            total_bytes += len;
            sealed.insert(pair[0], new_segment(pair[0], pair[1], len, file, None));
        }
        let base = *bases.last().unwrap_or(&0);
        let mut damage = DamageStats::default();
        let (active, index) = recover_active(name, &*fs, dir, base, &mut damage)?;
        total_bytes += active.len;
        let idx_path = dir.join(index_file_name(base));
        let active_index_file = fs.open(&idx_path, true).map_err(io_err(&idx_path))?;
        let bytes = index.encode();
        active_index_file
            .set_len(0)
            .and_then(|_| active_index_file.write_all_at(&bytes, 0))
            .map_err(io_err(&idx_path))?;
        let last_timestamp_ms = active.last_timestamp_ms.unwrap_or(0);
        let mut log = FileLog {
            name: name.to_owned(),
            dir: dir.to_owned(),
            fs,
            sealed,
            active: Segment {
                index: Some(index),
                ..active
            },
            active_index_file,
            active_index_len: bytes.len() as u64,
            total_bytes,
            segment_size_bytes,
            last_timestamp_ms,
            damage,
            oldest_ts: None,
            oldest_stale: false,
            owed: Owed::new(dir_dirty),
        };
        log.note_oldest_changed();
        log.refresh_oldest();
        Ok(log)
    }

    pub fn next_seq(&self) -> u64 {
        self.active.end
    }

    pub fn first_seq(&self) -> u64 {
        self.sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(self.active.base)
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Writes a batch to the page cache. Returns the first sequence number and the timestamp.
    pub fn append(&mut self, records: &[NewRecord], now_ms: i64) -> Result<(u64, i64)> {
        let batch_len: u64 = records.iter().map(NewRecord::stored_len).sum();
        if !self.active.is_empty() && self.active.len + batch_len > self.segment_size_bytes {
            self.roll()?;
        }
        let was_empty = self.first_seq() == self.next_seq();
        let ts = now_ms.max(self.last_timestamp_ms);
        let first = self.active.end;
        let start = self.active.len;
        let mut buf = Vec::with_capacity(batch_len as usize);
        let mut entries = Vec::new();
        let index = self.active.index.get_or_insert_with(SparseIndex::default);
        for (i, rec) in records.iter().enumerate() {
            let seq = first + i as u64;
            let pos = start + buf.len() as u64;
            if let Some(e) = index.observe((seq - self.active.base) as u32, pos) {
                entries.push(e);
            }
            encode_frame(&mut buf, seq, ts, rec);
        }
        let path = self.dir.join(segment_file_name(self.active.base));
        if let Err(e) = self.active.file.write_all_at(&buf, start) {
            // Undo the torn write so the segment ends on a frame boundary again.
            let undo = self.active.file.set_len(start);
            self.active.index = Some(self.rebuilt_index_without(entries.len()));
            return Err(match undo {
                Ok(()) => Error::io(path, e),
                Err(u) => Error::StorageFailed {
                    name: self.name.clone(),
                    reason: format!("write failed ({e}) and could not be undone ({u})"),
                },
            });
        }
        self.active.len += buf.len() as u64;
        self.active.end += records.len() as u64;
        self.total_bytes += buf.len() as u64;
        self.active.first_timestamp_ms.get_or_insert(ts);
        self.active.last_timestamp_ms = Some(ts);
        self.last_timestamp_ms = ts;
        if was_empty {
            self.oldest_ts = Some(ts);
            self.oldest_stale = false;
        }
        if !entries.is_empty() {
            let mut bytes = Vec::new();
            for e in &entries {
                e.encode(&mut bytes);
            }
            // The index is a hint rebuilt on demand; a failed write only costs a later scan.
            if self
                .active_index_file
                .write_all_at(&bytes, self.active_index_len)
                .is_ok()
            {
                self.active_index_len += bytes.len() as u64;
            }
        }
        Ok((first, ts))
    }

    fn rebuilt_index_without(&mut self, added: usize) -> SparseIndex {
        let mut idx = self.active.index.take().unwrap_or_default();
        idx.truncate_last(added);
        idx
    }

    /// The newest timestamp in the oldest segment, if it holds any record.
    pub fn oldest_segment_last_timestamp(&mut self) -> Result<Option<i64>> {
        let Some(seg) = self.sealed.values_mut().next() else {
            return Ok(self.active.last_timestamp_ms);
        };
        if seg.last_timestamp_ms.is_none() && !seg.is_empty() {
            seg.last_timestamp_ms =
                scan_tail(&self.name, &*self.fs, &self.dir, seg, &mut self.damage)?;
        }
        Ok(seg.last_timestamp_ms)
    }

    /// Timestamp of the oldest record stored (read from memory: see `oldest_ts`).
    pub fn oldest_timestamp(&self) -> Option<i64> {
        self.oldest_ts
    }

    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// Reads records `>= from` and `< end`, at most `max_count` and about `max_bytes` (at least
    /// one record is returned if any exists, whatever its size). `max_bytes == 0` means no limit.
    pub fn read(
        &mut self,
        from: u64,
        max_count: usize,
        max_bytes: u64,
        end: u64,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut next = from;
        while out.len() < max_count && next < end {
            let base = match self.sealed.range(..=next).next_back() {
                Some((&b, s)) if next < s.end => b,
                _ if next >= self.active.base => self.active.base,
                _ => match self.sealed.range(next..).next() {
                    // `next` fell in a gap (damaged range); continue at the next segment.
                    Some((&b, _)) => b,
                    None => self.active.base,
                },
            };
            let seg = if base == self.active.base {
                &mut self.active
            } else {
                self.sealed
                    .get_mut(&base)
                    .ok_or_else(|| Error::InvalidRead("segment vanished".into()))?
            };
            let done = read_segment(
                &self.name,
                &*self.fs,
                &self.dir,
                seg,
                next.max(base),
                end,
                max_count,
                max_bytes,
                &mut out,
                &mut bytes,
                &mut self.damage,
            )?;
            let seg_end = seg.end;
            if done || base == self.active.base {
                break;
            }
            next = seg_end.max(next);
        }
        Ok(out)
    }
}

pub(crate) fn new_segment(
    base: u64,
    end: u64,
    len: u64,
    file: Arc<dyn LogFile>,
    index: Option<SparseIndex>,
) -> Segment {
    Segment {
        base,
        end,
        len,
        file,
        index,
        first_timestamp_ms: None,
        last_timestamp_ms: None,
        reported_damage: Default::default(),
    }
}

fn create_segment_file(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<Arc<dyn LogFile>> {
    let path = dir.join(segment_file_name(base));
    let file = fs.open(&path, true).map_err(io_err(&path))?;
    if let Err(e) = file
        .set_len(0)
        .and_then(|_| file.write_all_at(&segment_header(base), 0))
    {
        let _ = fs.remove_file(&path);
        return Err(Error::io(path, e));
    }
    Ok(file)
}
