//! Ferry's connectors: the MQTT source, cloud sinks and the Docker deployer. They reach streams
//! only through the stream manager's public API and never touch its storage.

pub mod backoff;
pub mod mqtt;
