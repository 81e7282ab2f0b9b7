//! JSON forms of a record.
//!
//! The local API's: `{"sequence_number", "timestamp_ms", "metadata", "payload_base64",
//! "payload"}`, where `payload` (text) is present only when the payload is valid UTF-8.
//! The export form (HTTP sink) carries the payload once: `payload` when it is valid UTF-8,
//! `payload_base64` otherwise, so a text payload is not sent twice.

use std::collections::BTreeMap;

use base64::Engine;
use ferry_stream_manager::Record;
use serde::Serialize;
use serde_json::Value;

pub const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Serialised straight from the record's fields: no intermediate `Value` per record, which
/// matters when the exporter writes hundreds of thousands of them a second.
#[derive(Serialize)]
struct RecordOut<'a> {
    sequence_number: u64,
    timestamp_ms: i64,
    metadata: &'a BTreeMap<String, String>,
    payload_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
}

fn out(r: &Record) -> RecordOut<'_> {
    RecordOut {
        sequence_number: r.sequence_number,
        timestamp_ms: r.timestamp_ms,
        metadata: &r.metadata,
        payload_base64: BASE64.encode(&r.payload),
        payload: std::str::from_utf8(&r.payload).ok(),
    }
}

#[derive(Serialize)]
struct ExportOut<'a> {
    sequence_number: u64,
    timestamp_ms: i64,
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// Appends the record's export JSON (one line, no newline) to `buf`.
pub fn write_export_json(buf: &mut Vec<u8>, r: &Record) {
    let text = std::str::from_utf8(&r.payload).ok();
    let out = ExportOut {
        sequence_number: r.sequence_number,
        timestamp_ms: r.timestamp_ms,
        metadata: &r.metadata,
        payload: text,
        payload_base64: text.is_none().then(|| BASE64.encode(&r.payload)),
    };
    // Serialising plain fields into a Vec cannot fail.
    let _ = serde_json::to_writer(buf, &out);
}

pub fn record_json(r: &Record) -> Value {
    serde_json::to_value(out(r)).unwrap_or(Value::Null)
}
