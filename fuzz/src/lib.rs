//! The pure protocol layers of `agent/src/greengrass`, compiled from the same files (the agent
//! is a binary crate), and [`drive`], which feeds arbitrary bytes through them the way the
//! server's reader does.
#![allow(dead_code)]

#[path = "../../agent/src/greengrass/cbor.rs"]
pub mod cbor;
#[path = "../../agent/src/greengrass/frame.rs"]
pub mod frame;
#[path = "../../agent/src/greengrass/handshake.rs"]
pub mod handshake;
#[path = "../../agent/src/greengrass/messages.rs"]
pub mod messages;
#[path = "../../agent/src/greengrass/responses.rs"]
pub mod responses;
#[path = "../../agent/src/greengrass/session.rs"]
pub mod session;

use std::sync::Arc;

use handshake::{Auth, ProtocolVersion};
use responses::{Body, Response};
use session::{Action, Session};

/// The server's frame limit in the fuzzer: small, so oversized frames are exercised.
const MAX_FRAME: usize = 4096;

/// One connection's worth of bytes: connect version, then frames, as the reader sees them.
pub fn drive(data: &[u8]) {
    // The raw payload also goes straight to the decoders, for every op.
    let _ = cbor::decode(data);
    let _ = cbor::find_request_id(data);
    let _ = messages::decode_connect(data);
    for op in 0..=18u8 {
        let _ = messages::decode_request(op, data);
    }
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let auth = if first & 0x80 != 0 {
        Auth::tokens(["token"])
    } else {
        Auth::off()
    };
    let mut s = Session::new(Arc::new(auth));
    // Bytes that do not start a session still open one half the time, to reach the frames.
    if let Some(a) = s.on_connect_version(first & 0x7f) {
        check(&a);
        return;
    }
    while rest.len() >= frame::HEADER_LEN {
        let header: [u8; frame::HEADER_LEN] = rest[..frame::HEADER_LEN].try_into().unwrap();
        rest = &rest[frame::HEADER_LEN..];
        let action = match frame::parse_header(header, MAX_FRAME) {
            Ok(h) => {
                if rest.len() < h.payload_len {
                    return;
                }
                let (payload, tail) = rest.split_at(h.payload_len);
                rest = tail;
                s.on_frame(h.op, payload)
            }
            Err(frame::FrameError::Violation(_)) => s.on_violation("violation".into()),
            Err(frame::FrameError::TooLarge { op, .. }) => {
                let prefix = &rest[..rest.len().min(64 * 1024)];
                let a = s.on_oversized(op, prefix, MAX_FRAME);
                rest = &[];
                a
            }
        };
        check(&action);
        match action {
            Action::Close(_) | Action::SendAndClose(_) => return,
            Action::Dispatch {
                request_id,
                response_op,
                ..
            } => {
                // Every answer the handler could give must encode.
                let r = Response::ok(response_op, request_id, Body::Streams(vec![]));
                let bytes = r.encode(s.version().unwrap_or(ProtocolVersion::V1_1_0));
                assert!(cbor::decode(&bytes[5..]).is_ok());
            }
            Action::Send(_) => {}
        }
    }
}

/// What the server writes is always a whole, decodable frame.
fn check(a: &Action) {
    let bytes = match a {
        Action::Send(b) | Action::SendAndClose(b) => b,
        _ => return,
    };
    let frame =
        if bytes.first() == Some(&frame::CONNECT_VERSION) && bytes.len() > 5 && bytes[5] == 6 {
            &bytes[1..]
        } else {
            &bytes[..]
        };
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(len + 4, frame.len(), "one whole frame");
    let v = cbor::decode(&frame[5..]).expect("answers decode");
    assert!(v.get("status").is_some(), "answers carry a status");
}
