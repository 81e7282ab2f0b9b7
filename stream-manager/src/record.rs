//! Records and their on-disk frame.
//!
//! ```text
//! frame := len:u32le crc:u32le body[len]          crc = CRC32C(body)
//! body  := seq:u64le timestamp_ms:i64le meta_count:u8 meta* payload
//! meta  := key_len:u16le key value_len:u16le value  (UTF-8)
//! ```
//! The sequence number inside the body lets recovery tell a real frame from bytes that merely
//! look like one, and lets a reader resynchronise after a damaged range. Decoding is pure: it
//! works on byte slices, so the framing is tested without any file.

use std::collections::BTreeMap;

use bytes::Bytes;

pub const FRAME_HEADER_LEN: usize = 8;
const BODY_FIXED_LEN: usize = 8 + 8 + 1;
/// Hard ceiling for one frame's body, whatever the stream's limits: a length field above this is
/// treated as corruption rather than as an allocation request.
pub const MAX_BODY_LEN: usize = 64 * 1024 * 1024;

/// Optional key/value pairs carried with a record, e.g. `topic` for MQTT messages.
pub type Metadata = BTreeMap<String, String>;

/// A record as given to `append`: the stream assigns its sequence number and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    pub payload: Bytes,
    pub metadata: Metadata,
}

impl NewRecord {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        NewRecord {
            payload: payload.into(),
            metadata: Metadata::new(),
        }
    }

    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Bytes this record occupies in a stream (its frame), which is what `max_size_bytes` counts.
    pub fn stored_len(&self) -> u64 {
        (FRAME_HEADER_LEN + body_len(&self.payload, &self.metadata)) as u64
    }

    /// Checks limits that do not depend on a stream: metadata must fit its length fields.
    pub(crate) fn check_encodable(&self) -> Result<(), String> {
        if self.metadata.len() > u8::MAX as usize {
            return Err(format!(
                "{} metadata entries (at most 255)",
                self.metadata.len()
            ));
        }
        for (k, v) in &self.metadata {
            if k.len() > u16::MAX as usize || v.len() > u16::MAX as usize {
                return Err(format!("metadata entry {k:?} is longer than 65535 bytes"));
            }
        }
        if body_len(&self.payload, &self.metadata) > MAX_BODY_LEN {
            return Err(format!("payload of {} bytes", self.payload.len()));
        }
        Ok(())
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: u64,
    /// Milliseconds since the Unix epoch at which the stream accepted the record.
    pub timestamp_ms: i64,
    pub metadata: Metadata,
    pub payload: Bytes,
}

impl Record {
    pub fn stored_len(&self) -> u64 {
        (FRAME_HEADER_LEN + body_len(&self.payload, &self.metadata)) as u64
    }
}

fn body_len(payload: &[u8], metadata: &Metadata) -> usize {
    BODY_FIXED_LEN
        + metadata
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
        + payload.len()
}

/// Appends the frame of one record to `out`. The caller has checked `check_encodable`.
pub fn encode_frame(out: &mut Vec<u8>, seq: u64, timestamp_ms: i64, rec: &NewRecord) {
    let body_len = body_len(&rec.payload, &rec.metadata);
    out.reserve(FRAME_HEADER_LEN + body_len);
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.push(rec.metadata.len() as u8);
    for (k, v) in &rec.metadata {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&rec.payload);
    let crc = crc32c::crc32c(&out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What sits at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid frame of `frame_len` bytes.
    Frame(Record, usize),
    /// The slice ends before the frame does; `needed` is the whole frame's length if known.
    Incomplete { needed: Option<usize> },
    /// Not a valid frame: bad length, checksum or body.
    Corrupt(&'static str),
}

pub fn decode_frame(buf: &[u8]) -> Decoded {
    decode_with(buf, |start, end| Bytes::copy_from_slice(&buf[start..end]))
}

/// Like [`decode_frame`] on `buf[at..]`, but the payload shares `buf`'s memory instead of being
/// copied: readers decode whole chunks of a segment without one allocation per record.
pub fn decode_frame_shared(buf: &Bytes, at: usize) -> Decoded {
    let tail = &buf[at.min(buf.len())..];
    decode_with(tail, |start, end| buf.slice(at + start..at + end))
}

/// Decodes the frame at the start of `buf`; `payload(start, end)` produces the payload bytes
/// for `buf[start..end]`.
fn decode_with(buf: &[u8], payload: impl FnOnce(usize, usize) -> Bytes) -> Decoded {
    if buf.len() < FRAME_HEADER_LEN {
        return Decoded::Incomplete { needed: None };
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&len) {
        return Decoded::Corrupt("frame length out of range");
    }
    let total = FRAME_HEADER_LEN + len;
    if buf.len() < total {
        return Decoded::Incomplete {
            needed: Some(total),
        };
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[FRAME_HEADER_LEN..total];
    if crc32c::crc32c(body) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    match decode_body(body) {
        Some((mut rec, payload_start)) => {
            rec.payload = payload(FRAME_HEADER_LEN + payload_start, total);
            Decoded::Frame(rec, total)
        }
        None => Decoded::Corrupt("malformed body"),
    }
}

/// The record without its payload, and where the payload starts in `body`.
fn decode_body(body: &[u8]) -> Option<(Record, usize)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let ts = i64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    let count = *body.get(16)?;
    let mut pos = BODY_FIXED_LEN;
    let mut metadata = Metadata::new();
    let string = |pos: &mut usize| -> Option<String> {
        let len = u16::from_le_bytes(body.get(*pos..*pos + 2)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(body.get(*pos + 2..*pos + 2 + len)?).ok()?;
        *pos += 2 + len;
        Some(s.to_owned())
    };
    for _ in 0..count {
        let k = string(&mut pos)?;
        let v = string(&mut pos)?;
        metadata.insert(k, v);
    }
    Some((
        Record {
            sequence_number: seq,
            timestamp_ms: ts,
            metadata,
            payload: Bytes::new(),
        },
        pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, rec: &NewRecord) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, seq, 1234, rec);
        out
    }

    #[test]
    fn a_frame_round_trips_with_metadata() {
        let rec = NewRecord::new(&b"hello"[..]).with_meta("topic", "a/b");
        let buf = frame(7, &rec);
        assert_eq!(buf.len() as u64, rec.stored_len());
        match decode_frame(&buf) {
            Decoded::Frame(r, n) => {
                assert_eq!(n, buf.len());
                assert_eq!(r.sequence_number, 7);
                assert_eq!(r.timestamp_ms, 1234);
                assert_eq!(r.payload, rec.payload);
                assert_eq!(r.metadata, rec.metadata);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let buf = frame(1, &NewRecord::new(vec![0xAB; 40]).with_meta("k", "v"));
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(
                    !matches!(decode_frame(&b), Decoded::Frame(..)),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_truncated_frame_is_incomplete_not_corrupt() {
        let buf = frame(1, &NewRecord::new(vec![1; 100]));
        for cut in 0..buf.len() {
            assert!(
                matches!(decode_frame(&buf[..cut]), Decoded::Incomplete { .. }),
                "cut {cut}"
            );
        }
    }
}
