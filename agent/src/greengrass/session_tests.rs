//! The connection state machine: handshake outcomes, dispatch, and what hostile frames lead to.

use std::sync::Arc;

use super::cbor::{self, Out, Val};
use super::handshake::{Auth, ProtocolVersion};
use super::messages::{op, Request};
use super::session::{Action, Session};

fn connect_payload(version: &str, token: Option<&str>) -> Vec<u8> {
    let mut o = Out::default();
    o.map(2 + usize::from(token.is_some()));
    o.text("requestId").text("c1");
    o.text("protocolVersion").text(version);
    if let Some(t) = token {
        o.text("authToken").text(t);
    }
    o.0
}

/// The status of a ConnectResponse (`0x01` + frame) or of an answer frame.
fn status(bytes: &[u8]) -> i128 {
    let frame = if bytes[0] == 1 && bytes.len() > 6 && bytes[5] == op::CONNECT_RESPONSE {
        &bytes[1..]
    } else {
        bytes
    };
    match cbor::decode(&frame[5..]).unwrap().get("status") {
        Some(Val::Int(s)) => *s,
        other => panic!("no status: {other:?}"),
    }
}

fn open_session(auth: Auth) -> Session {
    let mut s = Session::new(Arc::new(auth));
    assert_eq!(s.on_connect_version(1), None);
    match s.on_frame(op::CONNECT, &connect_payload("1.1.0", Some("good"))) {
        Action::Send(bytes) => {
            assert_eq!(bytes[0], 1, "the connect version byte comes first");
            assert_eq!(bytes[5], op::CONNECT_RESPONSE);
            assert_eq!(status(&bytes), 0);
        }
        other => panic!("handshake failed: {other:?}"),
    }
    s
}

#[test]
fn a_good_handshake_opens_the_session_at_the_clients_version() {
    let s = open_session(Auth::off());
    assert_eq!(s.version(), Some(ProtocolVersion::V1_1_0));
}

#[test]
fn a_wrong_connect_version_byte_is_answered_with_status_8_and_closed() {
    let mut s = Session::new(Arc::new(Auth::off()));
    match s.on_connect_version(2) {
        Some(Action::SendAndClose(bytes)) => assert_eq!(status(&bytes), 8),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.on_frame(op::LIST, &[]), Action::Close(_)));
}

#[test]
fn a_request_before_connect_is_answered_with_status_9_and_closed() {
    let mut s = Session::new(Arc::new(Auth::off()));
    s.on_connect_version(1);
    match s.on_frame(op::LIST, &connect_payload("1.1.0", None)) {
        Action::SendAndClose(bytes) => assert_eq!(status(&bytes), 9),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_token_is_answered_unauthorized_and_closed() {
    let mut s = Session::new(Arc::new(Auth::tokens(["good"])));
    s.on_connect_version(1);
    match s.on_frame(op::CONNECT, &connect_payload("1.1.0", Some("bad"))) {
        Action::SendAndClose(bytes) => assert_eq!(status(&bytes), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.version(), None);
}

#[test]
fn the_right_token_opens_the_session() {
    let s = open_session(Auth::tokens(["good"]));
    assert_eq!(s.version(), Some(ProtocolVersion::V1_1_0));
}

#[test]
fn an_undecodable_connect_closes_without_an_answer() {
    let mut s = Session::new(Arc::new(Auth::off()));
    s.on_connect_version(1);
    assert!(matches!(s.on_frame(op::CONNECT, &[0xa1]), Action::Close(_)));
}

#[test]
fn a_valid_request_is_dispatched_with_its_answer_op() {
    let mut s = open_session(Auth::off());
    let mut o = Out::default();
    o.map(1).text("requestId").text(" ");
    assert_eq!(
        s.on_frame(op::LIST, &o.0),
        Action::Dispatch {
            request_id: " ".into(),
            response_op: 12,
            request: Request::List
        },
        "the JS SDK's single-space id is kept as it is"
    );
}

#[test]
fn an_unknown_op_is_answered_with_op_17_and_the_session_stays_open() {
    let mut s = open_session(Auth::off());
    let mut o = Out::default();
    o.map(1).text("requestId").text("x");
    match s.on_frame(99, &o.0) {
        Action::Send(bytes) => {
            assert_eq!(bytes[4], op::UNKNOWN_OPERATION_ERROR);
            assert_eq!(status(&bytes), 18);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.on_frame(op::LIST, &o.0),
        Action::Dispatch { .. }
    ));
}

#[test]
fn a_second_connect_after_the_handshake_is_an_unknown_operation() {
    let mut s = open_session(Auth::off());
    match s.on_frame(op::CONNECT, &connect_payload("1.1.0", None)) {
        Action::Send(bytes) => assert_eq!(status(&bytes), 18),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_cbor_closes_the_connection() {
    let mut s = open_session(Auth::off());
    assert!(matches!(
        s.on_frame(op::APPEND, &[0xa3, 0x69]),
        Action::Close(_)
    ));
}

#[test]
fn an_oversized_request_with_a_readable_id_is_answered_payload_too_large() {
    let mut s = open_session(Auth::off());
    let mut o = Out::default();
    o.map(3)
        .text("requestId")
        .text("big")
        .text("name")
        .text("s");
    o.text("payload").bytes(&[0; 64]);
    match s.on_oversized(op::APPEND, &o.0[..30], 16) {
        Action::Send(bytes) => {
            assert_eq!(bytes[4], 9);
            assert_eq!(status(&bytes), 4);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.on_oversized(op::APPEND, &[0xa3], 16),
        Action::Close(_)
    ));
}

#[test]
fn an_oversized_frame_before_the_handshake_closes() {
    let mut s = Session::new(Arc::new(Auth::off()));
    s.on_connect_version(1);
    assert!(matches!(
        s.on_oversized(op::CONNECT, &[], 16),
        Action::Close(_)
    ));
}

#[test]
fn a_1_0_0_session_answers_unknown_operations_with_a_status_it_knows() {
    let mut s = Session::new(Arc::new(Auth::off()));
    s.on_connect_version(1);
    s.on_frame(op::CONNECT, &connect_payload("1.0.0", None));
    assert_eq!(s.version(), Some(ProtocolVersion::V1_0_0));
    let mut o = Out::default();
    o.map(1).text("requestId").text("x");
    match s.on_frame(99, &o.0) {
        Action::Send(bytes) => assert_eq!(status(&bytes), 1),
        other => panic!("{other:?}"),
    }
}
