//! Ferry's stream manager: durable local streams with sequence numbers, size and age retention,
//! group-committed appends and waiting readers. No network code lives here: sources and sinks
//! are the connectors' business and reach streams through [`Stream`].
//!
//! Durability promise: an append to a `file` stream is acknowledged (its future resolves) only
//! after its bytes and, for a new segment, the directory entry were fsynced. A `memory` stream
//! acknowledges at once and loses its records when the process ends.

pub mod backoff;
pub mod catalog;
pub mod definition;
pub mod error;
pub mod export;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod index;
mod log;
mod manager;
mod memory;
mod reader;
pub mod record;
mod recovery;
pub mod segment;
pub mod storage;
mod stream;
mod sync;
pub mod time;
pub mod units;

pub use definition::{
    ExportDefinition, PermanentErrorPolicy, Persistence, StrategyOnFull, StreamDefinition,
};
pub use error::{Error, Result};
pub use log::DamageStats;
pub use manager::{ManagerOptions, StreamManager};
pub use record::{Metadata, NewRecord, Record};
pub use stream::{Clock, PendingAppend, ReadOptions, Stream, StreamCounters, StreamDescription};
