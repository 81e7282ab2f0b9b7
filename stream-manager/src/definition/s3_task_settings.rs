//! Settings of the S3 export task (`kind = "s3_task"`, Greengrass' `s3TaskExecutor`): every
//! record of the stream is a task (the JSON of Greengrass' `S3ExportTaskDefinition`) naming a
//! local file, a bucket and a key; the sink uploads the file, in parts when it is larger than
//! `multipart_threshold_bytes`, and appends each task's progress (in progress, success,
//! failure) to `status_stream` as Greengrass `StatusMessage` JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::aws_settings::AwsSettings;
use super::export::ExportConfigError;
use super::sink_settings::MIN_S3_PART_SIZE_BYTES;

/// S3's largest part (and largest single PUT).
pub const MAX_S3_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// How much a task reports to its status stream: a status message is written when its level
/// is at most this (Greengrass' `StatusLevel`: ERROR 0 … TRACE 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl StatusLevel {
    /// Greengrass' integer for the level.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u64) -> Option<StatusLevel> {
        Some(match code {
            0 => StatusLevel::Error,
            1 => StatusLevel::Warn,
            2 => StatusLevel::Info,
            3 => StatusLevel::Debug,
            4 => StatusLevel::Trace,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3TaskSettings {
    /// Larger files go up in parts (multipart upload); smaller ones in one PUT, read whole.
    #[serde(default = "min_part")]
    pub multipart_threshold_bytes: u64,
    /// The size of each part but the last; read one part at a time.
    #[serde(default = "min_part")]
    pub part_size_bytes: u64,
    /// The stream (of this Ferry) each task's status messages are appended to; none: no status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_stream: Option<String>,
    #[serde(default)]
    pub status_level: StatusLevel,
    /// Input files must lie under one of these directories; empty: any file Ferry may read
    /// (as the Greengrass component does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_dirs: Vec<PathBuf>,
    #[serde(flatten)]
    pub aws: AwsSettings,
}

fn min_part() -> u64 {
    MIN_S3_PART_SIZE_BYTES
}

impl Default for S3TaskSettings {
    fn default() -> Self {
        S3TaskSettings {
            multipart_threshold_bytes: MIN_S3_PART_SIZE_BYTES,
            part_size_bytes: MIN_S3_PART_SIZE_BYTES,
            status_stream: None,
            status_level: StatusLevel::default(),
            input_dirs: Vec::new(),
            aws: AwsSettings::default(),
        }
    }
}

impl S3TaskSettings {
    pub fn validate(&self) -> Result<(), ExportConfigError> {
        for (key, value) in [
            ("multipart_threshold_bytes", self.multipart_threshold_bytes),
            ("part_size_bytes", self.part_size_bytes),
        ] {
            if !(MIN_S3_PART_SIZE_BYTES..=MAX_S3_PART_SIZE_BYTES).contains(&value) {
                return Err(ExportConfigError::new(
                    key,
                    format!(
                        "is {value} but must be from {MIN_S3_PART_SIZE_BYTES} to \
                         {MAX_S3_PART_SIZE_BYTES} (S3's part sizes)"
                    ),
                ));
            }
        }
        if self
            .status_stream
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ExportConfigError::new(
                "status_stream",
                "must not be empty (omit it for no status messages)",
            ));
        }
        if let Some(dir) = self.input_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ExportConfigError::new(
                "input_dirs",
                format!("{} is not an absolute path", dir.display()),
            ));
        }
        self.aws.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_below_s3s_minimum_and_relative_input_dirs_are_refused() {
        let s = S3TaskSettings {
            part_size_bytes: 1024,
            ..S3TaskSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "part_size_bytes");
        let s = S3TaskSettings {
            input_dirs: vec!["data".into()],
            ..S3TaskSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "input_dirs");
        assert!(S3TaskSettings::default().validate().is_ok());
    }

    #[test]
    fn status_levels_keep_greengrass_order_and_codes() {
        assert!(StatusLevel::Error < StatusLevel::Info);
        for code in 0..5 {
            assert_eq!(StatusLevel::from_code(code).unwrap().code() as u64, code);
        }
        assert_eq!(StatusLevel::from_code(5), None);
    }
}
