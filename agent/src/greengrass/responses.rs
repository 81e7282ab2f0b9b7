//! Answers of the Greengrass Stream Manager protocol, encoded as whole frames.
//!
//! ```text
//! every answer:   requestId (echoed byte for byte), status (int, always), errorMessage (on failure)
//!  7/8/16         nothing more
//!  9 Append       sequenceNumber
//! 10 Read         messages: [{streamName, sequenceNumber, ingestTime, payload (bytes)}]
//! 12 List         streams: [text]
//! 14 Describe     messageStreamInfo: {definition (with exportDefinition), storageStatus,
//!                 exportStatuses}
//! 17 UnknownOp    status 18
//!  6 Connect      protocolVersion, supportedProtocolVersions, serverVersion (after a 0x01 byte)
//! ```
//! Lists are always sent, even empty (a missing list becomes `None` in the Python SDK), and
//! `null` is never sent (the Python SDK's reader dies on it). A session negotiated at 1.0.0
//! only gets status codes 0–14: those clients' enum stops there, so higher codes become 1.

use std::sync::Arc;

use bytes::Bytes;

use super::cbor::Out;
use super::export_messages::ExportConfig;
use super::export_responses::export_definition;
use super::frame::{self, CONNECT_VERSION};
use super::handshake::ProtocolVersion;
use super::messages::{op, Status};

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub op: u8,
    pub request_id: String,
    pub status: Status,
    pub error_message: Option<String>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    SequenceNumber(u64),
    Messages(Vec<Message>),
    Streams(Vec<String>),
    Info(Box<MessageStreamInfo>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub stream_name: Arc<str>,
    pub sequence_number: u64,
    /// Epoch milliseconds at which the stream accepted it.
    pub ingest_time: i64,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageStreamInfo {
    pub definition: DefinitionOut,
    pub oldest_sequence_number: u64,
    /// `oldest - 1` for an empty stream (-1 for a new one).
    pub newest_sequence_number: i64,
    pub total_bytes: u64,
    pub export_statuses: Vec<ExportStatusOut>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionOut {
    pub name: String,
    pub max_size: u64,
    pub stream_segment_size: u64,
    pub time_to_live_millis: Option<u64>,
    pub strategy_on_full: u8,
    pub persistence: u8,
    pub flush_on_write: bool,
    /// The exports this protocol can express (`exportDefinition`, left out when none).
    pub exports: Vec<ExportConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportStatusOut {
    pub identifier: String,
    pub last_exported_sequence_number: i64,
    pub last_export_time: Option<i64>,
    pub error_message: Option<String>,
    pub exported_bytes_from_stream: u64,
    pub exported_messages_count: u64,
}

impl Response {
    pub fn ok(op: u8, request_id: String, body: Body) -> Response {
        Response {
            op,
            request_id,
            status: Status::Success,
            error_message: None,
            body,
        }
    }

    pub fn error(
        op: u8,
        request_id: String,
        status: Status,
        message: impl Into<String>,
    ) -> Response {
        Response {
            op,
            request_id,
            status,
            error_message: Some(message.into()),
            body: Body::Empty,
        }
    }

    pub fn unknown_operation(request_id: String, request_op: u8) -> Response {
        Response::error(
            op::UNKNOWN_OPERATION_ERROR,
            request_id,
            Status::UnknownOperation,
            format!("operation {request_op} is not supported by this server"),
        )
    }

    /// The whole frame for a session at `version`.
    pub fn encode(&self, version: ProtocolVersion) -> Vec<u8> {
        let status = clamp(self.status, version);
        let body_entries = usize::from(!matches!(self.body, Body::Empty));
        let error = self
            .error_message
            .as_deref()
            .filter(|_| status != Status::Success);
        let mut o = Out::default();
        o.map(2 + usize::from(error.is_some()) + body_entries);
        o.text("requestId").text(&self.request_id);
        o.text("status").uint(status as u64);
        if let Some(e) = error {
            o.text("errorMessage").text(e);
        }
        match &self.body {
            Body::Empty => {}
            Body::SequenceNumber(n) => {
                o.text("sequenceNumber").uint(*n);
            }
            Body::Messages(ms) => {
                o.text("messages").array(ms.len());
                for m in ms {
                    message(&mut o, m);
                }
            }
            Body::Streams(names) => {
                o.text("streams").array(names.len());
                for n in names {
                    o.text(n);
                }
            }
            Body::Info(info) => {
                o.text("messageStreamInfo");
                stream_info(&mut o, info);
            }
        }
        frame::encode(self.op, &o.0)
    }
}

/// An upper bound of the bytes a message adds to a ReadMessages answer.
pub fn message_encoded_len(stream_name: &str, payload_len: usize) -> usize {
    // Keys (57 bytes) plus the widest heads of each value.
    64 + 9 + stream_name.len() + 9 + 9 + 9 + payload_len
}

fn clamp(status: Status, version: ProtocolVersion) -> Status {
    match version {
        ProtocolVersion::V1_0_0 if status as u8 > 14 => Status::UnknownFailure,
        _ => status,
    }
}

fn message(o: &mut Out, m: &Message) {
    o.map(4);
    o.text("streamName").text(&m.stream_name);
    o.text("sequenceNumber").uint(m.sequence_number);
    o.text("ingestTime").int(m.ingest_time);
    o.text("payload").bytes(&m.payload);
}

fn stream_info(o: &mut Out, info: &MessageStreamInfo) {
    o.map(3);
    o.text("definition");
    definition(o, &info.definition);
    o.text("storageStatus").map(3);
    o.text("oldestSequenceNumber")
        .uint(info.oldest_sequence_number);
    o.text("newestSequenceNumber")
        .int(info.newest_sequence_number);
    o.text("totalBytes").uint(info.total_bytes);
    o.text("exportStatuses").array(info.export_statuses.len());
    for e in &info.export_statuses {
        let optional =
            usize::from(e.last_export_time.is_some()) + usize::from(e.error_message.is_some());
        o.map(4 + optional);
        o.text("exportConfigIdentifier").text(&e.identifier);
        o.text("lastExportedSequenceNumber")
            .int(e.last_exported_sequence_number);
        if let Some(t) = e.last_export_time {
            o.text("lastExportTime").int(t);
        }
        if let Some(m) = &e.error_message {
            o.text("errorMessage").text(m);
        }
        o.text("exportedBytesFromStream")
            .uint(e.exported_bytes_from_stream);
        o.text("exportedMessagesCount")
            .uint(e.exported_messages_count);
    }
}

fn definition(o: &mut Out, d: &DefinitionOut) {
    let exports = !d.exports.is_empty();
    o.map(6 + usize::from(d.time_to_live_millis.is_some()) + usize::from(exports));
    o.text("name").text(&d.name);
    o.text("maxSize").uint(d.max_size);
    o.text("streamSegmentSize").uint(d.stream_segment_size);
    if let Some(ttl) = d.time_to_live_millis {
        o.text("timeToLiveMillis").uint(ttl);
    }
    o.text("strategyOnFull").uint(u64::from(d.strategy_on_full));
    o.text("persistence").uint(u64::from(d.persistence));
    o.text("flushOnWrite").bool(d.flush_on_write);
    if exports {
        o.text("exportDefinition");
        export_definition(o, &d.exports);
    }
}

/// The handshake answer: the connect version byte, then a ConnectResponse frame. `version` is
/// the negotiated one (sent back even on failure, as the client's own, when there is none).
pub fn connect_response(
    request_id: &str,
    status: Status,
    error_message: Option<&str>,
    version: Option<ProtocolVersion>,
) -> Vec<u8> {
    let mut o = Out::default();
    o.map(5 + usize::from(error_message.is_some()) - usize::from(version.is_none()));
    o.text("requestId").text(request_id);
    o.text("status").uint(status as u64);
    if let Some(e) = error_message {
        o.text("errorMessage").text(e);
    }
    if let Some(v) = version {
        o.text("protocolVersion").text(v.as_str());
    }
    o.text("supportedProtocolVersions")
        .array(2)
        .text("1.1.0")
        .text("1.0.0");
    o.text("serverVersion")
        .text(concat!("ferry ", env!("CARGO_PKG_VERSION")));
    let mut out = vec![CONNECT_VERSION];
    frame::push_frame(&mut out, op::CONNECT_RESPONSE, &o.0);
    out
}
