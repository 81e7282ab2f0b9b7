//! Framing of the Greengrass Stream Manager protocol (pure, no I/O).
//!
//! ```text
//! connection start, client → server:  0x01 (connect version), then frames
//! connection start, server → client:  0x01, then the ConnectResponse frame
//! frame := length:i32 big-endian | op:u8 | payload: CBOR map (length - 1 bytes)
//! ```
//! `length` counts the op byte and the payload, not itself. The SDKs refuse to send more than
//! 2^30 bytes; a length below 1 or above 2^30 is a protocol violation. The server's own
//! ceiling (`greengrass.max_frame_bytes`) is checked before anything is allocated for the
//! payload. Every frame the server writes is built whole in one buffer, because the Python SDK
//! reads the 5 header bytes with `read(4)` / `read(1)` and breaks when they arrive split.

/// The only connect version byte the protocol defines, sent by both sides.
pub const CONNECT_VERSION: u8 = 1;
/// Length field plus op byte.
pub const HEADER_LEN: usize = 5;
/// The protocol's own ceiling on `length` (the SDKs enforce it when sending).
pub const PROTOCOL_MAX_LENGTH: u64 = 1 << 30;

/// A frame header as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub op: u8,
    /// Bytes of CBOR that follow the header.
    pub payload_len: usize,
}

/// What a header can say that the server will not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Outside what the protocol allows (`length < 1` or `> 2^30`): the stream of frames
    /// cannot be trusted any more, so the connection is closed.
    #[error("frame length {0} is outside the protocol's 1..=2^30")]
    Violation(i64),
    /// Allowed by the protocol but larger than this server accepts: the payload is skipped
    /// without being stored and the request is answered `RequestPayloadTooLarge` when its
    /// request id can be found.
    #[error(
        "frame of {payload_len} payload bytes is larger than the {max} bytes this server accepts"
    )]
    TooLarge {
        op: u8,
        payload_len: usize,
        max: usize,
    },
}

/// Parses a header. `max_payload` is the largest payload the server accepts.
pub fn parse_header(bytes: [u8; HEADER_LEN], max_payload: usize) -> Result<Header, FrameError> {
    let length = i64::from(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    if length < 1 || length as u64 > PROTOCOL_MAX_LENGTH {
        return Err(FrameError::Violation(length));
    }
    let op = bytes[4];
    let payload_len = (length - 1) as usize;
    if payload_len > max_payload {
        return Err(FrameError::TooLarge {
            op,
            payload_len,
            max: max_payload,
        });
    }
    Ok(Header { op, payload_len })
}

/// One whole frame, header and payload in one buffer (written with a single `write_all`).
pub fn encode(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    push_frame(&mut out, op, payload);
    out
}

/// Appends a frame to `out` (the handshake answer puts the connect version byte before it).
pub fn push_frame(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    // Responses are capped far below 2^31 by `max_frame_bytes`, so the length fits an i32.
    let length = (payload.len() + 1) as u32;
    out.extend_from_slice(&length.to_be_bytes());
    out.push(op);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: i32, op: u8) -> [u8; HEADER_LEN] {
        let l = length.to_be_bytes();
        [l[0], l[1], l[2], l[3], op]
    }

    #[test]
    fn the_captured_append_header_gives_op_4_and_33_payload_bytes() {
        // From the spec's capture: 00 00 00 22 04 …
        let h = parse_header([0, 0, 0, 0x22, 4], 1024).unwrap();
        assert_eq!(
            h,
            Header {
                op: 4,
                payload_len: 33
            }
        );
    }

    #[test]
    fn a_length_of_zero_or_below_is_a_protocol_violation() {
        assert_eq!(
            parse_header(header(0, 4), 1024),
            Err(FrameError::Violation(0))
        );
        assert_eq!(
            parse_header(header(-5, 4), 1024),
            Err(FrameError::Violation(-5))
        );
    }

    #[test]
    fn a_length_above_two_to_the_thirty_is_a_protocol_violation() {
        let len = (1 << 30) + 1;
        assert_eq!(
            parse_header(header(len, 4), usize::MAX),
            Err(FrameError::Violation(i64::from(len)))
        );
    }

    #[test]
    fn a_length_of_two_to_the_thirty_is_refused_by_size_before_any_allocation() {
        assert_eq!(
            parse_header(header(1 << 30, 4), 16 << 20),
            Err(FrameError::TooLarge {
                op: 4,
                payload_len: (1 << 30) - 1,
                max: 16 << 20
            })
        );
    }

    #[test]
    fn an_empty_payload_is_a_valid_frame() {
        assert_eq!(
            parse_header(header(1, 11), 0),
            Ok(Header {
                op: 11,
                payload_len: 0
            })
        );
    }

    #[test]
    fn an_encoded_frame_carries_its_length_op_and_payload_in_one_buffer() {
        assert_eq!(encode(9, &[0xa0]), vec![0, 0, 0, 2, 9, 0xa0]);
        let mut out = vec![CONNECT_VERSION];
        push_frame(&mut out, 6, &[]);
        assert_eq!(out, vec![1, 0, 0, 0, 1, 6]);
    }
}
