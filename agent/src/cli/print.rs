//! How the CLI shows the service's views to people (tables and aligned key/value lines);
//! `--json` prints the views themselves.

use std::io::Write;

use anyhow::Result;
use ferry_stream_manager::{Persistence, StrategyOnFull};

use crate::service::views::{ExportView, RecordView, StreamView};

pub fn print_record(out: &mut impl Write, r: &RecordView, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    let payload = match &r.payload {
        Some(text) => text.clone(),
        None => format!("base64:{}", r.payload_base64),
    };
    let topic = r.metadata.get("topic").map_or("-", String::as_str);
    let meta: Vec<String> = r
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "topic")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let meta = if meta.is_empty() {
        String::new()
    } else {
        format!("  [{}]", meta.join(", "))
    };
    writeln!(
        out,
        "{:>10}  {}  {:<24}  {payload}{meta}",
        r.sequence_number,
        time(r.timestamp_ms),
        topic
    )?;
    Ok(())
}

/// A record time for people: RFC 3339 in UTC, to the millisecond.
pub fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

pub fn persistence_name(p: Persistence) -> &'static str {
    match p {
        Persistence::File => "file",
        Persistence::Memory => "memory",
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn print_description(out: &mut impl Write, v: &StreamView, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(v)?)?;
        return Ok(());
    }
    let d = &v.definition;
    let s = &v.status;
    let strategy = match d.strategy_on_full {
        StrategyOnFull::RejectNewData => "reject_new_data",
        StrategyOnFull::OverwriteOldestData => "overwrite_oldest_data",
    };
    for (k, val) in [
        ("name", v.name.clone()),
        ("persistence", persistence_name(d.persistence).to_string()),
        ("max_size_bytes", d.max_size_bytes.to_string()),
        ("segment_size_bytes", d.segment_size_bytes.to_string()),
        ("time_to_live_ms", or_dash(d.time_to_live_ms)),
        ("strategy_on_full", strategy.to_string()),
        ("flush_on_write", d.flush_on_write.to_string()),
        ("exports", d.exports.len().to_string()),
        ("first_sequence_number", s.first_sequence_number.to_string()),
        ("last_sequence_number", or_dash(s.last_sequence_number)),
        ("records", s.records.to_string()),
        ("total_bytes", s.total_bytes.to_string()),
        ("segments", s.segments.to_string()),
        (
            "oldest_record_timestamp_ms",
            or_dash(
                s.oldest_record_timestamp_ms
                    .map(|ms| format!("{ms} ({})", time(ms))),
            ),
        ),
    ] {
        writeln!(out, "{k:<34} {val}")?;
    }
    for e in &v.exports {
        print_export(out, e)?;
    }
    let c = &s.counters;
    for (k, val) in [
        ("appended_records", c.appended_records),
        ("appended_bytes", c.appended_bytes),
        ("rejected_full_records", c.rejected_full_records),
        ("dropped_by_size_records", c.dropped_by_size_records),
        ("dropped_by_ttl_records", c.dropped_by_ttl_records),
        ("sync_rounds", c.sync_rounds),
        ("damaged_ranges", c.damaged_ranges),
        ("damaged_bytes", c.damaged_bytes),
    ] {
        writeln!(out, "{:<34} {val}", format!("counters.{k}"))?;
    }
    Ok(())
}

fn print_export(out: &mut impl Write, e: &ExportView) -> Result<()> {
    let st = &e.status;
    let dropped = st.records_dropped_by_retention + st.records_skipped;
    let error = st
        .last_error
        .as_ref()
        .map_or(String::new(), |err| format!(", last error: {err}"));
    writeln!(
        out,
        "{:<34} {} ({}, priority {}): {}, checkpoint {}, lag {} records ({} bytes), sent {}, retries {}, dropped {dropped}{error}",
        "export",
        st.identifier,
        st.kind,
        st.priority,
        st.state,
        st.checkpoint,
        e.lag_records,
        e.lag_bytes,
        st.records_sent,
        st.retries,
    )?;
    Ok(())
}
