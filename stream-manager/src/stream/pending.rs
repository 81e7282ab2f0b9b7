//! The handle an append returns: its sequence numbers, and a wait for their durability on the
//! stream's progress channel (no polling).

use std::ops::Range;

use tokio::sync::watch;

use super::Progress;
use crate::error::{Error, Result};
use crate::sync::block_on;

/// An append written to the stream but perhaps not yet durable. Clones wait for the same append.
#[derive(Clone)]
#[must_use = "an append is acknowledged only once `durable` or `wait_blocking` returns"]
pub struct PendingAppend {
    pub(super) range: Range<u64>,
    /// The sync round of its own this append waits for (`flush_on_write`), or 0.
    pub(super) own_round: u64,
    pub(super) name: String,
    pub(super) rx: watch::Receiver<Progress>,
}

impl PendingAppend {
    pub fn sequence_numbers(&self) -> Range<u64> {
        self.range.clone()
    }

    /// Resolves once every record of the append is durable.
    pub async fn durable(mut self) -> Result<Range<u64>> {
        let (end, own_round) = (self.range.end, self.own_round);
        let done = |p: &Progress| p.durable_end >= end && p.own_rounds >= own_round;
        let p = self
            .rx
            .wait_for(|p| done(p) || p.failed.is_some() || p.closed)
            .await
            .map(|p| p.clone())
            .unwrap_or_else(|_| Progress {
                closed: true,
                ..Default::default()
            });
        if done(&p) {
            return Ok(self.range);
        }
        Err(Error::StorageFailed {
            name: self.name,
            reason: p.failed.map_or_else(
                || "stream closed before the append was durable".into(),
                |f| f.to_string(),
            ),
        })
    }

    /// Blocks the calling thread until every record of the append is durable.
    pub fn wait_blocking(self) -> Result<Range<u64>> {
        block_on(self.durable())
    }
}
