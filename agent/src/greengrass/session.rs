//! One connection's protocol state machine (pure: bytes and frames in, actions out; the I/O
//! loop in `server.rs` performs the actions).
//!
//! ```text
//! AwaitVersion --0x01--> AwaitConnect --Connect accepted--> Open(version) --...--> Closed
//!      |  other byte: answer 8, close   |  other op: answer 9; refused: answer 2/10/11; close
//! ```
//! In `Open`, each frame becomes a request to run (answered later by request id, possibly out
//! of order), an immediate error answer (invalid request: 3; unknown op: op 17 with 18; too
//! large: 4), or a close when no answer is possible (undecodable CBOR, no request id, a length
//! outside the protocol's range).

use std::sync::Arc;

use super::cbor;
use super::frame::CONNECT_VERSION;
use super::handshake::{negotiate, Auth, Negotiated, ProtocolVersion};
use super::messages::{self, op, Decoded, Request, Status};
use super::responses::{connect_response, Response};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these bytes (one whole answer) and go on.
    Send(Vec<u8>),
    /// Write these bytes, then close the connection.
    SendAndClose(Vec<u8>),
    /// Close without an answer (none is possible).
    Close(String),
    /// Run the request; answer it later with its paired op.
    Dispatch {
        request_id: String,
        response_op: u8,
        request: Request,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitVersion,
    AwaitConnect,
    Open(ProtocolVersion),
    Closed,
}

#[derive(Debug)]
pub struct Session {
    state: State,
    auth: Arc<Auth>,
}

impl Session {
    pub fn new(auth: Arc<Auth>) -> Session {
        Session {
            state: State::AwaitVersion,
            auth,
        }
    }

    /// The negotiated version once the handshake succeeded.
    pub fn version(&self) -> Option<ProtocolVersion> {
        match self.state {
            State::Open(v) => Some(v),
            _ => None,
        }
    }

    /// The first byte of the connection. `None`: go on and read the Connect frame.
    pub fn on_connect_version(&mut self, byte: u8) -> Option<Action> {
        if self.state != State::AwaitVersion {
            return Some(self.close("connect version byte out of place"));
        }
        if byte == CONNECT_VERSION {
            self.state = State::AwaitConnect;
            return None;
        }
        self.state = State::Closed;
        Some(Action::SendAndClose(connect_response(
            "",
            Status::UnsupportedConnectVersion,
            Some(&format!("connect version {byte} is not supported (only 1)")),
            None,
        )))
    }

    /// A whole frame read from the client.
    pub fn on_frame(&mut self, op_code: u8, payload: &[u8]) -> Action {
        match self.state {
            State::AwaitConnect => self.on_connect(op_code, payload),
            State::Open(v) => self.on_request(v, op_code, payload),
            State::AwaitVersion | State::Closed => self.close("frame out of place"),
        }
    }

    /// A frame whose header announced more than the server accepts; `prefix` is the start of
    /// its payload (the rest was skipped unread).
    pub fn on_oversized(&mut self, op_code: u8, prefix: &[u8], max: usize) -> Action {
        let State::Open(version) = self.state else {
            return self.close("an oversized frame before the handshake completed");
        };
        let Some(request_id) = cbor::find_request_id(prefix) else {
            return self.close("an oversized frame without a readable requestId");
        };
        let response = match op::response_to(op_code) {
            Some(response_op) => Response::error(
                response_op,
                request_id,
                Status::RequestPayloadTooLarge,
                format!("the request is larger than the {max} bytes this server accepts (greengrass.max_frame_bytes)"),
            ),
            None => Response::unknown_operation(request_id, op_code),
        };
        Action::Send(response.encode(version))
    }

    /// A header outside the protocol's range: the frame boundaries are lost.
    pub fn on_violation(&mut self, reason: String) -> Action {
        self.close(&reason)
    }

    fn on_connect(&mut self, op_code: u8, payload: &[u8]) -> Action {
        let request = messages::decode_connect(payload);
        let request_id = request
            .as_ref()
            .map(|r| r.request_id.clone())
            .unwrap_or_default();
        if op_code != op::CONNECT {
            self.state = State::Closed;
            return Action::SendAndClose(connect_response(
                &request_id,
                Status::UnexpectedOperation,
                Some(&format!(
                    "the first frame must be Connect (op 1), not op {op_code}"
                )),
                None,
            ));
        }
        let request = match request {
            Ok(r) => r,
            Err(e) => return self.close(&format!("undecodable Connect: {e}")),
        };
        match negotiate(&request, &self.auth) {
            Negotiated::Accepted(v) => {
                self.state = State::Open(v);
                Action::Send(connect_response(
                    &request_id,
                    Status::Success,
                    None,
                    Some(v),
                ))
            }
            Negotiated::Refused { status, message } => {
                self.state = State::Closed;
                Action::SendAndClose(connect_response(&request_id, status, Some(&message), None))
            }
        }
    }

    fn on_request(&mut self, version: ProtocolVersion, op_code: u8, payload: &[u8]) -> Action {
        match messages::decode_request(op_code, payload) {
            Decoded::Request {
                request_id,
                request,
            } => Action::Dispatch {
                request_id,
                // decode_request only yields a request for ops that have an answer op.
                response_op: op::response_to(op_code).unwrap_or(op::UNKNOWN_OPERATION_ERROR),
                request,
            },
            Decoded::Invalid {
                request_id,
                response_op,
                message,
            } => Action::Send(
                Response::error(response_op, request_id, Status::InvalidRequest, message)
                    .encode(version),
            ),
            Decoded::UnknownOp { request_id, op } => {
                Action::Send(Response::unknown_operation(request_id, op).encode(version))
            }
            Decoded::Unanswerable(reason) => self.close(&reason),
        }
    }

    fn close(&mut self, reason: &str) -> Action {
        self.state = State::Closed;
        Action::Close(reason.to_string())
    }
}
