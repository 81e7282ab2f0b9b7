//! Typed request messages of the Greengrass Stream Manager protocol, decoded from the CBOR map
//! of a frame (see `cbor.rs`), and the operation codes and status codes.
//!
//! ```text
//! op  request                    answer op   request keys (camelCase, CBOR map)
//!  1  Connect                     6          requestId, protocolVersion, otherSupportedProtocolVersions, sdkVersion, authToken
//!  2  CreateMessageStream         7          requestId, definition
//!  3  DeleteMessageStream         8          requestId, name
//!  4  AppendMessage               9          requestId, name, payload (byte string)
//!  5  ReadMessages               10          requestId, streamName, readMessagesOptions
//! 11  ListStreams                12          requestId
//! 13  DescribeMessageStream      14          requestId, name
//! 15  UpdateMessageStream        16          requestId, definition (protocol 1.1.0)
//!  -  anything else              17          UnknownOperationError, status 18
//! ```
//! A key that is missing or `null` is "not provided"; unknown keys are ignored. Every request
//! must carry a text `requestId`: without one it cannot be answered and the connection closes.

use bytes::Bytes;
use ferry_stream_manager::{Persistence, StrategyOnFull};

use super::cbor::{self, Val};
use super::export_messages::{self, ExportConfigs};

pub mod op {
    pub const CONNECT: u8 = 1;
    pub const CREATE: u8 = 2;
    pub const DELETE: u8 = 3;
    pub const APPEND: u8 = 4;
    pub const READ: u8 = 5;
    pub const CONNECT_RESPONSE: u8 = 6;
    pub const LIST: u8 = 11;
    pub const DESCRIBE: u8 = 13;
    pub const UPDATE: u8 = 15;
    pub const UNKNOWN_OPERATION_ERROR: u8 = 17;

    /// The answer op paired with a request op the server implements.
    pub fn response_to(request: u8) -> Option<u8> {
        match request {
            CREATE | DELETE | APPEND | READ => Some(request + 5),
            LIST | DESCRIBE | UPDATE => Some(request + 1),
            _ => None,
        }
    }
}

/// The protocol's `ResponseStatusCode`. Only these values may be sent: the Python SDK's reader
/// dies on any other integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Success = 0,
    UnknownFailure = 1,
    Unauthorized = 2,
    InvalidRequest = 3,
    RequestPayloadTooLarge = 4,
    ResourceNotFound = 5,
    ResponsePayloadTooLarge = 7,
    UnsupportedConnectVersion = 8,
    UnexpectedOperation = 9,
    UnsupportedProtocolVersion = 10,
    InvalidProtocolVersion = 11,
    NotEnoughMessages = 13,
    MessageStoreReadError = 14,
    UpdateFailed = 16,
    UpdateNotAllowed = 17,
    UnknownOperation = 18,
}

/// The handshake's first frame. Its Debug output leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub request_id: String,
    pub protocol_version: String,
    pub other_supported_protocol_versions: Vec<String>,
    pub sdk_version: Option<String>,
    /// `""` (what the Java SDK sends without a token) is "not provided".
    pub auth_token: Option<String>,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("request_id", &self.request_id)
            .field("protocol_version", &self.protocol_version)
            .field("other", &self.other_supported_protocol_versions)
            .field("sdk_version", &self.sdk_version)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A `MessageStreamDefinition` as received; ranges are checked when it becomes a Ferry
/// definition (`model.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageStreamDefinition {
    pub name: String,
    pub max_size: Option<u64>,
    pub stream_segment_size: Option<u64>,
    pub time_to_live_millis: Option<u64>,
    pub strategy_on_full: StrategyOnFull,
    pub persistence: Option<Persistence>,
    pub flush_on_write: Option<bool>,
    /// `exportDefinition`: absent is no exports (an update carries the whole desired set).
    pub exports: ExportConfigs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadMessagesOptions {
    pub desired_start_sequence_number: Option<u64>,
    pub min_message_count: Option<u64>,
    pub max_message_count: Option<u64>,
    pub read_timeout_millis: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Create(MessageStreamDefinition),
    Update(MessageStreamDefinition),
    Delete {
        name: String,
    },
    Append {
        name: String,
        payload: Bytes,
    },
    Read {
        stream_name: String,
        options: ReadMessagesOptions,
    },
    List,
    Describe {
        name: String,
    },
}

/// What a request frame turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Request {
        request_id: String,
        request: Request,
    },
    /// Decodable, with a request id, but not a valid request: answered `InvalidRequest` on the
    /// paired answer op.
    Invalid {
        request_id: String,
        response_op: u8,
        message: String,
    },
    /// An op this server does not implement: answered with op 17, status 18.
    UnknownOp { request_id: String, op: u8 },
    /// No answer is possible (undecodable CBOR, no request id): the connection closes.
    Unanswerable(String),
}

/// Decodes the payload of a request frame.
pub fn decode_request(op_code: u8, payload: &[u8]) -> Decoded {
    let map = match cbor::decode(payload) {
        Ok(v @ Val::Map(_)) => v,
        Ok(_) => return Decoded::Unanswerable("the payload is not a CBOR map".into()),
        Err(e) => return Decoded::Unanswerable(e.to_string()),
    };
    let f = Fields(&map);
    let request_id = match f.text("requestId") {
        Ok(Some(id)) => id,
        _ => return Decoded::Unanswerable("the request has no text requestId".into()),
    };
    let Some(response_op) = op::response_to(op_code) else {
        return Decoded::UnknownOp {
            request_id,
            op: op_code,
        };
    };
    match request(op_code, &f) {
        Ok(request) => Decoded::Request {
            request_id,
            request,
        },
        Err(message) => Decoded::Invalid {
            request_id,
            response_op,
            message,
        },
    }
}

fn request(op_code: u8, f: &Fields<'_, '_>) -> Result<Request, String> {
    Ok(match op_code {
        op::CREATE => Request::Create(definition(&f.required_map("definition")?)?),
        op::UPDATE => Request::Update(definition(&f.required_map("definition")?)?),
        op::DELETE => Request::Delete {
            name: f.required_text("name")?,
        },
        op::DESCRIBE => Request::Describe {
            name: f.required_text("name")?,
        },
        op::LIST => Request::List,
        op::APPEND => Request::Append {
            name: f.required_text("name")?,
            payload: match f.0.get("payload") {
                Some(Val::Bytes(b)) => Bytes::copy_from_slice(b),
                Some(_) => return Err("payload must be a byte string".into()),
                None => return Err("payload is required".into()),
            },
        },
        op::READ => {
            let options = match f.map("readMessagesOptions")? {
                Some(o) => read_options(&o)?,
                None => ReadMessagesOptions::default(),
            };
            Request::Read {
                stream_name: f.required_text("streamName")?,
                options,
            }
        }
        _ => return Err(format!("operation {op_code} is not a request")),
    })
}

fn definition(f: &Fields<'_, '_>) -> Result<MessageStreamDefinition, String> {
    let strategy_on_full = match f.uint("strategyOnFull")? {
        Some(0) => StrategyOnFull::RejectNewData,
        Some(1) => StrategyOnFull::OverwriteOldestData,
        Some(n) => return Err(format!("definition.strategyOnFull {n} is not 0 or 1")),
        None => return Err("definition.strategyOnFull is required".into()),
    };
    let persistence = match f.uint("persistence")? {
        None => None,
        Some(0) => Some(Persistence::File),
        Some(1) => Some(Persistence::Memory),
        Some(n) => return Err(format!("definition.persistence {n} is not 0 or 1")),
    };
    let exports = match f.map("exportDefinition")? {
        Some(e) => export_messages::decode(&e).map_err(|e| format!("definition.{e}"))?,
        None => ExportConfigs::default(),
    };
    Ok(MessageStreamDefinition {
        name: f
            .required_text("name")
            .map_err(|e| format!("definition.{e}"))?,
        max_size: f.uint("maxSize")?,
        stream_segment_size: f.uint("streamSegmentSize")?,
        time_to_live_millis: f.uint("timeToLiveMillis")?,
        strategy_on_full,
        persistence,
        flush_on_write: f.bool("flushOnWrite")?,
        exports,
    })
}

fn read_options(f: &Fields<'_, '_>) -> Result<ReadMessagesOptions, String> {
    Ok(ReadMessagesOptions {
        desired_start_sequence_number: f.uint("desiredStartSequenceNumber")?,
        min_message_count: f.uint("minMessageCount")?,
        max_message_count: f.uint("maxMessageCount")?,
        read_timeout_millis: f.uint("readTimeoutMillis")?,
    })
}

/// Decodes the ConnectRequest of the handshake; `Err` when it cannot be answered meaningfully.
pub fn decode_connect(payload: &[u8]) -> Result<ConnectRequest, String> {
    let map = cbor::decode(payload).map_err(|e| e.to_string())?;
    if !matches!(map, Val::Map(_)) {
        return Err("the payload is not a CBOR map".into());
    }
    let f = Fields(&map);
    let others = match f.0.get("otherSupportedProtocolVersions") {
        Some(Val::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Val::Text(t) => Some(t.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(ConnectRequest {
        request_id: f.text("requestId")?.unwrap_or_default(),
        protocol_version: f.text("protocolVersion")?.unwrap_or_default(),
        other_supported_protocol_versions: others,
        sdk_version: f.text("sdkVersion")?,
        auth_token: f.text("authToken")?.filter(|t| !t.is_empty()),
    })
}

/// Typed access to a map's fields; errors name the key.
pub(super) struct Fields<'v, 'a>(pub(super) &'v Val<'a>);

impl<'v, 'a> Fields<'v, 'a> {
    pub(super) fn text(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Val::Text(t)) => Ok(Some(t.to_string())),
            Some(_) => Err(format!("{key} must be text")),
        }
    }

    pub(super) fn required_text(&self, key: &str) -> Result<String, String> {
        self.text(key)?.ok_or_else(|| format!("{key} is required"))
    }

    /// A non-negative integer (an exactly integral float is accepted: JS sends numbers).
    pub(super) fn uint(&self, key: &str) -> Result<Option<u64>, String> {
        let bad = || format!("{key} must be an integer from 0 to 2^63-1");
        match self.0.get(key) {
            None => Ok(None),
            Some(Val::Int(n)) => u64::try_from(*n)
                .ok()
                .filter(|n| *n <= i64::MAX as u64)
                .map(Some)
                .ok_or_else(bad),
            Some(Val::Float(x)) if x.fract() == 0.0 && *x >= 0.0 && *x < 9.2e18 => {
                Ok(Some(*x as u64))
            }
            Some(_) => Err(bad()),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Val::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{key} must be a boolean")),
        }
    }

    pub(super) fn map(&self, key: &str) -> Result<Option<Fields<'v, 'a>>, String> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v @ Val::Map(_)) => Ok(Some(Fields(v))),
            Some(_) => Err(format!("{key} must be a map")),
        }
    }

    pub(super) fn required_map(&self, key: &str) -> Result<Fields<'v, 'a>, String> {
        self.map(key)?.ok_or_else(|| format!("{key} is required"))
    }
}
