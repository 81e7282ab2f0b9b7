//! The JSON form of a record, shared by the local API and the HTTP sink:
//! `{"sequence_number", "timestamp_ms", "metadata", "payload_base64", "payload"}`, where
//! `payload` (text) is present only when the payload is valid UTF-8.

use base64::Engine;
use ferry_stream_manager::Record;
use serde_json::{json, Value};

pub const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn record_json(r: &Record) -> Value {
    let mut v = json!({
        "sequence_number": r.sequence_number,
        "timestamp_ms": r.timestamp_ms,
        "metadata": r.metadata,
        "payload_base64": BASE64.encode(&r.payload),
    });
    if let Ok(text) = std::str::from_utf8(&r.payload) {
        v["payload"] = json!(text);
    }
    v
}
