//! Reading records out of segments: seeking through the sparse index, walking frames, and
//! skipping (and counting, once) damaged ranges. Used by the log under the stream's lock.

use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::SparseIndex;
use crate::log::DamageStats;
use crate::record::Record;
use crate::segment::{
    index_file_name, segment_file_name, FrameReader, Segment, Step, SEGMENT_HEADER_LEN,
};
use crate::storage::{FileSystem, LogFile};

pub(crate) fn report_damage(
    name: &str,
    dir: &Path,
    seg: &mut Segment,
    pos: u64,
    until: u64,
    reason: &str,
    damage: &mut DamageStats,
) {
    if seg.reported_damage.insert(pos) {
        damage.damaged_ranges += 1;
        damage.damaged_bytes += until.saturating_sub(pos);
        tracing::warn!(
            stream = name,
            segment = %dir.join(segment_file_name(seg.base)).display(),
            offset = pos,
            skipped_bytes = until.saturating_sub(pos),
            reason,
            "damaged range in segment skipped"
        );
    }
}

/// Loads a sealed segment's index file, or rebuilds it by scanning when it is missing or empty.
fn ensure_index(
    name: &str,
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &mut Segment,
    damage: &mut DamageStats,
) -> Result<()> {
    if seg.index.is_some() {
        return Ok(());
    }
    let idx_path = dir.join(index_file_name(seg.base));
    let loaded = fs
        .open(&idx_path, false)
        .and_then(|f| {
            let mut buf = vec![0u8; f.size()? as usize];
            let n = f.read_full_at(&mut buf, 0)?;
            buf.truncate(n);
            Ok(SparseIndex::decode(&buf, seg.len))
        })
        .unwrap_or_default();
    if loaded.len() > 0 || seg.is_empty() {
        seg.index = Some(loaded);
        return Ok(());
    }
    rebuild_index(name, fs, dir, seg, damage)
}

fn rebuild_index(
    name: &str,
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &mut Segment,
    damage: &mut DamageStats,
) -> Result<()> {
    let path = dir.join(segment_file_name(seg.base));
    let io = |e| Error::io(&path, e);
    let mut index = SparseIndex::default();
    let file = seg.file.clone();
    let mut reader = FrameReader::new(&*file, SEGMENT_HEADER_LEN, seg.len);
    let mut next_min = seg.base;
    loop {
        match reader.next_step().map_err(io)? {
            Step::Frame { pos, record, .. }
                if (next_min..seg.end).contains(&record.sequence_number) =>
            {
                index.observe((record.sequence_number - seg.base) as u32, pos);
                next_min = record.sequence_number + 1;
            }
            Step::End => break,
            Step::Frame { pos, .. } | Step::Damaged { pos, .. } => {
                match reader.resync(next_min, seg.end).map_err(io)? {
                    Some(next) => {
                        report_damage(name, dir, seg, pos, next, "checksum or framing", damage)
                    }
                    None => {
                        report_damage(name, dir, seg, pos, seg.len, "checksum or framing", damage);
                        break;
                    }
                }
            }
        }
    }
    // The rewritten index is a hint: failing to store it only costs another scan later.
    let idx_path = dir.join(index_file_name(seg.base));
    let bytes = index.encode();
    if let Err(e) = fs.open(&idx_path, true).and_then(|f| {
        f.set_len(0)?;
        f.write_all_at(&bytes, 0)
    }) {
        tracing::debug!(stream = name, error = %e, "could not rewrite segment index");
    }
    seg.index = Some(index);
    Ok(())
}

/// The timestamp of a segment's last readable record.
pub(crate) fn scan_tail(
    name: &str,
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &mut Segment,
    damage: &mut DamageStats,
) -> Result<Option<i64>> {
    ensure_index(name, fs, dir, seg, damage)?;
    let start = seg
        .index
        .as_ref()
        .and_then(SparseIndex::last)
        .map_or(SEGMENT_HEADER_LEN, |e| u64::from(e.position));
    let mut last = None;
    let path = dir.join(segment_file_name(seg.base));
    let mut reader = FrameReader::new(&*seg.file, start, seg.len);
    loop {
        match reader.next_step().map_err(|e| Error::io(&path, e))? {
            Step::Frame { record, .. } => last = Some(record.timestamp_ms),
            Step::End => return Ok(last),
            Step::Damaged { .. } => match reader
                .resync(seg.base, seg.end)
                .map_err(|e| Error::io(&path, e))?
            {
                Some(_) => {}
                None => return Ok(last),
            },
        }
    }
}

/// The timestamp of a segment's first readable record (one whose sequence number fits the
/// segment), found by walking frames from the start. Damage is skipped, not reported: the
/// reader that reaches it reports it.
pub(crate) fn first_timestamp(
    file: &dyn LogFile,
    base: u64,
    end: u64,
    len: u64,
) -> io::Result<Option<i64>> {
    let mut reader = FrameReader::new(file, SEGMENT_HEADER_LEN, len);
    loop {
        match reader.next_step()? {
            Step::Frame { record, .. } if (base..end).contains(&record.sequence_number) => {
                return Ok(Some(record.timestamp_ms))
            }
            // Out of place but well formed: the reader has already moved past it.
            Step::Frame { .. } => {}
            Step::End => return Ok(None),
            Step::Damaged { .. } => {
                if reader.resync(base, end)?.is_none() {
                    return Ok(None);
                }
            }
        }
    }
}

/// Appends to `out` the records of `seg` in `[from, end)`, within the count and byte limits.
/// Returns `true` when a limit or `end` was reached, `false` when the segment ran out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_segment(
    name: &str,
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &mut Segment,
    from: u64,
    end: u64,
    max_count: usize,
    max_bytes: u64,
    out: &mut Vec<Record>,
    bytes: &mut u64,
    damage: &mut DamageStats,
) -> Result<bool> {
    let path = dir.join(segment_file_name(seg.base));
    let io = |e| Error::io(&path, e);
    for attempt in 0..2 {
        ensure_index(name, fs, dir, seg, damage)?;
        let entry = seg
            .index
            .as_ref()
            .and_then(|i| i.floor((from - seg.base) as u32));
        let (start, expect) = entry.map_or((SEGMENT_HEADER_LEN, None), |e| {
            (
                u64::from(e.position),
                Some(seg.base + u64::from(e.relative_seq)),
            )
        });
        let file = seg.file.clone();
        let mut reader = FrameReader::new(&*file, start, seg.len);
        let mut first = true;
        let mut next_min = seg.base;
        loop {
            match reader.next_step().map_err(io)? {
                Step::Frame { record, len, pos } => {
                    let seq = record.sequence_number;
                    if first && expect.is_some_and(|x| x != seq) && attempt == 0 {
                        tracing::debug!(
                            stream = name,
                            "segment index entry does not match; rebuilding"
                        );
                        rebuild_index(name, fs, dir, seg, damage)?;
                        break;
                    }
                    first = false;
                    if seq < next_min || seq >= seg.end {
                        // A frame that is valid but out of place is damage too.
                        match reader.resync(next_min, seg.end).map_err(io)? {
                            Some(n) => report_damage(
                                name,
                                dir,
                                seg,
                                pos,
                                n,
                                "sequence out of order",
                                damage,
                            ),
                            None => return Ok(false),
                        }
                        continue;
                    }
                    next_min = seq + 1;
                    if seq >= end {
                        return Ok(true);
                    }
                    if seq < from {
                        continue;
                    }
                    if max_bytes > 0 && !out.is_empty() && *bytes + len > max_bytes {
                        return Ok(true);
                    }
                    *bytes += len;
                    out.push(record);
                    if out.len() >= max_count {
                        return Ok(true);
                    }
                }
                Step::End => return Ok(false),
                Step::Damaged { pos, reason } => {
                    match reader.resync(next_min, seg.end).map_err(io)? {
                        Some(n) => report_damage(name, dir, seg, pos, n, reason, damage),
                        None => {
                            report_damage(name, dir, seg, pos, seg.len, reason, damage);
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }
    Ok(false)
}
