//! Export sinks. Each kind is a small module with its request building and sending; the typed
//! settings they act on are the stream manager's data ([`ExportKind`]). [`build`] turns an
//! export definition into a sink, [`check`] says whether it would, naming the key at fault.

pub mod aws;
pub(crate) mod civil_time;
pub mod firehose;
pub mod http;
pub mod kinesis;
pub mod local_streams;
pub mod s3;
pub mod s3_task;

use std::sync::Arc;

use ferry_stream_manager::definition::{ExportConfigError, ExportKind};
use ferry_stream_manager::export::Sink;
use ferry_stream_manager::ExportDefinition;

pub use aws::SinkEnv;

/// Why an export cannot start. `key` is relative to the export (`settings.region`,
/// `settings.credentials.iot.cert_file`), so a caller prefixes it with where the export sits
/// (`streams[0].exports[1].`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct SinkConfigError {
    pub key: String,
    pub reason: String,
}

impl SinkConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        SinkConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl From<ExportConfigError> for SinkConfigError {
    fn from(e: ExportConfigError) -> Self {
        SinkConfigError {
            key: e.key,
            reason: e.reason,
        }
    }
}

/// Builds the sink an export of `stream` names: the definition is validated, then what depends
/// on the environment is resolved (region, credentials, certificate files).
pub fn build(
    def: &ExportDefinition,
    stream: &str,
    env: &SinkEnv,
) -> Result<Arc<dyn Sink>, SinkConfigError> {
    def.validate()?;
    Ok(match &def.kind {
        ExportKind::Http(s) => Arc::new(http::HttpSink::new(s)?),
        ExportKind::Kinesis(s) => Arc::new(kinesis::KinesisSink::new(s, env)?),
        ExportKind::Firehose(s) => Arc::new(firehose::FirehoseSink::new(s, env)?),
        ExportKind::S3(s) => Arc::new(s3::S3Sink::new(s, stream, env)?),
        ExportKind::S3Task(s) => {
            Arc::new(s3_task::S3TaskSink::new(s, stream, &def.identifier, env)?)
        }
    })
}

/// Whether the export would start here: everything [`build`] does (it reads credential and
/// certificate files, sends nothing), so the two never disagree. For configuration checks and
/// for the API before it stores a definition.
pub fn check(def: &ExportDefinition, stream: &str, env: &SinkEnv) -> Result<(), SinkConfigError> {
    build(def, stream, env).map(drop)
}

#[cfg(test)]
mod tests;
