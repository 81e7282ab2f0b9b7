//! The Greengrass Stream Manager protocol server: apps written against the AWS IoT Greengrass
//! Stream Manager SDKs (Python, Java, JavaScript) create, update, delete, describe and list
//! streams, append and read through it, unchanged. It is a front end like the local API: every
//! stream operation goes through [`crate::service::Service`], so a stream created here is the
//! one the API, the CLI and the exporter see.
//!
//! Layers, each file pure except the server:
//! `frame` (length-prefixed frames) → `cbor` (values) → `messages` / `responses` (typed) →
//! `handshake` + `session` (connection state machine) → `handler` (requests on the service,
//! `model` maps the data model, `export_model` the export configs, `status` the error codes) →
//! `server` (TCP, tasks, limits). S3 export tasks run as Ferry exports of kind `s3_task` (the
//! connectors' `sinks::s3_task`): the exporter already gives them order, checkpoints, retries,
//! priority and status.

mod cbor;
#[cfg(test)]
mod codec_tests;
mod config;
mod export_messages;
mod export_model;
mod export_responses;
mod export_settings;
mod frame;
mod handler;
mod handshake;
mod messages;
mod model;
mod responses;
mod server;
mod session;
#[cfg(test)]
mod session_tests;
mod status;

pub use config::GreengrassConfig;
pub use handshake::AppTokens;
pub use server::{bind, Settings};
