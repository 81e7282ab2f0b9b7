//! `/metrics` in the Prometheus text exposition format (version 0.0.4), rendered from the
//! service's [`Overview`] (no record is read for a scrape): MQTT ingestion, streams, exports;
//! container apps render their own families (`crate::apps::Apps::metrics_text`).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ferry_connectors::mqtt::IngestSnapshot;
use ferry_stream_manager::StreamDescription;

use super::ApiState;
use crate::service::views::ExportView;
use crate::service::{Overview, ProcessReadings};

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

pub async fn render(State(state): State<ApiState>) -> impl IntoResponse {
    let overview = state.service.overview();
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    process_families(&mut f, &state.service.process());
    mqtt_families(&mut f, &overview);
    stream_families(&mut f, &overview.streams);
    export_families(&mut f, &overview.exports);
    if let Some(apps) = &state.apps {
        out.push_str(&apps.metrics_text());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

fn process_families(f: &mut Family, p: &ProcessReadings) {
    f.head(
        "ferry_build_info",
        "gauge",
        "1, labelled with Ferry's version.",
    );
    f.sample(
        "ferry_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    f.head(
        "ferry_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the Ferry process.",
    );
    let _ = writeln!(
        f.out,
        "ferry_process_resident_memory_bytes {}",
        p.resident_memory_bytes
    );
    f.head(
        "ferry_process_cpu_seconds_total",
        "counter",
        "CPU time (user and system) the Ferry process used.",
    );
    let _ = writeln!(f.out, "ferry_process_cpu_seconds_total {}", p.cpu_seconds);
    if let Some(free) = p.data_dir_free_bytes {
        f.head(
            "ferry_data_dir_free_bytes",
            "gauge",
            "Free space on the data directory's file system.",
        );
        let _ = writeln!(f.out, "ferry_data_dir_free_bytes {free}");
    }
}

fn mqtt_families(f: &mut Family, overview: &Overview) {
    let ingest = &overview.ingest;
    type Counter = (&'static str, &'static str, fn(&IngestSnapshot) -> u64);
    let counters: [Counter; 8] = [
        (
            "ferry_mqtt_messages_received_total",
            "MQTT messages received from the broker (redeliveries included).",
            |s| s.messages_received,
        ),
        (
            "ferry_mqtt_messages_stored_total",
            "MQTT messages durable in every stream they route to.",
            |s| s.messages_stored,
        ),
        (
            "ferry_mqtt_bytes_stored_total",
            "Payload bytes of stored MQTT messages.",
            |s| s.bytes_stored,
        ),
        (
            "ferry_mqtt_backpressure_waits_total",
            "Retries of messages a stream refused (acks held back).",
            |s| s.backpressure_waits,
        ),
        (
            "ferry_mqtt_messages_diverted_total",
            "MQTT messages stored in their route's overflow stream because their stream was full.",
            |s| s.diverted,
        ),
        (
            "ferry_mqtt_stale_acks_total",
            "Acks not sent because their connection was gone (the broker redelivers).",
            |s| s.stale_acks,
        ),
        (
            "ferry_mqtt_connects_total",
            "Successful connections to the broker.",
            |s| s.connects,
        ),
        (
            "ferry_mqtt_disconnects_total",
            "Connections to the broker that were lost.",
            |s| s.disconnects,
        ),
    ];
    for (name, help, get) in counters {
        f.head(name, "counter", help);
        for (broker, s) in ingest {
            f.sample(name, &[("broker", broker)], get(s));
        }
    }
    f.head(
        "ferry_mqtt_messages_rejected_total",
        "counter",
        "MQTT messages not stored, by reason.",
    );
    for (broker, s) in ingest {
        f.sample(
            "ferry_mqtt_messages_rejected_total",
            &[("broker", broker), ("reason", "oversized")],
            s.rejected_oversized,
        );
        f.sample(
            "ferry_mqtt_messages_rejected_total",
            &[("broker", broker), ("reason", "unroutable")],
            s.rejected_unroutable,
        );
        f.sample(
            "ferry_mqtt_messages_rejected_total",
            &[("broker", broker), ("reason", "invalid")],
            s.rejected_invalid,
        );
        f.sample(
            "ferry_mqtt_messages_rejected_total",
            &[("broker", broker), ("reason", "stream_full")],
            s.dropped_full,
        );
        f.sample(
            "ferry_mqtt_messages_rejected_total",
            &[("broker", broker), ("reason", "qos0_stream_refused")],
            s.dropped_qos0,
        );
    }
    f.head(
        "ferry_mqtt_connected",
        "gauge",
        "1 while connected to the broker.",
    );
    for (broker, s) in ingest {
        f.sample(
            "ferry_mqtt_connected",
            &[("broker", broker)],
            u8::from(s.connected),
        );
    }
}

fn stream_families(f: &mut Family, streams: &[StreamDescription]) {
    type Get = fn(&StreamDescription) -> i128;
    let stream_metrics: [(&str, &str, &str, Get); 10] = [
        (
            "ferry_stream_bytes",
            "gauge",
            "Bytes the stream occupies.",
            |d| d.total_bytes.into(),
        ),
        (
            "ferry_stream_records",
            "gauge",
            "Records the stream holds.",
            |d| d.records.into(),
        ),
        (
            "ferry_stream_first_sequence_number",
            "gauge",
            "Oldest sequence number still available.",
            |d| d.first_sequence_number.into(),
        ),
        (
            "ferry_stream_last_sequence_number",
            "gauge",
            "Newest sequence number (-1 while empty).",
            |d| d.last_sequence_number.map_or(-1, i128::from),
        ),
        (
            "ferry_stream_max_size_bytes",
            "gauge",
            "The stream's size limit.",
            |d| d.definition.max_size_bytes.into(),
        ),
        (
            "ferry_stream_appended_records_total",
            "counter",
            "Records appended since Ferry started.",
            |d| d.counters.appended_records.into(),
        ),
        (
            "ferry_stream_appended_bytes_total",
            "counter",
            "Bytes appended since Ferry started.",
            |d| d.counters.appended_bytes.into(),
        ),
        (
            "ferry_stream_rejected_records_total",
            "counter",
            "Records refused because the stream was full (reject_new_data).",
            |d| d.counters.rejected_full_records.into(),
        ),
        (
            "ferry_stream_damaged_ranges_total",
            "counter",
            "Damaged ranges found in segment files and skipped.",
            |d| d.counters.damage.damaged_ranges.into(),
        ),
        (
            "ferry_stream_fsyncs_total",
            "counter",
            "fsync rounds of the stream (group commit).",
            |d| d.counters.sync_rounds.into(),
        ),
    ];
    for (name, kind, help, get) in stream_metrics {
        f.head(name, kind, help);
        for d in streams {
            f.sample(name, &[("stream", &d.definition.name)], get(d));
        }
    }
    f.head(
        "ferry_stream_dropped_records_total",
        "counter",
        "Records removed by retention, by reason.",
    );
    for d in streams {
        f.sample(
            "ferry_stream_dropped_records_total",
            &[("stream", &d.definition.name), ("reason", "size")],
            d.counters.dropped_by_size_records,
        );
        f.sample(
            "ferry_stream_dropped_records_total",
            &[("stream", &d.definition.name), ("reason", "ttl")],
            d.counters.dropped_by_ttl_records,
        );
    }
}

fn export_families(f: &mut Family, exports: &[ExportView]) {
    type ExportGet = fn(&ExportView) -> u64;
    let export_metrics: [(&str, &str, &str, ExportGet); 5] = [
        (
            "ferry_export_checkpoint",
            "gauge",
            "Next sequence number the export will send.",
            |e| e.status.checkpoint,
        ),
        (
            "ferry_export_records_sent_total",
            "counter",
            "Records the sink confirmed.",
            |e| e.status.records_sent,
        ),
        (
            "ferry_export_bytes_sent_total",
            "counter",
            "Payload bytes the sink confirmed.",
            |e| e.status.bytes_sent,
        ),
        (
            "ferry_export_retries_total",
            "counter",
            "Failed sends that were retried.",
            |e| e.status.retries,
        ),
        (
            "ferry_export_last_success_timestamp_ms",
            "gauge",
            "When the sink last confirmed a batch (0: never).",
            |e| e.status.last_success_ms.unwrap_or(0).max(0) as u64,
        ),
    ];
    for (name, kind, help, get) in export_metrics {
        f.head(name, kind, help);
        for e in exports {
            f.sample(
                name,
                &[
                    ("stream", &e.status.stream),
                    ("export", &e.status.identifier),
                ],
                get(e),
            );
        }
    }
    let lag_metrics: [(&str, &str, ExportGet); 2] = [
        (
            "ferry_export_lag_records",
            "Records stored but not yet exported.",
            |e| e.lag_records,
        ),
        (
            "ferry_export_lag_bytes",
            "Bytes stored but not yet exported (from the stream's average record size).",
            |e| e.lag_bytes,
        ),
    ];
    for (name, help, get) in lag_metrics {
        f.head(name, "gauge", help);
        for e in exports {
            f.sample(
                name,
                &[
                    ("stream", &e.status.stream),
                    ("export", &e.status.identifier),
                ],
                get(e),
            );
        }
    }
    f.head(
        "ferry_export_records_dropped_total",
        "counter",
        "Records never exported, by reason.",
    );
    for e in exports {
        let labels = |reason| {
            [
                ("stream", e.status.stream.as_str()),
                ("export", e.status.identifier.as_str()),
                ("reason", reason),
            ]
        };
        f.sample(
            "ferry_export_records_dropped_total",
            &labels("retention"),
            e.status.records_dropped_by_retention,
        );
        f.sample(
            "ferry_export_records_dropped_total",
            &labels("permanent_error"),
            e.status.records_skipped,
        );
    }
    f.head(
        "ferry_export_state",
        "gauge",
        "1 for the export's current state.",
    );
    for e in exports {
        f.sample(
            "ferry_export_state",
            &[
                ("stream", &e.status.stream),
                ("export", &e.status.identifier),
                ("state", e.status.state.as_str()),
            ],
            1,
        );
    }
}
