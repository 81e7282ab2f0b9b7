//! Stream definitions: what a stream is called, where it lives and how it is bounded.
//! Definitions are stored as JSON in the catalog, so every field has a serde default and
//! unknown fields are rejected (a typo in a config file must not silently become a default).

mod aws_settings;
mod export;
mod keyed_settings;
mod s3_task_settings;
mod secrets;
mod sink_settings;
mod stored;

use serde::{Deserialize, Serialize};

pub use aws_settings::{AwsSettings, CredentialsSettings, IotSettings, REDACTED};
pub use export::{
    ExportConfigError, ExportDefinition, ExportKind, PermanentErrorPolicy, RawExportDefinition,
    DEFAULT_PRIORITY,
};
pub use s3_task_settings::{S3TaskSettings, StatusLevel, MAX_S3_PART_SIZE_BYTES};
pub use secrets::{redact_secrets, restore_secrets};
pub use sink_settings::{
    check_http_url, FirehoseSettings, HttpCompression, HttpFormat, HttpSettings, KinesisSettings,
    PartitionKey, S3Format, S3Settings, MIN_S3_PART_SIZE_BYTES,
};
pub use stored::{parse_stored, DroppedExport};

use crate::error::{Error, Result};

pub const DEFAULT_MAX_SIZE_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 16 * 1024 * 1024;
/// Smallest stream the manager accepts; the same floor Greengrass uses.
pub const MIN_MAX_SIZE_BYTES: u64 = 1024;
pub const MIN_SEGMENT_SIZE_BYTES: u64 = 1024;
/// Segments address records with 32-bit offsets in their index.
pub const MAX_SEGMENT_SIZE_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_NAME_LEN: usize = 255;

/// Read from text with an error that lists the valid values (serde's own names a "variant
/// constructor"), for the enums people write in files.
macro_rules! named_values {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(text: String) -> std::result::Result<Self, String> {
                match text.as_str() {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "{text:?} is not one of {}",
                        [$(concat!("\"", $name, "\"")),+].join(", ")
                    )),
                }
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Persistence {
    #[default]
    File,
    Memory,
}

named_values!(Persistence { File => "file", Memory => "memory" });

named_values!(StrategyOnFull {
    RejectNewData => "reject_new_data",
    OverwriteOldestData => "overwrite_oldest_data",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum StrategyOnFull {
    /// Refuse appends that would exceed `max_size_bytes`; nothing stored is dropped.
    #[default]
    RejectNewData,
    /// Drop the oldest data (whole segments on disk) to make room.
    OverwriteOldestData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDefinition {
    pub name: String,
    #[serde(default)]
    pub persistence: Persistence,
    /// A number of bytes, or text such as `"256MiB"` (see `units`).
    #[serde(default = "default_max_size", deserialize_with = "crate::units::bytes")]
    pub max_size_bytes: u64,
    #[serde(
        default = "default_segment_size",
        deserialize_with = "crate::units::bytes"
    )]
    pub segment_size_bytes: u64,
    /// Records older than this are removed in the background. `None` keeps them until size
    /// retention removes them. Milliseconds, or text such as `"7d"`.
    #[serde(default, deserialize_with = "crate::units::millis_opt")]
    pub time_to_live_ms: Option<u64>,
    #[serde(default)]
    pub strategy_on_full: StrategyOnFull,
    /// `true`: every append is fsynced on its own before it is acknowledged.
    /// `false`: concurrent appends share one fsync (group commit) before they are acknowledged.
    #[serde(default)]
    pub flush_on_write: bool,
    #[serde(default)]
    pub exports: Vec<ExportDefinition>,
}

fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE_BYTES
}

fn default_segment_size() -> u64 {
    DEFAULT_SEGMENT_SIZE_BYTES
}

impl StreamDefinition {
    /// A definition with every default and the given name.
    pub fn new(name: impl Into<String>) -> Self {
        StreamDefinition {
            name: name.into(),
            persistence: Persistence::default(),
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            time_to_live_ms: None,
            strategy_on_full: StrategyOnFull::default(),
            flush_on_write: false,
            exports: Vec::new(),
        }
    }

    /// A stream smaller than the default segment size gets segments of a quarter of its size
    /// (unless the segment size was set explicitly), so `max_size_bytes` alone declares a small
    /// stream, and overwriting drops a quarter of it at a time rather than all of it.
    pub fn with_fitting_segments(mut self) -> Self {
        if self.segment_size_bytes == DEFAULT_SEGMENT_SIZE_BYTES
            && self.max_size_bytes < DEFAULT_SEGMENT_SIZE_BYTES
        {
            self.segment_size_bytes = (self.max_size_bytes / 4).max(MIN_SEGMENT_SIZE_BYTES);
        }
        self
    }

    pub fn validate(&self) -> Result<()> {
        validate_stream_name(&self.name)?;
        let bad = |msg: String| {
            Err(Error::InvalidDefinition(format!(
                "stream {:?}: {msg}",
                self.name
            )))
        };
        if self.max_size_bytes < MIN_MAX_SIZE_BYTES {
            return bad(format!(
                "max_size_bytes is {} but must be at least {MIN_MAX_SIZE_BYTES}",
                self.max_size_bytes
            ));
        }
        if !(MIN_SEGMENT_SIZE_BYTES..=MAX_SEGMENT_SIZE_BYTES).contains(&self.segment_size_bytes) {
            return bad(format!(
                "segment_size_bytes is {} but must be between {MIN_SEGMENT_SIZE_BYTES} and {MAX_SEGMENT_SIZE_BYTES}",
                self.segment_size_bytes
            ));
        }
        if self.segment_size_bytes > self.max_size_bytes {
            return bad(format!(
                "segment_size_bytes ({}) must not exceed max_size_bytes ({})",
                self.segment_size_bytes, self.max_size_bytes
            ));
        }
        if self.time_to_live_ms == Some(0) {
            return bad("time_to_live_ms must be greater than 0 (omit it to keep records until size retention)".into());
        }
        let mut seen = std::collections::HashSet::new();
        for export in &self.exports {
            if export.identifier.is_empty() || !seen.insert(export.identifier.as_str()) {
                return bad(format!(
                    "export identifier {:?} is empty or used twice",
                    export.identifier
                ));
            }
            export
                .validate()
                .or_else(|e| bad(format!("export {:?}: {e}", export.identifier)))?;
        }
        Ok(())
    }
}

/// Greengrass' rule: 1–255 characters of ASCII letters, digits, space, `_`, `-`, `,` and `.`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | ',' | '.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(Error::InvalidDefinition(format!(
            "stream name {name:?} is invalid: it must be 1 to {MAX_NAME_LEN} characters of ASCII letters, digits, space, '_', '-', ',' and '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_greengrass_rule() {
        for ok in ["a", "Sensor data_1-2,3.4", &"x".repeat(255)] {
            assert!(validate_stream_name(ok).is_ok(), "{ok:?} should be valid");
        }
        for bad in ["", "a/b", "ü", "tab\there", &"x".repeat(256)] {
            let err = validate_stream_name(bad).unwrap_err().to_string();
            assert!(err.contains("ASCII letters"), "{err}");
        }
    }

    #[test]
    fn a_segment_larger_than_the_stream_is_rejected() {
        let mut def = StreamDefinition::new("s");
        def.max_size_bytes = 4096;
        def.segment_size_bytes = 8192;
        let err = def.validate().unwrap_err().to_string();
        assert!(err.contains("segment_size_bytes"), "{err}");
    }

    #[test]
    fn a_small_stream_gets_segments_of_a_quarter_of_its_size_unless_they_were_set() {
        let mut def = StreamDefinition::new("s");
        def.max_size_bytes = 100_000;
        let def = def.with_fitting_segments();
        assert_eq!(def.segment_size_bytes, 25_000);
        assert!(def.validate().is_ok());
        let mut explicit = StreamDefinition::new("s");
        explicit.max_size_bytes = 100_000;
        explicit.segment_size_bytes = 50_000;
        assert_eq!(explicit.with_fitting_segments().segment_size_bytes, 50_000);
    }

    #[test]
    fn unknown_fields_in_a_stored_definition_are_rejected() {
        let err = serde_json::from_str::<StreamDefinition>(r#"{"name":"s","max_size":5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_size"), "{err}");
    }

    #[test]
    fn export_priorities_outside_one_to_ten_are_rejected() {
        let mut def = StreamDefinition::new("s");
        let mut export =
            ExportDefinition::new("e", ExportKind::Http(HttpSettings::new("http://x")));
        export.priority = 11;
        def.exports.push(export);
        assert!(def.validate().unwrap_err().to_string().contains("priority"));
        let parsed = serde_json::from_str::<ExportDefinition>(
            r#"{"identifier":"e","kind":"http","settings":{"url":"http://x"},"priority":11}"#,
        );
        assert!(parsed.unwrap_err().to_string().contains("priority"));
    }
}
