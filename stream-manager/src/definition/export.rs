//! Export definitions: where and how a stream is exported, with typed settings per sink kind.
//!
//! Stored (catalog) and sent (HTTP API, config file) as
//! `{"identifier", "kind": "http", "settings": {...}, "batch_size", ...}` — the
//! [`RawExportDefinition`] form. Converting it into an [`ExportDefinition`] checks everything
//! that needs no environment, so whatever parses a definition refuses a broken one, with an
//! [`ExportConfigError`] naming the key (`kind`, `settings.url`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keyed_settings;
use super::s3_task_settings::S3TaskSettings;
use super::sink_settings::{FirehoseSettings, HttpSettings, KinesisSettings, S3Settings};

/// What is wrong with an export definition, and where: `key` is relative to the export
/// (`kind`, `priority`, `settings.url`), so a caller prefixes it with where the export sits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct ExportConfigError {
    pub key: String,
    pub reason: String,
}

impl ExportConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ExportConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error with its key inside `prefix` (`url` within `settings`: `settings.url`).
    pub fn within(self, prefix: &str) -> Self {
        ExportConfigError {
            key: format!("{prefix}.{}", self.key),
            reason: self.reason,
        }
    }
}

/// The sink an export sends to, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportKind {
    Http(HttpSettings),
    Kinesis(KinesisSettings),
    Firehose(FirehoseSettings),
    S3(S3Settings),
    /// Greengrass' S3 export task: each record names a file to upload.
    S3Task(S3TaskSettings),
}

impl ExportKind {
    /// The names `kind` takes, in the order error messages list them.
    pub const NAMES: [&'static str; 5] = ["http", "kinesis", "firehose", "s3", "s3_task"];

    /// `http`, `kinesis`, `firehose`, `s3` or `s3_task`: the stored `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            ExportKind::Http(_) => "http",
            ExportKind::Kinesis(_) => "kinesis",
            ExportKind::Firehose(_) => "firehose",
            ExportKind::S3(_) => "s3",
            ExportKind::S3Task(_) => "s3_task",
        }
    }

    /// The kind named `kind` with `settings` read into its typed settings (not yet validated).
    pub fn from_settings(
        kind: &str,
        settings: &Map<String, Value>,
    ) -> Result<ExportKind, ExportConfigError> {
        Ok(match kind {
            "http" => ExportKind::Http(keyed_settings::parse(settings)?),
            "kinesis" => ExportKind::Kinesis(keyed_settings::parse(settings)?),
            "firehose" => ExportKind::Firehose(keyed_settings::parse(settings)?),
            "s3" => ExportKind::S3(keyed_settings::parse(settings)?),
            "s3_task" => ExportKind::S3Task(keyed_settings::parse(settings)?),
            other => {
                return Err(ExportConfigError::new(
                    "kind",
                    format!(
                        "unknown export kind {other:?} (expected http, kinesis, firehose, s3 or s3_task)"
                    ),
                ))
            }
        })
    }

    /// The settings as the JSON object that is stored and shown.
    pub fn settings(&self) -> Map<String, Value> {
        let value = match self {
            ExportKind::Http(s) => serde_json::to_value(s),
            ExportKind::Kinesis(s) => serde_json::to_value(s),
            ExportKind::Firehose(s) => serde_json::to_value(s),
            ExportKind::S3(s) => serde_json::to_value(s),
            ExportKind::S3Task(s) => serde_json::to_value(s),
        };
        // Plain structs with string keys always serialize to an object.
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Checks the settings; keys start with `settings.`.
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        match self {
            ExportKind::Http(s) => s.validate(),
            ExportKind::Kinesis(s) => s.validate(),
            ExportKind::Firehose(s) => s.validate(),
            ExportKind::S3(s) => s.validate(),
            ExportKind::S3Task(s) => s.validate(),
        }
        .map_err(|e| e.within("settings"))
    }
}

/// Where and how a stream is exported. Stored with the stream; the exporter interprets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawExportDefinition", into = "RawExportDefinition")]
pub struct ExportDefinition {
    /// Unique within the stream; names the export's checkpoint.
    pub identifier: String,
    pub kind: ExportKind,
    /// At most this many records per batch (and at most what the sink takes).
    pub batch_size: Option<u32>,
    pub batch_bytes: Option<u64>,
    pub batch_interval_ms: Option<u64>,
    /// 1 is the highest priority, 10 the lowest.
    pub priority: u8,
    pub start_sequence_number: Option<u64>,
    pub disabled: bool,
    /// What a permanent sink error (one retrying cannot fix) does to the export.
    pub on_permanent_error: PermanentErrorPolicy,
    /// At most this many batches with the sink at once; `None`: the kind's default (see
    /// [`ExportDefinition::in_flight_limit`]).
    pub max_in_flight_batches: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PermanentErrorPolicy {
    /// Stop the export and say so in its status; the checkpoint stays before the batch.
    #[default]
    Pause,
    /// Skip the refused batch (counted as dropped) and go on.
    Skip,
}

pub const DEFAULT_PRIORITY: u8 = 10;
/// Batches with the sink at once, unless the definition says otherwise (Kinesis: 1). Fills a
/// 20 Mbit/s link with a 600 ms round trip with batches of 500 records of 200 bytes, where 8
/// used 72% of it (README, *Benchmarks*).
pub const DEFAULT_MAX_IN_FLIGHT_BATCHES: u32 = 16;
/// The most `max_in_flight_batches` may be: memory holds that many batches per export.
pub const MAX_IN_FLIGHT_BATCHES: u32 = 64;

fn default_priority() -> u8 {
    DEFAULT_PRIORITY
}

impl ExportDefinition {
    /// An enabled export with every default.
    pub fn new(identifier: impl Into<String>, kind: ExportKind) -> Self {
        ExportDefinition {
            identifier: identifier.into(),
            kind,
            batch_size: None,
            batch_bytes: None,
            batch_interval_ms: None,
            priority: DEFAULT_PRIORITY,
            start_sequence_number: None,
            disabled: false,
            on_permanent_error: PermanentErrorPolicy::default(),
            max_in_flight_batches: None,
        }
    }

    /// How many batches may be with the sink at once: the definition's
    /// `max_in_flight_batches`, else [`DEFAULT_MAX_IN_FLIGHT_BATCHES`] — but 1 for Kinesis,
    /// whose order per partition key only holds when one batch is in flight (a later batch
    /// could otherwise be stored before a refused one that is sent again).
    pub fn in_flight_limit(&self) -> usize {
        let default = match self.kind {
            ExportKind::Kinesis(_) => 1,
            _ => DEFAULT_MAX_IN_FLIGHT_BATCHES,
        };
        self.max_in_flight_batches.unwrap_or(default) as usize
    }

    /// Everything that can be checked without the environment (which credentials, which
    /// region: the connectors' `sinks::check`).
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        if self.identifier.is_empty() {
            return Err(ExportConfigError::new("identifier", "must not be empty"));
        }
        if !(1..=10).contains(&self.priority) {
            return Err(ExportConfigError::new(
                "priority",
                format!(
                    "is {} but must be 1 (highest) to 10 (lowest)",
                    self.priority
                ),
            ));
        }
        let zero = "must be greater than 0 (omit it for the sink's own limit)";
        if self.batch_size == Some(0) {
            return Err(ExportConfigError::new("batch_size", zero));
        }
        if self.batch_bytes == Some(0) {
            return Err(ExportConfigError::new("batch_bytes", zero));
        }
        if let Some(n) = self.max_in_flight_batches {
            if !(1..=MAX_IN_FLIGHT_BATCHES).contains(&n) {
                return Err(ExportConfigError::new(
                    "max_in_flight_batches",
                    format!("is {n} but must be 1 to {MAX_IN_FLIGHT_BATCHES}"),
                ));
            }
        }
        self.kind.validate()
    }
}

/// An export definition as stored and sent: the kind as a name and its settings as a JSON
/// object. Public so a reader of a whole document (the agent's config) can convert each export
/// on its own and place an error exactly.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExportDefinition {
    pub identifier: String,
    /// `kinesis`, `firehose`, `s3`, `s3_task` or `http`.
    pub kind: String,
    #[serde(default)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    pub batch_bytes: Option<u64>,
    #[serde(default)]
    pub batch_interval_ms: Option<u64>,
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default)]
    pub start_sequence_number: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub on_permanent_error: PermanentErrorPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight_batches: Option<u32>,
}

impl TryFrom<RawExportDefinition> for ExportDefinition {
    type Error = ExportConfigError;

    fn try_from(raw: RawExportDefinition) -> Result<Self, ExportConfigError> {
        let def = ExportDefinition {
            kind: ExportKind::from_settings(&raw.kind, &raw.settings)?,
            identifier: raw.identifier,
            batch_size: raw.batch_size,
            batch_bytes: raw.batch_bytes,
            batch_interval_ms: raw.batch_interval_ms,
            priority: raw.priority,
            start_sequence_number: raw.start_sequence_number,
            disabled: raw.disabled,
            on_permanent_error: raw.on_permanent_error,
            max_in_flight_batches: raw.max_in_flight_batches,
        };
        def.validate()?;
        Ok(def)
    }
}

impl From<ExportDefinition> for RawExportDefinition {
    fn from(def: ExportDefinition) -> Self {
        RawExportDefinition {
            identifier: def.identifier,
            kind: def.kind.name().to_string(),
            settings: def.kind.settings(),
            batch_size: def.batch_size,
            batch_bytes: def.batch_bytes,
            batch_interval_ms: def.batch_interval_ms,
            priority: def.priority,
            start_sequence_number: def.start_sequence_number,
            disabled: def.disabled,
            on_permanent_error: def.on_permanent_error,
            max_in_flight_batches: def.max_in_flight_batches,
        }
    }
}

#[cfg(test)]
mod tests;
