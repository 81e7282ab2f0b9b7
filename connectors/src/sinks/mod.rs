//! Export sinks. Each kind is a small module with its settings, request building and sending;
//! [`build`] turns an export definition into a sink or a clear error.

pub mod http;

use std::sync::Arc;

use ferry_stream_manager::export::Sink;
use ferry_stream_manager::ExportDefinition;

/// Builds the sink an export names. Kinds not built yet are an error, never a silent no-op.
pub fn build(def: &ExportDefinition) -> Result<Arc<dyn Sink>, String> {
    match def.kind.as_str() {
        "http" => Ok(Arc::new(http::HttpSink::from_settings(&def.settings)?)),
        "kinesis" | "firehose" | "s3" => Err(format!(
            "sink kind {:?} is not built yet in this version of Ferry",
            def.kind
        )),
        other => Err(format!(
            "unknown sink kind {other:?} (expected http, kinesis, firehose or s3)"
        )),
    }
}
