//! Ferry's connectors: the MQTT source, cloud sinks and the Docker deployer. They implement the
//! small traits the stream manager defines and never reach into its storage.
