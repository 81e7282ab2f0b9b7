//! What changes the set of segment files: rolls and retention's drops, and the file-system work
//! they leave to the syncer thread so that none of it runs on an appender's thread.
//!
//! A roll takes a *spare* (a segment and an index file the syncer made ahead under a temporary
//! name), writes the header into the page cache and carries on; the next sync round renames the
//! spare to `<base>.seg` / `<base>.idx` before it fsyncs the file and the directory, so nothing
//! in it is acknowledged before it has its name on disk. A crash before that leaves a spare
//! holding unacknowledged records only, and start-up removes it. A drop forgets the segment at
//! once (its records are gone for readers and for size accounting) and the round removes its
//! files. The round also reads the first timestamp of a new oldest segment when it is not
//! known, so describe never has to.

use std::io;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{io_err, new_segment, FileLog};
use crate::error::{Error, Result};
use crate::index::{SparseIndex, INDEX_MAGIC};
use crate::reader::first_timestamp;
use crate::segment::{
    index_file_name, segment_file_name, segment_header, spare_file_names, SEGMENT_HEADER_LEN,
};
use crate::storage::{FileSystem, LogFile};

/// File-system work owed to the next sync round, and the spare for the next roll.
pub(crate) struct Owed {
    /// Segments sealed since the last round: their last writes still need an fsync.
    files: Vec<Arc<dyn LogFile>>,
    renames: Vec<Rename>,
    removals: Vec<PathBuf>,
    dir_dirty: bool,
    spare: Option<SpareFiles>,
    spares_named: u64,
}

impl Owed {
    pub(super) fn new(dir_dirty: bool) -> Owed {
        Owed {
            files: Vec::new(),
            renames: Vec::new(),
            removals: Vec::new(),
            dir_dirty,
            spare: None,
            spares_named: 0,
        }
    }
}

struct Rename {
    from: PathBuf,
    to: PathBuf,
    /// A segment must get its name before its records are acknowledged; an index is a hint.
    required: bool,
}

/// A segment file and its index file, created empty under temporary names.
pub(crate) struct SpareFiles {
    seg: Arc<dyn LogFile>,
    idx: Arc<dyn LogFile>,
    seg_path: PathBuf,
    idx_path: PathBuf,
}

/// A spare for the syncer to create without holding the stream's lock.
pub(crate) struct SparePlan {
    fs: Arc<dyn FileSystem>,
    seg_path: PathBuf,
    idx_path: PathBuf,
}

impl SparePlan {
    fn new(fs: Arc<dyn FileSystem>, dir: &Path, n: u64) -> SparePlan {
        let (seg, idx) = spare_file_names(n);
        SparePlan {
            fs,
            seg_path: dir.join(seg),
            idx_path: dir.join(idx),
        }
    }

    pub(crate) fn create(self) -> Result<SpareFiles> {
        let made = self.create_files();
        if made.is_err() {
            let _ = self.fs.remove_file(&self.seg_path);
            let _ = self.fs.remove_file(&self.idx_path);
        }
        made
    }

    fn create_files(&self) -> Result<SpareFiles> {
        let open = |path: &Path, contents: &[u8]| {
            self.fs
                .open(path, true)
                .and_then(|f| {
                    f.set_len(0)?;
                    f.write_all_at(contents, 0)?;
                    Ok(f)
                })
                .map_err(io_err(path))
        };
        Ok(SpareFiles {
            seg: open(&self.seg_path, &[])?,
            idx: open(&self.idx_path, INDEX_MAGIC)?,
            seg_path: self.seg_path.clone(),
            idx_path: self.idx_path.clone(),
        })
    }
}

impl SpareFiles {
    /// Removes an unused spare (best effort: start-up removes leftovers anyway).
    pub(crate) fn discard(self, fs: &dyn FileSystem) {
        let _ = fs.remove_file(&self.seg_path);
        let _ = fs.remove_file(&self.idx_path);
    }
}

/// A read of the first timestamp of the oldest segment, done without the stream's lock.
pub(crate) struct OldestProbe {
    first_seq: u64,
    base: u64,
    end: u64,
    len: u64,
    file: Arc<dyn LogFile>,
}

impl OldestProbe {
    pub(crate) fn read(&self) -> io::Result<Option<i64>> {
        first_timestamp(&*self.file, self.base, self.end, self.len)
    }
}

/// What one sync round does: everything up to `upto` (exclusive) becomes durable.
pub(crate) struct SyncWork {
    files: Vec<Arc<dyn LogFile>>,
    renames: Vec<Rename>,
    removals: Vec<PathBuf>,
    dir: Option<PathBuf>,
    pub(crate) upto: u64,
    pub(crate) probe: Option<OldestProbe>,
}

impl SyncWork {
    /// Renames spares, fsyncs the files, removes dropped segments, fsyncs the directory. An
    /// error means nothing since the last good round can be promised.
    pub(crate) fn perform(&self, name: &str, fs: &dyn FileSystem) -> io::Result<()> {
        for r in &self.renames {
            match fs.rename(&r.from, &r.to) {
                Err(e) if r.required => {
                    let what = format!("naming new segment {}: {e}", r.to.display());
                    return Err(io::Error::new(e.kind(), what));
                }
                Err(e) => {
                    tracing::debug!(stream = name, path = %r.to.display(), error = %e, "could not name a segment index; it is rebuilt when needed")
                }
                Ok(()) => {}
            }
        }
        for f in &self.files {
            f.sync_data()?;
        }
        self.remove_dropped(name, fs);
        self.dir.as_deref().map_or(Ok(()), |d| fs.sync_dir(d))
    }

    /// Removes the files of dropped segments; safe even after a failed round, since no record
    /// still promised lives in them.
    pub(crate) fn remove_dropped(&self, name: &str, fs: &dyn FileSystem) {
        for path in &self.removals {
            // A leftover file only means old data survives until it is removed again.
            if let Err(e) = fs.remove_file(path) {
                tracing::warn!(stream = name, path = %path.display(), error = %e, "could not remove segment file");
            }
        }
    }
}

impl FileLog {
    /// Seals the active segment and starts a new, empty one in a spare (made here, on the
    /// calling thread, only when the syncer has none ready).
    pub fn roll(&mut self) -> Result<()> {
        let base = self.active.end;
        let spare = match self.owed.spare.take() {
            Some(spare) => spare,
            None => self.next_spare_plan().create()?,
        };
        let seg_path = self.dir.join(segment_file_name(base));
        if let Err(e) = spare.seg.write_all_at(&segment_header(base), 0) {
            self.owed.spare = Some(spare);
            return Err(Error::io(seg_path, e));
        }
        let fresh = new_segment(
            base,
            base,
            SEGMENT_HEADER_LEN,
            spare.seg,
            Some(SparseIndex::default()),
        );
        let old = mem::replace(&mut self.active, fresh);
        self.owed.files.push(old.file.clone());
        self.sealed.insert(old.base, old);
        self.active_index_file = spare.idx;
        self.active_index_len = INDEX_MAGIC.len() as u64;
        self.total_bytes += SEGMENT_HEADER_LEN;
        self.owed.renames.push(Rename {
            from: spare.seg_path,
            to: seg_path,
            required: true,
        });
        self.owed.renames.push(Rename {
            from: spare.idx_path,
            to: self.dir.join(index_file_name(base)),
            required: false,
        });
        self.owed.dir_dirty = true;
        Ok(())
    }

    /// Removes the oldest segment, rolling first when only the active one is left; its files
    /// are removed by the next sync round. Returns the number of records removed, or `None`
    /// when there is nothing to remove.
    pub fn drop_oldest_segment(&mut self) -> Result<Option<u64>> {
        if self.sealed.is_empty() {
            if self.active.is_empty() {
                return Ok(None);
            }
            self.roll()?;
        }
        let Some((base, seg)) = self.sealed.pop_first() else {
            return Ok(None);
        };
        self.total_bytes -= seg.len;
        self.owed.files.retain(|f| !Arc::ptr_eq(f, &seg.file));
        self.owed.removals.extend([
            self.dir.join(segment_file_name(base)),
            self.dir.join(index_file_name(base)),
        ]);
        self.owed.dir_dirty = true;
        self.note_oldest_changed();
        Ok(Some(seg.end - seg.base))
    }

    pub fn take_sync_work(&mut self) -> SyncWork {
        let mut files = mem::take(&mut self.owed.files);
        files.push(self.active.file.clone());
        SyncWork {
            files,
            renames: mem::take(&mut self.owed.renames),
            removals: mem::take(&mut self.owed.removals),
            dir: mem::take(&mut self.owed.dir_dirty).then(|| self.dir.clone()),
            upto: self.active.end,
            probe: self.oldest_probe(),
        }
    }

    /// The spare the syncer should make now: one once the active segment is half full, so a
    /// roll rarely has to make its own.
    pub(crate) fn spare_wanted(&mut self) -> Option<SparePlan> {
        let half_full = self.active.len.saturating_mul(2) >= self.segment_size_bytes;
        (self.owed.spare.is_none() && half_full).then(|| self.next_spare_plan())
    }

    pub(crate) fn install_spare(&mut self, spare: SpareFiles) {
        if let Some(unused) = self.owed.spare.replace(spare) {
            unused.discard(&*self.fs);
        }
    }

    pub(crate) fn take_spare(&mut self) -> Option<SpareFiles> {
        self.owed.spare.take()
    }

    fn next_spare_plan(&mut self) -> SparePlan {
        self.owed.spares_named += 1;
        SparePlan::new(self.fs.clone(), &self.dir, self.owed.spares_named)
    }

    /// Updates the oldest timestamp after the oldest segment changed, from memory when its
    /// first timestamp is known, else by marking it for a probe.
    pub(super) fn note_oldest_changed(&mut self) {
        if self.first_seq() >= self.next_seq() {
            self.oldest_ts = None;
            self.oldest_stale = false;
            return;
        }
        let oldest = self.sealed.values().next().unwrap_or(&self.active);
        match oldest.first_timestamp_ms {
            Some(ts) => {
                self.oldest_ts = Some(ts);
                self.oldest_stale = false;
            }
            None => self.oldest_stale = true,
        }
    }

    pub(crate) fn oldest_probe(&self) -> Option<OldestProbe> {
        if !self.oldest_stale {
            return None;
        }
        let seg = self.sealed.values().next().unwrap_or(&self.active);
        Some(OldestProbe {
            first_seq: self.first_seq(),
            base: seg.base,
            end: seg.end,
            len: seg.len,
            file: seg.file.clone(),
        })
    }

    /// Stores what a probe found, unless the oldest segment changed again meanwhile.
    pub(crate) fn settle_oldest(&mut self, probe: &OldestProbe, found: Option<i64>) {
        if !self.oldest_stale || self.first_seq() != probe.first_seq {
            return;
        }
        if let Some(seg) = self.sealed.get_mut(&probe.base) {
            seg.first_timestamp_ms = found;
        }
        // A wholly damaged oldest segment: the next known first timestamp is the best bound.
        self.oldest_ts = found.or_else(|| {
            self.sealed
                .values()
                .chain([&self.active])
                .find_map(|s| s.first_timestamp_ms)
        });
        self.oldest_stale = false;
    }

    /// Probes the oldest segment on the calling thread (at start-up and in the TTL sweep, both
    /// off the async runtime). A failed read leaves the probe to the next sync round.
    pub(crate) fn refresh_oldest(&mut self) {
        let Some(probe) = self.oldest_probe() else {
            return;
        };
        match probe.read() {
            Ok(found) => self.settle_oldest(&probe, found),
            Err(e) => {
                let path = self.dir.join(segment_file_name(probe.base));
                tracing::warn!(stream = %self.name, path = %path.display(), error = %e, "could not read the oldest record's timestamp");
            }
        }
    }
}
