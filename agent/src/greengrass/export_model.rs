//! Greengrass export configs ↔ Ferry exports (pure).
//!
//! ```text
//! Greengrass                             Ferry export
//! identifier                             identifier
//! priority (absent: lowest)              priority (absent: 10)
//! batchSize                              batch_size (absent: the sink's own, 500 for Kinesis)
//! batchIntervalMillis                    batch_interval_ms (absent: Ferry's 1 s wait for a batch)
//! startSequenceNumber                    start_sequence_number (absent: the oldest message)
//! disabled                               disabled
//! KinesisConfig.kinesisStreamName        kinesis: stream_name, partition_key random (a fresh key
//!                                        per record, as Greengrass), AWS settings from
//!                                        [greengrass.exports]
//! HTTPConfig.uri, exportFormat           http: url, format json_array (JSON_BATCHED; absent means
//!                                        the same; RAW_NOT_BATCHED is refused)
//! S3ExportTaskExecutorConfig             s3_task: multipart_threshold_bytes,
//!   sizeThresholdForMultipartUploadBytes   status_stream, status_level, on_permanent_error skip
//!   statusConfig.{statusStreamName, statusLevel}   (a failed task does not stop the next)
//! ```
//! An update carries the whole desired set, matched by identifier: a known one keeps what the
//! protocol cannot say (AWS settings, partition key, headers) and takes the rest from the
//! request; a new one is created; a missing one is removed. Ferry exports this protocol cannot
//! express (Firehose, Ferry's own S3 batches, NDJSON HTTP, values outside the SDK's ranges) are
//! not shown in describe's `exportDefinition` and an update keeps them.

use ferry_stream_manager::definition::{
    ExportKind, HttpFormat, HttpSettings, KinesisSettings, PartitionKey, PermanentErrorPolicy,
    S3TaskSettings, StatusLevel, DEFAULT_PRIORITY, MIN_S3_PART_SIZE_BYTES,
};
use ferry_stream_manager::ExportDefinition;

use super::export_messages::{
    ConfigKind, ExportConfig, ExportConfigs, StatusConfig, MAX_BATCH_SIZE, MAX_INTERVAL_MS,
    MIN_INTERVAL_MS,
};
use super::export_settings::ExportSettings;

const JSON_BATCHED: u64 = 1;

/// The stream's exports after a create (`current` empty) or an update carrying `requested`.
/// `Err` is the message of an `InvalidRequest` answer.
pub fn exports(
    current: &[ExportDefinition],
    requested: &ExportConfigs,
    settings: &ExportSettings,
) -> Result<Vec<ExportDefinition>, String> {
    if !requested.refused.is_empty() {
        let names: Vec<String> = requested
            .refused
            .iter()
            .map(|k| match *k {
                "iotAnalytics" => "IoT Analytics (iotAnalytics)".to_string(),
                "IotSitewise" => "IoT SiteWise (IotSitewise)".to_string(),
                other => other.to_string(),
            })
            .collect();
        return Err(format!(
            "exportDefinition: {} exports are not supported by Ferry",
            names.join(" and ")
        ));
    }
    let mut out: Vec<ExportDefinition> = current
        .iter()
        .filter(|e| config_of(e).is_none())
        .cloned()
        .collect();
    for (i, config) in requested.configs.iter().enumerate() {
        let id = &config.identifier;
        if requested.configs[..i].iter().any(|c| &c.identifier == id) {
            return Err(format!("export identifier {id:?} is used twice"));
        }
        if out.iter().any(|e| &e.identifier == id) {
            return Err(format!(
                "export identifier {id:?} names a Ferry export this protocol cannot express; \
                 change it through Ferry's HTTP API or pick another identifier"
            ));
        }
        let base = current
            .iter()
            .find(|e| &e.identifier == id && same_kind(e, &config.kind))
            .cloned()
            .unwrap_or_else(|| new_export(config, settings));
        out.push(apply(base, config)?);
    }
    Ok(out)
}

fn same_kind(e: &ExportDefinition, kind: &ConfigKind) -> bool {
    config_of(e).is_some_and(|c| c.kind.wire_key() == kind.wire_key())
}

fn new_export(c: &ExportConfig, settings: &ExportSettings) -> ExportDefinition {
    let kind = match &c.kind {
        ConfigKind::Kinesis { stream_name } => ExportKind::Kinesis(KinesisSettings {
            stream_name: stream_name.clone(),
            partition_key: PartitionKey::Random,
            aws: settings.aws(settings.kinesis_endpoint.as_ref()),
        }),
        ConfigKind::Http { uri, .. } => ExportKind::Http(HttpSettings {
            format: HttpFormat::JsonArray,
            ..HttpSettings::new(uri.clone())
        }),
        ConfigKind::S3Task { .. } => ExportKind::S3Task(S3TaskSettings {
            input_dirs: settings.s3_input_dirs.clone(),
            aws: settings.aws(settings.s3_endpoint.as_ref()),
            ..S3TaskSettings::default()
        }),
    };
    let mut def = ExportDefinition::new(c.identifier.clone(), kind);
    if matches!(c.kind, ConfigKind::S3Task { .. }) {
        // Greengrass fails a task on its own and goes on with the next.
        def.on_permanent_error = PermanentErrorPolicy::Skip;
    }
    def
}

/// `def` with what `c` says.
fn apply(mut def: ExportDefinition, c: &ExportConfig) -> Result<ExportDefinition, String> {
    def.priority = c.priority.map_or(DEFAULT_PRIORITY, |p| p as u8);
    def.disabled = c.disabled.unwrap_or(false);
    match (&mut def.kind, &c.kind) {
        (ExportKind::Kinesis(s), ConfigKind::Kinesis { stream_name }) => {
            s.stream_name = stream_name.clone();
        }
        (ExportKind::Http(s), ConfigKind::Http { uri, export_format }) => {
            if export_format.is_some_and(|f| f != JSON_BATCHED) {
                return Err(format!(
                    "export {:?}: exportFormat RAW_NOT_BATCHED is not supported by Ferry (its \
                     HTTP export posts JSON batches): use JSON_BATCHED",
                    c.identifier
                ));
            }
            s.url = uri.clone();
        }
        (
            ExportKind::S3Task(s),
            ConfigKind::S3Task {
                size_threshold_for_multipart_upload_bytes: threshold,
                status_config,
            },
        ) => {
            s.multipart_threshold_bytes = threshold.unwrap_or(MIN_S3_PART_SIZE_BYTES);
            s.status_stream = status_config
                .as_ref()
                .and_then(|sc| sc.status_stream_name.clone());
            s.status_level = status_config
                .as_ref()
                .and_then(|sc| sc.status_level)
                .and_then(StatusLevel::from_code)
                .unwrap_or_default();
            // No batching keys in this config: one task per batch whatever they say.
            return Ok(def);
        }
        _ => return Err(format!("export {:?}: kind mismatch", c.identifier)),
    }
    def.batch_size = c.batch_size.map(|b| b as u32);
    def.batch_interval_ms = c.batch_interval_millis;
    def.start_sequence_number = c.start_sequence_number;
    Ok(def)
}

/// The config describe shows for a Ferry export, `None` when this protocol cannot express it.
pub fn config_of(e: &ExportDefinition) -> Option<ExportConfig> {
    let in_sdk_range = e
        .batch_size
        .is_none_or(|b| (1..=MAX_BATCH_SIZE).contains(&b.into()))
        && e.batch_interval_ms
            .is_none_or(|i| (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&i));
    let kind = match &e.kind {
        ExportKind::Kinesis(s) if in_sdk_range => ConfigKind::Kinesis {
            stream_name: s.stream_name.clone(),
        },
        ExportKind::Http(s) if in_sdk_range && s.format == HttpFormat::JsonArray => {
            ConfigKind::Http {
                uri: s.url.clone(),
                export_format: Some(JSON_BATCHED),
            }
        }
        ExportKind::S3Task(s) => {
            return Some(ExportConfig {
                identifier: e.identifier.clone(),
                kind: ConfigKind::S3Task {
                    size_threshold_for_multipart_upload_bytes: Some(s.multipart_threshold_bytes),
                    status_config: s.status_stream.as_ref().map(|name| StatusConfig {
                        status_level: Some(s.status_level.code().into()),
                        status_stream_name: Some(name.clone()),
                    }),
                },
                batch_size: None,
                batch_interval_millis: None,
                priority: Some(e.priority.into()),
                start_sequence_number: None,
                disabled: Some(e.disabled),
            })
        }
        _ => return None,
    };
    Some(ExportConfig {
        identifier: e.identifier.clone(),
        kind,
        batch_size: e.batch_size.map(u64::from),
        batch_interval_millis: e.batch_interval_ms,
        priority: Some(e.priority.into()),
        start_sequence_number: e.start_sequence_number,
        disabled: Some(e.disabled),
    })
}

/// Status streams the S3 task configs of `requested` name (each must exist).
pub fn status_streams(requested: &ExportConfigs) -> impl Iterator<Item = &str> {
    requested.configs.iter().filter_map(|c| match &c.kind {
        ConfigKind::S3Task {
            status_config:
                Some(StatusConfig {
                    status_stream_name: Some(name),
                    ..
                }),
            ..
        } => Some(name.as_str()),
        _ => None,
    })
}

#[cfg(test)]
#[path = "export_model_tests.rs"]
mod tests;
