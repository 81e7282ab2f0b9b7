//! MQTT ingestion: broker connections (rumqttc) whose messages are routed into local streams,
//! acknowledged to the broker only once durable.

mod ack;
pub mod config;
mod connection;
mod event_loop;
mod ingest;
pub mod metrics;
mod refusal;
pub mod source;
mod tls;
pub mod topic;

pub use config::{BrokerConfig, Subscription, TlsSettings};
pub use metrics::{IngestMetrics, IngestSnapshot};
pub use source::{MqttSource, SourceError};
pub use tls::{client_config, TlsError};
pub use topic::{Route, Router};
