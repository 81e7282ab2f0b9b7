//! The `exportDefinition` of a describe answer's definition: the stream's exports this protocol
//! can express, under their wire keys, so that describe → edit → update keeps them.
//!
//! ```text
//! exportDefinition: {kinesis: [KinesisConfig], http: [HTTPConfig], s3TaskExecutor: [...]}
//!   (only non-empty lists; absent keys of a config are left out, never null)
//! ```

use super::cbor::Out;
use super::export_messages::{ConfigKind, ExportConfig};

const KINDS: [&str; 3] = ["kinesis", "http", "s3TaskExecutor"];

/// Writes the `exportDefinition` map (the caller wrote its key).
pub fn export_definition(o: &mut Out, exports: &[ExportConfig]) {
    let of = |key: &'static str| exports.iter().filter(move |c| c.kind.wire_key() == key);
    let present: Vec<&'static str> = KINDS
        .into_iter()
        .filter(|k| of(k).next().is_some())
        .collect();
    o.map(present.len());
    for key in present {
        o.text(key).array(of(key).count());
        for c in of(key) {
            config(o, c);
        }
    }
}

/// One config's value, as it is written.
enum V<'a> {
    T(&'a str),
    U(u64),
    B(bool),
    Status {
        level: Option<u64>,
        stream: Option<&'a str>,
    },
}

fn config(o: &mut Out, c: &ExportConfig) {
    let mut fields: Vec<(&str, V<'_>)> = vec![("identifier", V::T(&c.identifier))];
    match &c.kind {
        ConfigKind::Kinesis { stream_name } => {
            fields.push(("kinesisStreamName", V::T(stream_name)))
        }
        ConfigKind::Http { uri, export_format } => {
            fields.push(("uri", V::T(uri)));
            fields.extend(export_format.map(|f| ("exportFormat", V::U(f))));
        }
        ConfigKind::S3Task {
            size_threshold_for_multipart_upload_bytes: threshold,
            status_config,
        } => {
            fields.extend(threshold.map(|t| ("sizeThresholdForMultipartUploadBytes", V::U(t))));
            fields.extend(status_config.as_ref().map(|s| {
                let status = V::Status {
                    level: s.status_level,
                    stream: s.status_stream_name.as_deref(),
                };
                ("statusConfig", status)
            }));
        }
    }
    fields.extend(c.batch_size.map(|v| ("batchSize", V::U(v))));
    fields.extend(
        c.batch_interval_millis
            .map(|v| ("batchIntervalMillis", V::U(v))),
    );
    fields.extend(c.priority.map(|v| ("priority", V::U(v))));
    fields.extend(
        c.start_sequence_number
            .map(|v| ("startSequenceNumber", V::U(v))),
    );
    fields.extend(c.disabled.map(|v| ("disabled", V::B(v))));
    o.map(fields.len());
    for (key, value) in fields {
        o.text(key);
        match value {
            V::T(t) => {
                o.text(t);
            }
            V::U(n) => {
                o.uint(n);
            }
            V::B(b) => {
                o.bool(b);
            }
            V::Status { level, stream } => {
                o.map(usize::from(level.is_some()) + usize::from(stream.is_some()));
                if let Some(l) = level {
                    o.text("statusLevel").uint(l);
                }
                if let Some(s) = stream {
                    o.text("statusStreamName").text(s);
                }
            }
        }
    }
}
