//! Export sinks. Each kind is a small module with its settings, request building and sending;
//! [`build`] turns an export definition into a sink or a clear error.

pub mod aws;
pub mod firehose;
pub mod http;
pub mod kinesis;
pub mod s3;

use std::sync::Arc;

use ferry_stream_manager::export::Sink;
use ferry_stream_manager::ExportDefinition;

pub use aws::SinkEnv;

/// Builds the sink an export of `stream` names.
pub fn build(def: &ExportDefinition, stream: &str, env: &SinkEnv) -> Result<Arc<dyn Sink>, String> {
    match def.kind.as_str() {
        "http" => Ok(Arc::new(http::HttpSink::from_settings(&def.settings)?)),
        "kinesis" => Ok(Arc::new(kinesis::KinesisSink::from_settings(
            &def.settings,
            env,
        )?)),
        "firehose" => Ok(Arc::new(firehose::FirehoseSink::from_settings(
            &def.settings,
            env,
        )?)),
        "s3" => Ok(Arc::new(s3::S3Sink::from_settings(
            &def.settings,
            stream,
            env,
        )?)),
        other => Err(format!(
            "unknown sink kind {other:?} (expected http, kinesis, firehose or s3)"
        )),
    }
}
