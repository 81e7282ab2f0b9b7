//! The export configs of a `MessageStreamDefinition.exportDefinition`, decoded and checked
//! with the SDKs' own ranges (an SDK refuses the same values before sending), and the same
//! types sent back in a describe answer.
//!
//! ```text
//! exportDefinition key   config                        Ferry
//! kinesis                KinesisConfig                 kind "kinesis"
//! http                   HTTPConfig                    kind "http" (format json_array)
//! s3TaskExecutor         S3ExportTaskExecutorConfig    kind "s3_task"
//! iotAnalytics           IoTAnalyticsConfig            refused (InvalidRequest naming the kind)
//! IotSitewise            IoTSiteWiseConfig             refused (note the key's spelling)
//!
//! common keys            identifier (required, name rule), batchSize, batchIntervalMillis
//!                        (60000..=9223372036854), priority (1..=10), startSequenceNumber,
//!                        disabled; S3 has identifier, priority, disabled only
//! ```

use super::cbor::Val;
use super::messages::Fields;

pub const MAX_INTERVAL_MS: u64 = 9_223_372_036_854;
pub const MIN_INTERVAL_MS: u64 = 60_000;
pub const MIN_MULTIPART_THRESHOLD: u64 = 5 * 1024 * 1024;
/// Kinesis and HTTP take batches of 1 to 500 messages.
pub const MAX_BATCH_SIZE: u64 = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub identifier: String,
    pub kind: ConfigKind,
    pub batch_size: Option<u64>,
    pub batch_interval_millis: Option<u64>,
    pub priority: Option<u64>,
    pub start_sequence_number: Option<u64>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigKind {
    Kinesis {
        stream_name: String,
    },
    Http {
        uri: String,
        /// 0 RAW_NOT_BATCHED, 1 JSON_BATCHED.
        export_format: Option<u64>,
    },
    S3Task {
        size_threshold_for_multipart_upload_bytes: Option<u64>,
        status_config: Option<StatusConfig>,
    },
}

impl ConfigKind {
    /// The `exportDefinition` key the config sits under.
    pub fn wire_key(&self) -> &'static str {
        match self {
            ConfigKind::Kinesis { .. } => "kinesis",
            ConfigKind::Http { .. } => "http",
            ConfigKind::S3Task { .. } => "s3TaskExecutor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// 0 ERROR … 4 TRACE.
    pub status_level: Option<u64>,
    pub status_stream_name: Option<String>,
}

/// What an `exportDefinition` holds: the configs Ferry takes, and the wire keys of kinds it
/// refuses that carry at least one config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportConfigs {
    pub configs: Vec<ExportConfig>,
    pub refused: Vec<&'static str>,
}

/// Decodes `definition.exportDefinition`; errors name the key
/// (`exportDefinition.kinesis[0].batchSize`).
pub fn decode(f: &Fields<'_, '_>) -> Result<ExportConfigs, String> {
    let mut out = ExportConfigs::default();
    for refused in ["iotAnalytics", "IotSitewise"] {
        if matches!(f.0.get(refused), Some(Val::Array(a)) if !a.is_empty()) {
            out.refused.push(refused);
        }
    }
    for key in ["kinesis", "http", "s3TaskExecutor"] {
        let items = match f.0.get(key) {
            None => continue,
            Some(Val::Array(items)) => items,
            Some(_) => return Err(format!("exportDefinition.{key} must be an array")),
        };
        for (i, item) in items.iter().enumerate() {
            let at = format!("exportDefinition.{key}[{i}]");
            if !matches!(item, Val::Map(_)) {
                return Err(format!("{at} must be a map"));
            }
            let config = one(key, &Fields(item)).map_err(|e| format!("{at}.{e}"))?;
            out.configs.push(config);
        }
    }
    Ok(out)
}

fn one(key: &str, f: &Fields<'_, '_>) -> Result<ExportConfig, String> {
    let identifier = f.required_text("identifier")?;
    check_name("identifier", &identifier)?;
    let kind = match key {
        "kinesis" => ConfigKind::Kinesis {
            stream_name: f
                .required_text("kinesisStreamName")
                .and_then(|s| non_empty("kinesisStreamName", s))?,
        },
        "http" => ConfigKind::Http {
            uri: f.required_text("uri").and_then(|s| non_empty("uri", s))?,
            export_format: in_range(f, "exportFormat", 0, 1)?,
        },
        _ => ConfigKind::S3Task {
            size_threshold_for_multipart_upload_bytes: in_range(
                f,
                "sizeThresholdForMultipartUploadBytes",
                MIN_MULTIPART_THRESHOLD,
                u64::MAX,
            )?,
            status_config: match f.map("statusConfig")? {
                None => None,
                Some(s) => Some(status_config(&s).map_err(|e| format!("statusConfig.{e}"))?),
            },
        },
    };
    // S3 task configs have no batching and no start: keys an SDK never sends there are ignored.
    let batching = !matches!(kind, ConfigKind::S3Task { .. });
    Ok(ExportConfig {
        identifier,
        batch_size: if batching {
            in_range(f, "batchSize", 1, MAX_BATCH_SIZE)?
        } else {
            None
        },
        batch_interval_millis: if batching {
            in_range(f, "batchIntervalMillis", MIN_INTERVAL_MS, MAX_INTERVAL_MS)?
        } else {
            None
        },
        priority: in_range(f, "priority", 1, 10)?,
        start_sequence_number: if batching {
            f.uint("startSequenceNumber")?
        } else {
            None
        },
        disabled: f.bool("disabled")?,
        kind,
    })
}

fn status_config(f: &Fields<'_, '_>) -> Result<StatusConfig, String> {
    let stream = f.text("statusStreamName")?;
    if let Some(s) = &stream {
        check_name("statusStreamName", s)?;
    }
    Ok(StatusConfig {
        status_level: in_range(f, "statusLevel", 0, 4)?,
        status_stream_name: stream,
    })
}

fn in_range(f: &Fields<'_, '_>, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    match f.uint(key)? {
        Some(v) if !(min..=max).contains(&v) => {
            let range = if max == u64::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            Err(format!("{key} is {v} but must be {range}"))
        }
        v => Ok(v),
    }
}

fn non_empty(key: &str, s: String) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!("{key} must not be empty"));
    }
    Ok(s)
}

/// Greengrass' name rule (identifiers and stream names): 1 to 255 ASCII letters, digits,
/// space, `_`, `-`, `,` and `.`.
fn check_name(key: &str, s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | ',' | '.');
    if s.is_empty() || s.len() > 255 || !s.chars().all(ok) {
        return Err(format!(
            "{key} {s:?} must be 1 to 255 ASCII letters, digits, space, '_', '-', ',' and '.'"
        ));
    }
    Ok(())
}
