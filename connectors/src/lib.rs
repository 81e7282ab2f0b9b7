//! Ferry's connectors: the MQTT source (ingestion from brokers into streams) and the export
//! sinks (HTTP, Kinesis Data Streams, Firehose, S3). They reach streams only through the stream
//! manager's public API and never touch its storage.

pub use ferry_stream_manager::backoff;
pub mod docker;
pub mod json;
pub mod mqtt;
pub mod sinks;
