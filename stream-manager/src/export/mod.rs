//! Export scheduling: each export of a stream reads from its checkpoint, batches within the
//! sink's limits, keeps up to `max_in_flight_batches` batches with the sink at once, and moves
//! its checkpoint (in the catalog) only over batches the sink confirmed, with none open before
//! them. Delivery is at-least-once: a crash sends again what lies between the checkpoint and
//! the last batch sent, so duplicates are bounded by `max_in_flight_batches` batches per export.
//!
//! The sinks live in the connectors crate and implement [`Sink`]; this module knows nothing of
//! HTTP or AWS. [`Bandwidth`] shares an optional byte-rate cap among exports, highest priority
//! first.

mod bandwidth;
mod machine;
mod status;
mod task;
mod window;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use bandwidth::Bandwidth;
pub use status::{ExportState, ExportStatus, ExportStatusHandle};
pub use task::run_export;

use crate::record::Record;

/// How much one call to a sink may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkLimits {
    pub max_records: usize,
    pub max_bytes: u64,
    /// A larger record can never be sent: it is handled as a permanent error.
    pub max_record_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (network down, 5xx, throttling). `retry_after` is the sink's own hint.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot fix it (4xx, a record the sink refuses as invalid).
    #[error("{reason}")]
    Permanent { reason: String },
    /// The sink took part of the batch and refused the rest for a reason worth retrying
    /// (throttling, an internal failure): `failed` are the refused records, as ascending indices
    /// into the batch's records. The exporter sends those again, in order, through its own
    /// retry and backoff; the sink never loops on them itself.
    #[error("{reason} ({} record(s) to send again)", failed.len())]
    Partial { failed: Vec<usize>, reason: String },
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;
/// Whether the sink is reachable (see [`Sink::probe`]).
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Records to send, with the request body the sink encoded for them ahead of time (while the
/// previous batch was in flight), if it encodes bodies at all.
#[derive(Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub body: Option<bytes::Bytes>,
}

/// A destination for exported records. `send` succeeds only once the sink confirmed every
/// record of the batch; a sink that learns per record what failed says so with
/// [`SinkError::Partial`].
pub trait Sink: Send + Sync {
    fn limits(&self) -> SinkLimits;
    /// Encodes a request body for `records`; `None` when the sink builds requests in `send`.
    fn encode(&self, _records: &[Record]) -> Option<bytes::Bytes> {
        None
    }
    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a>;
    /// A cheap check whether the sink is reachable (a TCP connect, say), done every second
    /// while it is not, so that the export notices its return at once instead of at the end
    /// of its backoff. `None`: the sink cannot tell, and only the backoff decides. The
    /// exporter gives a probe at most a second; a slower one counts as unreachable.
    fn probe(&self) -> Option<ProbeFuture<'_>> {
        None
    }
}
