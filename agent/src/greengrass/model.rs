//! Greengrass' data model ↔ Ferry's (pure).
//!
//! ```text
//! MessageStreamDefinition            StreamDefinition
//!   name                               name
//!   maxSize (1024..2^63-1)             max_size_bytes            default 256 MiB
//!   streamSegmentSize (1024..2^31-1)   segment_size_bytes        default 16 MiB (a quarter of a
//!                                                                 smaller stream when left at that)
//!   timeToLiveMillis (60000..)         time_to_live_ms           default none
//!   strategyOnFull 0 / 1               reject_new_data / overwrite_oldest_data
//!   persistence 0 File / 1 Memory      file / memory             default file
//!   flushOnWrite                       flush_on_write            default false
//!   exportDefinition                   exports (export_model.rs)
//! MessageStreamInfo.storageStatus      first / next sequence number, total_bytes
//! Message {streamName, sequenceNumber, ingestTime, payload}   Record (metadata is not sent)
//! ```
//! Export definitions map as export_model.rs says; describe shows the ones this protocol can
//! express (`DefinitionOut::exports`) and the status of all of them.

use std::sync::Arc;

use ferry_stream_manager::export::ExportStatus;
use ferry_stream_manager::{
    ExportDefinition, Persistence, Record, StrategyOnFull, StreamDefinition,
};

use super::export_model;
use super::messages::MessageStreamDefinition;
use super::responses::{DefinitionOut, ExportStatusOut, Message, MessageStreamInfo};
use crate::service::views::StreamView;
use ferry_stream_manager::definition::{DEFAULT_MAX_SIZE_BYTES, DEFAULT_SEGMENT_SIZE_BYTES};

const MIN_SIZE: u64 = 1024;
const MAX_SEGMENT_SIZE: u64 = i32::MAX as u64;
const MIN_TTL_MS: u64 = 60_000;
const MAX_TTL_MS: u64 = 9_223_372_036_854;

/// A Greengrass definition as Ferry's, with `exports` (made by `export_model::exports`).
/// `Err` is the message of an `InvalidRequest` answer.
pub fn to_ferry(
    def: &MessageStreamDefinition,
    exports: Vec<ExportDefinition>,
) -> Result<StreamDefinition, String> {
    let max_size = def.max_size.unwrap_or(DEFAULT_MAX_SIZE_BYTES);
    if max_size < MIN_SIZE {
        return Err(format!("maxSize {max_size} is below {MIN_SIZE}"));
    }
    let segment = def
        .stream_segment_size
        .unwrap_or(DEFAULT_SEGMENT_SIZE_BYTES);
    if !(MIN_SIZE..=MAX_SEGMENT_SIZE).contains(&segment) {
        return Err(format!(
            "streamSegmentSize {segment} is outside {MIN_SIZE}..={MAX_SEGMENT_SIZE}"
        ));
    }
    if let Some(ttl) = def.time_to_live_millis {
        if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&ttl) {
            return Err(format!(
                "timeToLiveMillis {ttl} is outside {MIN_TTL_MS}..={MAX_TTL_MS}"
            ));
        }
    }
    Ok(StreamDefinition {
        name: def.name.clone(),
        persistence: def.persistence.unwrap_or_default(),
        max_size_bytes: max_size,
        segment_size_bytes: segment,
        time_to_live_ms: def.time_to_live_millis,
        strategy_on_full: def.strategy_on_full,
        flush_on_write: def.flush_on_write.unwrap_or(false),
        exports,
    })
}

pub fn definition_out(d: &StreamDefinition) -> DefinitionOut {
    DefinitionOut {
        name: d.name.clone(),
        max_size: d.max_size_bytes,
        stream_segment_size: d.segment_size_bytes,
        time_to_live_millis: d.time_to_live_ms,
        strategy_on_full: match d.strategy_on_full {
            StrategyOnFull::RejectNewData => 0,
            StrategyOnFull::OverwriteOldestData => 1,
        },
        persistence: match d.persistence {
            Persistence::File => 0,
            Persistence::Memory => 1,
        },
        flush_on_write: d.flush_on_write,
        exports: d
            .exports
            .iter()
            .filter_map(export_model::config_of)
            .collect(),
    }
}

pub fn stream_info(v: &StreamView) -> MessageStreamInfo {
    MessageStreamInfo {
        definition: definition_out(&v.definition),
        oldest_sequence_number: v.status.first_sequence_number,
        newest_sequence_number: v.status.next_sequence_number as i64 - 1,
        total_bytes: v.status.total_bytes,
        export_statuses: v.exports.iter().map(|e| export_status(&e.status)).collect(),
    }
}

fn export_status(e: &ExportStatus) -> ExportStatusOut {
    ExportStatusOut {
        identifier: e.identifier.clone(),
        // Ferry's checkpoint is the next number to send.
        last_exported_sequence_number: e.checkpoint as i64 - 1,
        last_export_time: e.last_success_ms,
        error_message: e.last_error.clone(),
        exported_bytes_from_stream: e.bytes_sent,
        exported_messages_count: e.records_sent,
    }
}

pub fn message(stream_name: &Arc<str>, r: &Record) -> Message {
    Message {
        stream_name: stream_name.clone(),
        sequence_number: r.sequence_number,
        ingest_time: r.timestamp_ms,
        payload: r.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gg(name: &str) -> MessageStreamDefinition {
        MessageStreamDefinition {
            name: name.into(),
            max_size: None,
            stream_segment_size: None,
            time_to_live_millis: None,
            strategy_on_full: StrategyOnFull::OverwriteOldestData,
            persistence: None,
            flush_on_write: None,
            exports: Default::default(),
        }
    }

    #[test]
    fn absent_keys_take_the_greengrass_defaults() {
        let d = to_ferry(&gg("s"), vec![]).unwrap();
        assert_eq!(d.max_size_bytes, 256 << 20);
        assert_eq!(d.segment_size_bytes, 16 << 20);
        assert_eq!(d.persistence, Persistence::File);
        assert_eq!(d.time_to_live_ms, None);
        assert!(!d.flush_on_write);
        assert_eq!(d.strategy_on_full, StrategyOnFull::OverwriteOldestData);
    }

    #[test]
    fn limits_outside_the_sdk_ranges_are_refused_naming_the_key() {
        let mut small = gg("s");
        small.max_size = Some(1023);
        assert!(to_ferry(&small, vec![]).unwrap_err().contains("maxSize"));
        let mut seg = gg("s");
        seg.stream_segment_size = Some(1 << 31);
        assert!(to_ferry(&seg, vec![])
            .unwrap_err()
            .contains("streamSegmentSize"));
        let mut ttl = gg("s");
        ttl.time_to_live_millis = Some(59_999);
        assert!(to_ferry(&ttl, vec![])
            .unwrap_err()
            .contains("timeToLiveMillis"));
    }

    #[test]
    fn the_definition_echoed_by_describe_round_trips() {
        let mut g = gg("s");
        g.max_size = Some(65_536);
        g.stream_segment_size = Some(4096);
        g.time_to_live_millis = Some(60_000);
        g.persistence = Some(Persistence::Memory);
        g.flush_on_write = Some(true);
        let out = definition_out(&to_ferry(&g, vec![]).unwrap());
        assert_eq!(
            out,
            DefinitionOut {
                name: "s".into(),
                max_size: 65_536,
                stream_segment_size: 4096,
                time_to_live_millis: Some(60_000),
                strategy_on_full: 1,
                persistence: 1,
                flush_on_write: true,
                exports: vec![],
            }
        );
    }
}
