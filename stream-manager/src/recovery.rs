//! Start-up recovery of a stream's newest segment, the only one a crash can leave torn: every
//! frame is checked (length, CRC32C, sequence order), damaged ranges are skipped by
//! resynchronising on the next valid frame (logged and counted once), a header lost in a crash
//! during a roll is rewritten, and whatever follows the last valid frame is cut off.

use std::path::Path;

use crate::error::Result;
use crate::index::SparseIndex;
use crate::log::{io_err, new_segment, DamageStats};
use crate::reader::report_damage;
use crate::segment::{
    segment_file_name, segment_header, FrameReader, Segment, Step, SEGMENT_HEADER_LEN,
    SEGMENT_MAGIC,
};
use crate::storage::FileSystem;

/// Scans the newest segment at start-up: rebuilds its index, skips damaged ranges and cuts a
/// torn tail.
pub(crate) fn recover_active(
    name: &str,
    fs: &dyn FileSystem,
    dir: &Path,
    base: u64,
    damage: &mut DamageStats,
) -> Result<(Segment, SparseIndex)> {
    let path = dir.join(segment_file_name(base));
    let file = fs.open(&path, false).map_err(io_err(&path))?;
    let mut len = file.size().map_err(io_err(&path))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    let n = file.read_full_at(&mut header, 0).map_err(io_err(&path))?;
    if n < header.len() || &header[..8] != SEGMENT_MAGIC || header[8..] != base.to_le_bytes() {
        // A segment created but never written (a crash during a roll), or a damaged header:
        // the header is rewritten; records after it are still recovered by their checksums.
        tracing::warn!(stream = name, path = %path.display(), "segment header missing or damaged; rewriting it");
        file.write_all_at(&segment_header(base), 0)
            .map_err(io_err(&path))?;
        len = len.max(SEGMENT_HEADER_LEN);
    }
    let mut seg = new_segment(base, base, len, file.clone(), None);
    let mut index = SparseIndex::default();
    let mut reader = FrameReader::new(&*file, SEGMENT_HEADER_LEN, len);
    let mut valid_end = SEGMENT_HEADER_LEN;
    loop {
        match reader.next_step().map_err(io_err(&path))? {
            Step::Frame { pos, record, len } if record.sequence_number >= seg.end => {
                index.observe((record.sequence_number - base) as u32, pos);
                seg.end = record.sequence_number + 1;
                seg.first_timestamp_ms.get_or_insert(record.timestamp_ms);
                seg.last_timestamp_ms = Some(record.timestamp_ms);
                valid_end = pos + len;
            }
            Step::End => break,
            Step::Frame { pos, .. } | Step::Damaged { pos, .. } => {
                match reader.resync(seg.end, u64::MAX).map_err(io_err(&path))? {
                    Some(next) => report_damage(
                        name,
                        dir,
                        &mut seg,
                        pos,
                        next,
                        "checksum or framing",
                        damage,
                    ),
                    None => break,
                }
            }
        }
    }
    if valid_end < len {
        tracing::warn!(stream = name, path = %path.display(), cut_bytes = len - valid_end, "torn tail truncated");
        damage.truncated_tail_bytes += len - valid_end;
        file.set_len(valid_end).map_err(io_err(&path))?;
    }
    seg.len = valid_end;
    Ok((seg, index))
}
