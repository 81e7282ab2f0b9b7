//! Ferry's connectors: the MQTT source, cloud sinks and the Docker deployer. They reach streams
//! only through the stream manager's public API and never touch its storage.

pub use ferry_stream_manager::backoff;
pub mod json;
pub mod mqtt;
pub mod sinks;
