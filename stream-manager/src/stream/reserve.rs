//! Sequence-number reservations of memory streams. Their records die with the process but their
//! numbering must not restart, so the catalog holds a floor above every number handed out.
//! Raising it is an SQLite commit with fsync, so it happens ahead of need and off the
//! appender's thread: the first block when the stream opens, the next on a thread of its own
//! once half of the current block is used. An append waits for the catalog itself only if it
//! outruns that refill, or the refill failed.

use super::{State, Stream};
use crate::error::Result;

/// Memory streams reserve sequence numbers in blocks, so the catalog is written once per block.
pub(super) const SEQ_RESERVATION_BLOCK: u64 = 1 << 20;

#[derive(Debug, Default)]
pub(super) struct Reservation {
    /// Every number below this one is covered by the floor stored in the catalog.
    pub(super) until: u64,
    refilling: bool,
}

impl Reservation {
    pub(super) fn new(until: u64) -> Reservation {
        Reservation {
            until,
            refilling: false,
        }
    }
}

impl Stream {
    /// Makes sure numbers below `need` are reserved, and starts the next refill when half of
    /// the block is used.
    pub(super) fn reserve_for(&self, st: &mut State, need: u64) -> Result<()> {
        let Some(reserve) = self.0.reserver.clone() else {
            st.reservation.until = st.reservation.until.max(need);
            return Ok(());
        };
        if need > st.reservation.until {
            // The refill fell behind (or failed): this append has to wait for the catalog.
            reserve(need + SEQ_RESERVATION_BLOCK)?;
            st.reservation.until = need + SEQ_RESERVATION_BLOCK;
        }
        if st.reservation.refilling || need + SEQ_RESERVATION_BLOCK / 2 <= st.reservation.until {
            return Ok(());
        }
        st.reservation.refilling = true;
        let target = st.reservation.until + SEQ_RESERVATION_BLOCK;
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ferry-reserve".into())
            .spawn(move || {
                let result = reserve(target);
                let mut st = this.state();
                st.reservation.refilling = false;
                match result {
                    Ok(()) => st.reservation.until = st.reservation.until.max(target),
                    Err(e) => {
                        tracing::warn!(stream = %this.0.name, error = %e, "could not reserve sequence numbers ahead; an append will retry")
                    }
                }
            });
        if let Err(e) = spawned {
            st.reservation.refilling = false;
            tracing::warn!(stream = %self.0.name, error = %e, "could not start the sequence reservation thread");
        }
        Ok(())
    }
}
