//! What the service answers, as typed serde structs: the HTTP API serialises them and the CLI
//! (and any other client) deserialises the same types, so the JSON shape is written once.

use std::collections::BTreeMap;

use base64::Engine;
use ferry_connectors::json::BASE64;
use ferry_stream_manager::export::ExportStatus;
use ferry_stream_manager::{
    ExportDefinition, Persistence, Record, StrategyOnFull, StreamDefinition, StreamDescription,
};
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
    /// Why the stream refuses writes until Ferry restarts, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_failed: Option<String>,
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

/// An update of a stream's definition: only the fields it names change (`PUT` and `PATCH`
/// alike). `"time_to_live_ms": null` removes the time to live; `"exports": []` removes every
/// export. A stream cannot be renamed and its persistence cannot change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(
        default,
        deserialize_with = "ferry_stream_manager::units::bytes_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size_bytes: Option<u64>,
    #[serde(
        default,
        deserialize_with = "ferry_stream_manager::units::bytes_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_size_bytes: Option<u64>,
    #[serde(
        default,
        deserialize_with = "present_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_to_live_ms: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_on_full: Option<StrategyOnFull>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_on_write: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<Vec<ExportDefinition>>,
}

/// A duration that is present (`null` included) becomes `Some`, so `null` can mean "remove".
fn present_millis<'de, D>(d: D) -> Result<Option<Option<u64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    ferry_stream_manager::units::millis_opt(d).map(Some)
}

impl From<StreamDefinition> for StreamPatch {
    /// A patch naming every field: the whole definition is replaced (the Greengrass protocol's
    /// update).
    fn from(def: StreamDefinition) -> Self {
        StreamPatch {
            name: Some(def.name),
            persistence: Some(def.persistence),
            max_size_bytes: Some(def.max_size_bytes),
            segment_size_bytes: Some(def.segment_size_bytes),
            time_to_live_ms: Some(def.time_to_live_ms),
            strategy_on_full: Some(def.strategy_on_full),
            flush_on_write: Some(def.flush_on_write),
            exports: Some(def.exports),
        }
    }
}

impl StreamPatch {
    /// `def` with the named fields replaced.
    pub fn apply(self, mut def: StreamDefinition) -> StreamDefinition {
        if let Some(v) = self.persistence {
            def.persistence = v;
        }
        if let Some(v) = self.max_size_bytes {
            def.max_size_bytes = v;
        }
        if let Some(v) = self.segment_size_bytes {
            def.segment_size_bytes = v;
        }
        if let Some(v) = self.time_to_live_ms {
            def.time_to_live_ms = v;
        }
        if let Some(v) = self.strategy_on_full {
            def.strategy_on_full = v;
        }
        if let Some(v) = self.flush_on_write {
            def.flush_on_write = v;
        }
        if let Some(v) = self.exports {
            def.exports = v;
        }
        def
    }
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
            // Header values and AWS secret keys never leave Ferry through an answer.
            definition: ferry_stream_manager::definition::redact_secrets(d.definition.clone()),
            status: StreamStatusView {
                first_sequence_number: d.first_sequence_number,
                last_sequence_number: d.last_sequence_number,
                next_sequence_number: d.next_sequence_number,
                records: d.records,
                total_bytes: d.total_bytes,
                oldest_record_timestamp_ms: d.oldest_record_timestamp_ms,
                segments: d.segments,
                storage_failed: d.storage_failed.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_the_fields_it_names() {
        let mut def = StreamDefinition::new("s");
        def.segment_size_bytes = 4096;
        def.time_to_live_ms = Some(60_000);
        def.exports = vec![serde_json::from_value(serde_json::json!({
            "identifier": "e", "kind": "http", "settings": {"url": "http://127.0.0.1:9/"}
        }))
        .unwrap()];
        let patch: StreamPatch =
            serde_json::from_str(r#"{"name": "s", "max_size_bytes": 65536}"#).unwrap();
        let after = patch.apply(def.clone());
        assert_eq!(after.max_size_bytes, 65536);
        assert_eq!(after.segment_size_bytes, 4096, "not named, not changed");
        assert_eq!(after.exports, def.exports, "not named, not removed");
        assert_eq!(after.time_to_live_ms, Some(60_000));
    }

    #[test]
    fn null_removes_the_time_to_live_and_an_empty_list_the_exports() {
        let mut def = StreamDefinition::new("s");
        def.time_to_live_ms = Some(60_000);
        let patch: StreamPatch =
            serde_json::from_str(r#"{"time_to_live_ms": null, "exports": []}"#).unwrap();
        let after = patch.apply(def);
        assert_eq!(after.time_to_live_ms, None);
        assert!(after.exports.is_empty());
    }

    #[test]
    fn an_unknown_field_in_a_patch_is_refused() {
        let err = serde_json::from_str::<StreamPatch>(r#"{"max_size": 5}"#).unwrap_err();
        assert!(err.to_string().contains("max_size"), "{err}");
    }
}
