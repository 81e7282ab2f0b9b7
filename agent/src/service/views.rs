//! What the service answers, as typed serde structs: the HTTP API serialises them and the CLI
//! (and any other client) deserialises the same types, so the JSON shape is written once.

use std::collections::BTreeMap;

use base64::Engine;
use ferry_connectors::json::BASE64;
use ferry_stream_manager::export::ExportStatus;
use ferry_stream_manager::{Record, StreamDefinition, StreamDescription};
use serde::{Deserialize, Serialize};

/// `GET /v1/streams`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

/// A stream's definition, storage status and exports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamView {
    pub name: String,
    pub definition: StreamDefinition,
    pub status: StreamStatusView,
    pub exports: Vec<ExportView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatusView {
    pub first_sequence_number: u64,
    pub last_sequence_number: Option<u64>,
    pub next_sequence_number: u64,
    pub records: u64,
    pub total_bytes: u64,
    pub oldest_record_timestamp_ms: Option<i64>,
    pub segments: usize,
    pub counters: CountersView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountersView {
    pub appended_records: u64,
    pub appended_bytes: u64,
    pub rejected_full_records: u64,
    pub dropped_by_size_records: u64,
    pub dropped_by_ttl_records: u64,
    pub sync_rounds: u64,
    pub damaged_ranges: u64,
    pub damaged_bytes: u64,
}

/// An export's status and how far it is behind its stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportView {
    #[serde(flatten)]
    pub status: ExportStatus,
    pub lag_records: u64,
    pub lag_bytes: u64,
}

/// The body of an error answer: `{"error": {"code", "message", "oldest_sequence_number"?}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorAnswer {
    pub error: ErrorView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorView {
    /// Stable and machine-readable (`stream_full`, `sequence_trimmed`, ...).
    pub code: String,
    pub message: String,
    /// With `sequence_trimmed`: where reading can start again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_sequence_number: Option<u64>,
}

/// One line of a follow answer: a record, or the error that ended it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FollowLine {
    Error(ErrorAnswer),
    Record(RecordView),
}

/// An append request: each record has `payload` (text) or `payload_base64`, and metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    pub records: Vec<RecordIn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The answer to an append: the sequence numbers the records got.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Appended {
    pub first_sequence_number: u64,
    pub count: u64,
}

/// The answer to a read. `next_sequence_number` is where the next read continues.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsRead {
    pub records: Vec<RecordView>,
    pub next_sequence_number: u64,
}

/// A record in JSON: `payload` (text) only when the payload is valid UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    pub sequence_number: u64,
    pub timestamp_ms: i64,
    pub metadata: BTreeMap<String, String>,
    pub payload_base64: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> Self {
        RecordView {
            sequence_number: r.sequence_number,
            timestamp_ms: r.timestamp_ms,
            metadata: r.metadata.clone(),
            payload_base64: BASE64.encode(&r.payload),
            payload: std::str::from_utf8(&r.payload).ok().map(str::to_owned),
        }
    }
}

/// Records stored but not yet exported, and their bytes, estimated from the stream's average
/// record size (exact per-record sizes would mean reading the backlog).
pub fn export_lag(d: &StreamDescription, e: &ExportStatus) -> (u64, u64) {
    let records = d
        .next_sequence_number
        .saturating_sub(e.checkpoint.max(d.first_sequence_number));
    let bytes = d
        .total_bytes
        .saturating_mul(records)
        .checked_div(d.records)
        .unwrap_or(0);
    (records, bytes)
}

impl ExportView {
    pub fn new(d: &StreamDescription, status: ExportStatus) -> Self {
        let (lag_records, lag_bytes) = export_lag(d, &status);
        ExportView {
            status,
            lag_records,
            lag_bytes,
        }
    }
}

impl StreamView {
    pub fn new(d: &StreamDescription, exports: Vec<ExportStatus>) -> Self {
        let c = &d.counters;
        StreamView {
            name: d.definition.name.clone(),
            definition: d.definition.clone(),
            status: StreamStatusView {
                first_sequence_number: d.first_sequence_number,
                last_sequence_number: d.last_sequence_number,
                next_sequence_number: d.next_sequence_number,
                records: d.records,
                total_bytes: d.total_bytes,
                oldest_record_timestamp_ms: d.oldest_record_timestamp_ms,
                segments: d.segments,
                counters: CountersView {
                    appended_records: c.appended_records,
                    appended_bytes: c.appended_bytes,
                    rejected_full_records: c.rejected_full_records,
                    dropped_by_size_records: c.dropped_by_size_records,
                    dropped_by_ttl_records: c.dropped_by_ttl_records,
                    sync_rounds: c.sync_rounds,
                    damaged_ranges: c.damage.damaged_ranges,
                    damaged_bytes: c.damage.damaged_bytes,
                },
            },
            exports: exports.into_iter().map(|e| ExportView::new(d, e)).collect(),
        }
    }
}
